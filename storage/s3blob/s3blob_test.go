package s3blob_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/blobtest"
	"github.com/relais-health/relais/storage/s3blob"
	"github.com/relais-health/relais/storage/s3blob/s3test"
)

var bucketN atomic.Int64

func newStore(t testing.TB, cfg s3blob.Config) *s3blob.Store {
	t.Helper()
	s, err := s3blob.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("s3blob.New: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	cfg := s3test.Start(t) // one server, one bucket per subtest
	cfg.PartSize = s3blob.MinPartSize
	blobtest.Run(t, func(t *testing.T) storage.Blobs {
		c := cfg
		c.Bucket = fmt.Sprintf("conf-%d", bucketN.Add(1))
		return newStore(t, c)
	})
}

func TestPrefix(t *testing.T) {
	cfg := s3test.Start(t)
	a := cfg
	a.Prefix = "site-a"
	b := cfg
	b.Prefix = "site-b/"
	sa, sb := newStore(t, a), newStore(t, b)
	blobtest.Put(t, sa, "ab/x.dcm", []byte("a"))
	blobtest.Put(t, sb, "ab/x.dcm", []byte("bb"))
	blobtest.Check(t, sa, "ab/x.dcm", []byte("a"))
	blobtest.Check(t, sb, "ab/x.dcm", []byte("bb"))
	var keys []string
	sa.Walk(context.Background(), func(k string, n int64) error { keys = append(keys, k); return nil })
	if len(keys) != 1 || keys[0] != "ab/x.dcm" {
		t.Fatalf("Walk with prefix: %v", keys)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := s3blob.New(context.Background(), s3blob.Config{Endpoint: "localhost:1", Bucket: "b", PartSize: 1 << 20}); err == nil {
		t.Fatal("PartSize below 5 MiB accepted")
	}
}

// BenchmarkWriteCommit measures a 525 KB blob written and committed
// (single PUT) against the local versitygw.
func BenchmarkWriteCommit(b *testing.B) {
	s := newStore(b, s3test.Start(b))
	data := blobtest.Payload(1, 525*1024)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := s.Create(ctx, fmt.Sprintf("%02x/%d.dcm", i%16, i))
		if err != nil {
			b.Fatal(err)
		}
		w.Write(data)
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentCreateSameKey: two writers pass the HEAD check; the
// conditional upload (If-None-Match: *) makes the second Commit fail with
// ErrExists, for the single PUT and for the multipart path.
func TestConcurrentCreateSameKey(t *testing.T) {
	cfg := s3test.Start(t)
	cfg.PartSize = s3blob.MinPartSize
	s := newStore(t, cfg)
	ctx := context.Background()
	for _, n := range []int{1000, 11 << 20} {
		key := fmt.Sprintf("race/%d.dcm", n)
		w1, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		w2, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		w1.Write(blobtest.Payload(1, n))
		w2.Write(blobtest.Payload(2, n))
		if err := w1.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		err = w2.Commit(ctx)
		w2.Abort()
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("size %d: second Commit: %v, want ErrExists", n, err)
		}
		blobtest.Check(t, s, key, blobtest.Payload(1, n))
	}
}
