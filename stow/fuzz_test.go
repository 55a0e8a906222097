package stow

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/memindex"
)

// completeParts parses body independently and returns the decoded bytes of
// every part that was read to its closing boundary.
func completeParts(body []byte) [][]byte {
	var out [][]byte
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if err != nil {
			return out
		}
		var r io.Reader = p
		if strings.EqualFold(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")), "base64") {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		b, err := io.ReadAll(r)
		if err == nil {
			out = append(out, b)
		}
	}
}

// FuzzStore feeds random bodies to Store with a fixed multipart/related
// Content-Type: no panic, a status in {200, 202, 409, 400, 415}, and the
// index only ever holds instances stored from complete parts, byte for
// byte.
func FuzzStore(f *testing.F) {
	study := testdicom.UID()
	a := newCT(f, study, nil)
	b := newCT(f, study, func(c *testdicom.CT) { c.Instance = 2 })
	full := multipartBody(dcm(a.file), dcm(b.file))
	f.Add(multipartBody(dcm(a.file)), false)
	f.Add(full, true)
	f.Add(full[:len(full)-300], false)
	f.Add(full[:len(full)-len("--\r\n")], false)
	f.Add(multipartBody(dcm(a.file[:len(a.file)-10]), typed("", b.file)), false)
	f.Add(multipartBody(typed("text/plain", []byte("hello")), dcm(b.file)), true)
	f.Add(multipartBody(tpart{hdr: []string{"Content-Type: application/dicom", "Content-Transfer-Encoding: base64"},
		data: []byte(base64.StdEncoding.EncodeToString(a.file))}), false)
	f.Add(multipartBody(dcm(newCT(f, testdicom.UID(), nil).file)), true)
	f.Add([]byte("--"+boundary+"\r\n\r\n--"+boundary+"--"), false)
	f.Add([]byte{}, false)

	quiet := slog.New(slog.DiscardHandler)
	dir := f.TempDir()
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { j.Close() })

	f.Fuzz(func(t *testing.T, body []byte, target bool) {
		fuzzStore(t, j, quiet, study, body, target)
	})
}

// fuzzStore runs one input against a fresh in-memory pipeline (memindex,
// memBlobs; the journal is shared, without fsync).
func fuzzStore(t *testing.T, j *journal.Journal, quiet *slog.Logger, study string, body []byte, target bool) {
	{
		ctx := context.Background()
		ix := memindex.New()
		blobs := newMemBlobs()
		p := &ingest.Pipeline{Blobs: blobs, Index: ix, Journal: j, Limits: dicom.DefaultLimits(), ImplementationClassUID: "1.2.3", Logger: quiet}
		opt := Options{RetrieveURL: retrieveURL, MaxParts: 16, Logger: quiet}
		if target {
			opt.StudyInstanceUID = study
		}
		blobsBefore := blobCount(t, p)
		resp, err := Store(ctx, p, contentType, bytes.NewReader(body), opt)
		stored := map[string]bool{}
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || (re.HTTPStatus != 400 && re.HTTPStatus != 415) {
				t.Fatalf("error %v", err)
			}
		} else {
			switch resp.HTTPStatus {
			case 200, 202, 409:
			default:
				t.Fatalf("status %d", resp.HTTPStatus)
			}
			if (resp.HTTPStatus == 409) != (resp.Stored == 0) || resp.Stored != len(resp.Referenced) {
				t.Fatalf("status %d with %d stored", resp.HTTPStatus, resp.Stored)
			}
			for _, r := range resp.Referenced {
				stored[r.SOPInstanceUID] = true
				if target && r.StudyUID != study {
					t.Fatalf("instance of study %s stored under %s", r.StudyUID, study)
				}
			}
			var buf bytes.Buffer
			if err := resp.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			if err := resp.WriteXML(&buf); err != nil {
				t.Fatal(err)
			}
		}
		// The index holds exactly the referenced instances, each from a
		// complete part.
		st, err := ix.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Instances != int64(len(stored)) {
			t.Fatalf("%d indexed, %d referenced", st.Instances, len(stored))
		}
		if n := blobCount(t, p) - blobsBefore; n != len(stored) {
			t.Fatalf("%d new blobs, %d stored", n, len(stored))
		}
		if len(stored) == 0 {
			return
		}
		parts := completeParts(body)
		err = ix.Studies(ctx, func(s *storage.Study) error {
			return ix.StudyInstances(ctx, s.StudyInstanceUID, func(inst *storage.Instance) error {
				if !stored[inst.SOPInstanceUID] {
					t.Fatalf("indexed %s is not referenced", inst.SOPInstanceUID)
				}
				blob, err := blobs.Open(ctx, inst.BlobKey)
				if err != nil {
					t.Fatal(err)
				}
				defer blob.Close()
				_, off, err := dicom.ReadFileMeta(blob)
				if err != nil {
					t.Fatal(err)
				}
				blob.Seek(off, io.SeekStart)
				ds, _ := io.ReadAll(blob)
				for _, part := range parts {
					if bytes.HasSuffix(part, ds) {
						return nil
					}
				}
				t.Fatalf("indexed %s does not come from a complete part", inst.SOPInstanceUID)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
