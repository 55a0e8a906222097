package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// sendFile is one Part 10 file to send.
type sendFile struct {
	path      string
	meta      dicom.FileMeta
	offset    int64 // start of the data set
	size      int64 // data set bytes
	transcode bool
}

// maxContexts is the PS3.8 limit: presentation context IDs are odd 1..255.
const maxContexts = 128

func sendCmd() *cobra.Command {
	var ae aeFlags
	var assocs int
	var quiet bool
	cmd := &cobra.Command{
		Use:   "send HOST:PORT PATH...",
		Short: "Send DICOM files and folders with C-STORE",
		Long: `Send Part 10 files (folders are walked) with C-STORE. Presentation contexts
are derived from the files: each file's own transfer syntax, plus explicit and
implicit little endian for uncompressed files (transcoded if the peer accepts
only those). Exits non-zero if any instance fails.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if assocs < 1 {
				return errors.New("--associations must be at least 1")
			}
			files, skipped, err := collectFiles(args[1:])
			if err != nil {
				return err
			}
			for _, s := range skipped {
				fmt.Fprintln(os.Stderr, "skipped:", s)
			}
			if len(files) == 0 {
				return errors.New("no DICOM files to send")
			}
			contexts, err := proposeContexts(files)
			if err != nil {
				return err
			}
			return runSend(cmd.Context(), args[0], ae, contexts, files, assocs, quiet)
		},
	}
	ae.register(cmd)
	cmd.Flags().IntVar(&assocs, "associations", 1, "parallel associations")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// collectFiles walks paths and reads each file's meta; non-DICOM files are
// reported as skipped, not failed.
func collectFiles(paths []string) ([]*sendFile, []string, error) {
	var files []*sendFile
	var skipped []string
	add := func(p string) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		meta, off, err := dicom.ReadFileMeta(bufio.NewReaderSize(f, 4096))
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		if meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10" { // DICOMDIR
			skipped = append(skipped, p+": DICOMDIR")
			return nil
		}
		files = append(files, &sendFile{path: p, meta: meta, offset: off, size: st.Size() - off})
		return nil
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		if !st.IsDir() {
			if err := add(p); err != nil {
				return nil, nil, err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				return add(path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return files, skipped, nil
}

func uncompressed(ts string) bool {
	return ts == dicom.ExplicitVRLittleEndian || ts == dicom.ImplicitVRLittleEndian || ts == dicom.ExplicitVRBigEndian
}

// proposeContexts proposes, per SOP class, one context per compressed
// syntax met and one uncompressed context listing the file's syntax first.
func proposeContexts(files []*sendFile) ([]dimse.ProposedContext, error) {
	type key struct{ class, ts string }
	seen := map[key]bool{}
	var keys []key
	for _, f := range files {
		ts := f.meta.TransferSyntaxUID
		if uncompressed(ts) {
			ts = "native"
		}
		k := key{f.meta.MediaStorageSOPClassUID, ts}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].class != keys[j].class {
			return keys[i].class < keys[j].class
		}
		return keys[i].ts < keys[j].ts
	})
	if len(keys) > maxContexts {
		return nil, fmt.Errorf("the files need %d presentation contexts; one association allows %d: send them in batches", len(keys), maxContexts)
	}
	var pcs []dimse.ProposedContext
	for i, k := range keys {
		pc := dimse.ProposedContext{ID: uint8(2*i + 1), AbstractSyntax: k.class}
		if k.ts == "native" {
			pc.TransferSyntaxes = []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian}
		} else {
			pc.TransferSyntaxes = []string{k.ts}
		}
		pcs = append(pcs, pc)
	}
	return pcs, nil
}

type sendStats struct {
	sent, warned, failed atomic.Int64
	bytes                atomic.Int64
	mu                   sync.Mutex
	failures             []string
}

func (s *sendStats) fail(format string, a ...any) {
	s.failed.Add(1)
	s.mu.Lock()
	s.failures = append(s.failures, fmt.Sprintf(format, a...))
	s.mu.Unlock()
}

func runSend(ctx context.Context, addr string, ae aeFlags, pcs []dimse.ProposedContext, files []*sendFile, assocs int, quiet bool) error {
	if assocs > len(files) {
		assocs = len(files)
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetDescription(fmt.Sprintf("C-STORE %d instances", len(files))),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	stats := &sendStats{}
	start := time.Now()
	work := make(chan *sendFile)
	var wg sync.WaitGroup
	for i := 0; i < assocs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendWorker(ctx, addr, ae, pcs, work, stats, bar)
		}()
	}
feed:
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if bar != nil {
		bar.Finish()
	}
	el := time.Since(start)
	n := stats.sent.Load()
	mb := float64(stats.bytes.Load()) / 1e6
	for _, f := range stats.failures {
		fmt.Fprintln(os.Stderr, "failed:", f)
	}
	fmt.Printf("sent %d/%d instances (%d with warnings, %d failed), %.1f MB in %s: %.1f instances/s, %.1f MB/s over %d association(s)\n",
		n, len(files), stats.warned.Load(), stats.failed.Load(), mb, el.Round(time.Millisecond),
		float64(n)/el.Seconds(), mb/el.Seconds(), assocs)
	if stats.failed.Load() > 0 || n < int64(len(files)) {
		return exitError{2}
	}
	return nil
}

func sendWorker(ctx context.Context, addr string, ae aeFlags, pcs []dimse.ProposedContext, work <-chan *sendFile, stats *sendStats, bar *progressbar.ProgressBar) {
	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: ae.aet, CalledAE: ae.aec, Contexts: pcs})
	if err != nil {
		for f := range work {
			stats.fail("%s: associate: %v", f.path, err)
		}
		return
	}
	defer func() {
		if err := a.Release(ctx); err != nil {
			a.Abort()
		}
	}()
	for f := range work {
		st, err := sendOne(ctx, a, f)
		switch {
		case err != nil:
			stats.fail("%s: %v", f.path, err)
			if errors.Is(err, dimse.ErrAssociationEnded) {
				for f := range work {
					stats.fail("%s: association closed", f.path)
				}
				return
			}
		case st.Category() == dimse.CategoryFailure:
			stats.fail("%s: status %04X %s", f.path, st.Code, st.Comment)
		default:
			if st.Category() == dimse.CategoryWarning {
				stats.warned.Add(1)
			}
			stats.sent.Add(1)
			stats.bytes.Add(f.size)
		}
		if bar != nil {
			bar.Add64(f.size)
		}
	}
}

// sendOne sends a file, transcoding between uncompressed syntaxes when the
// peer did not accept the file's own.
func sendOne(ctx context.Context, a *dimse.Association, f *sendFile) (dimse.Status, error) {
	class, ts := f.meta.MediaStorageSOPClassUID, f.meta.TransferSyntaxUID
	pc, ok := a.FindContext(class, ts)
	if !ok && uncompressed(ts) {
		pc, ok = a.FindContext(class, "")
		ok = ok && uncompressed(pc.TransferSyntax)
	}
	if !ok {
		return dimse.Status{}, fmt.Errorf("no accepted presentation context for %s in %s", class, ts)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return dimse.Status{}, err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.offset, io.SeekStart); err != nil {
		return dimse.Status{}, err
	}
	var data io.Reader = fh
	if pc.TransferSyntax != ts {
		from, _ := dicom.LookupTransferSyntax(ts)
		to, _ := dicom.LookupTransferSyntax(pc.TransferSyntax)
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(dicom.Transcode(pw, bufio.NewReaderSize(fh, 64<<10), from, to, dicom.DefaultLimits()))
		}()
		defer pr.Close()
		data = pr
	}
	return a.Store(ctx, pc, class, f.meta.MediaStorageSOPInstanceUID, data)
}
