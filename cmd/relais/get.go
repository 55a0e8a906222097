package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/retrieve"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func getCmd() *cobra.Command {
	var f retrieveFlags
	var out string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "get HOST:PORT --out DIR -k Keyword=value...",
		Short: "C-GET studies, series or instances into a folder",
		Long: `Retrieve what the keys designate with C-GET: the instances come back on
the same association (we take the SCP role for the common storage classes)
and are written as Part 10 files named by SOP Instance UID into --out.
Exits non-zero unless the status is 0000.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			keys, opts, err := f.parse()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			var bar *progressbar.ProgressBar
			if !quiet {
				bar = progressbar.NewOptions64(-1,
					progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionShowBytes(true),
					progressbar.OptionShowCount(),
					progressbar.OptionSetDescription("C-GET"),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish(),
				)
			}
			var n, bytes atomic.Int64
			start := time.Now()
			sink := func(ctx context.Context, in *retrieve.Received) error {
				size, err := writePart10(out, in)
				if err != nil {
					return err
				}
				n.Add(1)
				bytes.Add(size)
				if bar != nil {
					bar.Describe(fmt.Sprintf("C-GET %d instances", n.Load()))
					bar.Add64(size)
				}
				return nil
			}
			res, err := retrieve.Get(cmd.Context(), args[0], retrieve.GetOptions{ClientOptions: opts}, keys, sink)
			if bar != nil {
				bar.Finish()
			}
			el := time.Since(start)
			mb := float64(bytes.Load()) / 1e6
			fmt.Printf("received %d instances, %.1f MB in %s: %.1f instances/s into %s\n", n.Load(), mb,
				el.Round(time.Millisecond), float64(n.Load())/el.Seconds(), out)
			return printResult("C-GET", res, err)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&out, "out", "", "folder to write the instances into")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// writePart10 writes a received instance as DIR/<SOP Instance UID>.dcm
// (through a temporary file, renamed when complete) and returns its size.
func writePart10(dir string, in *retrieve.Received) (int64, error) {
	if in.SOPInstanceUID == "" || filepath.Base(in.SOPInstanceUID) != in.SOPInstanceUID || in.SOPInstanceUID[0] == '.' {
		return 0, fmt.Errorf("unusable SOP Instance UID %q", in.SOPInstanceUID)
	}
	tmp, err := os.CreateTemp(dir, ".get-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := dicom.WriteFileMeta(tmp, dicom.FileMeta{MediaStorageSOPClassUID: in.SOPClassUID,
		MediaStorageSOPInstanceUID: in.SOPInstanceUID, TransferSyntaxUID: in.TransferSyntaxUID})
	if err != nil {
		return 0, err
	}
	m, err := io.Copy(tmp, in.Data)
	if err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, in.SOPInstanceUID+".dcm")); err != nil {
		return 0, err
	}
	return n + m, nil
}
