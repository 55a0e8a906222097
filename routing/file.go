package routing

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/memindex"
)

// Extractor builds the index record of Part 10 files exactly as ingest
// does (it runs them through an ingest pipeline over an in-memory index, a
// blob store that keeps nothing and a temporary journal), for dry runs of
// the rules (`relais route test FILE`, POST /api/routes/test).
type Extractor struct {
	p   *ingest.Pipeline
	j   *journal.Journal
	dir string
}

// NewExtractor returns an Extractor; Close it.
func NewExtractor() (*Extractor, error) {
	dir, err := os.MkdirTemp("", "relais-route-test")
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(dir, journal.Options{NoSync: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &ingest.Pipeline{Blobs: discardBlobs{}, Index: memindex.New(), Journal: j, Limits: dicom.DefaultLimits(),
		Duplicates: ingest.Replace, AETitle: "RELAIS"}
	return &Extractor{p: p, j: j, dir: dir}, nil
}

// Close removes the temporary journal.
func (x *Extractor) Close() error {
	err := x.j.Close()
	os.RemoveAll(x.dir)
	return err
}

// Instance reads a Part 10 file from r and returns its index record with
// src as its arrival context and at as its arrival time.
func (x *Extractor) Instance(ctx context.Context, r io.Reader, src storage.Source, at time.Time) (*storage.Instance, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	meta, _, err := dicom.ReadFileMeta(br)
	if err != nil {
		return nil, err
	}
	if src.Channel == "" {
		src.Channel = "import"
	}
	res, err := x.p.Store(ctx, &ingest.Request{Source: src, SOPClassUID: meta.MediaStorageSOPClassUID,
		SOPInstanceUID: meta.MediaStorageSOPInstanceUID, TransferSyntaxUID: meta.TransferSyntaxUID, Data: br})
	if err != nil {
		return nil, err
	}
	inst := *res.Instance
	inst.BlobKey, inst.Size = "", 0
	if !at.IsZero() {
		inst.ReceivedAt = at
	}
	return &inst, nil
}

// InstanceFromFile is Instance for a file path.
func (x *Extractor) InstanceFromFile(ctx context.Context, path string, src storage.Source, at time.Time) (*storage.Instance, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inst, err := x.Instance(ctx, f, src, at)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inst, nil
}

// discardBlobs is a blob store that keeps nothing.
type discardBlobs struct{}

func (discardBlobs) Create(context.Context, string) (storage.BlobWriter, error) {
	return discardWriter{}, nil
}
func (discardBlobs) Open(context.Context, string) (storage.Blob, error) {
	return nil, storage.ErrNotFound
}
func (discardBlobs) Stat(context.Context, string) (int64, error) { return 0, storage.ErrNotFound }
func (discardBlobs) Delete(context.Context, string) error        { return nil }
func (discardBlobs) Walk(context.Context, func(string, int64) error) error {
	return nil
}

type discardWriter struct{}

func (discardWriter) Write(b []byte) (int, error)  { return len(b), nil }
func (discardWriter) Commit(context.Context) error { return nil }
func (discardWriter) Abort() error                 { return nil }
