// Package blobtest is the conformance suite every storage.Blobs backend must
// pass. Backends call Run from their tests.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"sync"
	"testing"

	"github.com/relais-health/relais/storage"
)

// Run runs the conformance suite. newStore must return an empty store; it is
// called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.Blobs) {
	t.Run("WriteCommitRead", func(t *testing.T) { testWriteCommitRead(t, newStore(t)) })
	t.Run("SmallWrites", func(t *testing.T) { testSmallWrites(t, newStore(t)) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("Large", func(t *testing.T) { testLarge(t, newStore(t)) })
	t.Run("Exists", func(t *testing.T) { testExists(t, newStore(t)) })
	t.Run("Abort", func(t *testing.T) { testAbort(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("Walk", func(t *testing.T) { testWalk(t, newStore(t)) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, newStore(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

// Payload returns deterministic pseudo-random bytes.
func Payload(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// Put writes and commits a blob.
func Put(t testing.TB, s storage.Blobs, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatalf("Create(%s): %v", key, err)
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write(%s): %v", key, err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit(%s): %v", key, err)
	}
}

// Check verifies a blob's content through Read, ReadAt, Seek and Size.
func Check(t testing.TB, s storage.Blobs, key string, want []byte) {
	t.Helper()
	ctx := context.Background()
	size, err := s.Stat(ctx, key)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("Stat(%s) = %d, %v; want %d", key, size, err, len(want))
	}
	b, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer b.Close()
	if b.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", b.Size(), len(want))
	}
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll(%s): %d bytes, err %v, equal %v", key, len(got), err, bytes.Equal(got, want))
	}
	if len(want) == 0 {
		return
	}
	off := int64(len(want) / 3)
	n := min(len(want)-int(off), 1000)
	buf := make([]byte, n)
	if k, err := b.ReadAt(buf, off); k != n || (err != nil && err != io.EOF) || !bytes.Equal(buf, want[off:off+int64(n)]) {
		t.Fatalf("ReadAt(%d) = %d, %v", off, k, err)
	}
	if p, err := b.Seek(off, io.SeekStart); err != nil || p != off {
		t.Fatalf("Seek = %d, %v", p, err)
	}
	if k, err := io.ReadFull(b, buf); k != n || err != nil || !bytes.Equal(buf, want[off:off+int64(n)]) {
		t.Fatalf("Read after Seek = %d, %v", k, err)
	}
	if p, err := b.Seek(-1, io.SeekEnd); err != nil || p != int64(len(want)-1) {
		t.Fatalf("Seek end = %d, %v", p, err)
	}
	one := make([]byte, 1)
	if k, _ := b.Read(one); k != 1 || one[0] != want[len(want)-1] {
		t.Fatalf("Read last byte = %d", k)
	}
}

func testWriteCommitRead(t *testing.T, s storage.Blobs) {
	data := Payload(1, 525*1024+17)
	Put(t, s, "ab/cd/1.2.840.10008.1.dcm", data)
	Check(t, s, "ab/cd/1.2.840.10008.1.dcm", data)
	Put(t, s, "top.dcm", data[:100])
	Check(t, s, "top.dcm", data[:100])
}

func testSmallWrites(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	data := Payload(2, 300*1024+3)
	w, err := s.Create(ctx, "sm/al/small-writes.dcm")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := 0; i < len(data); {
		n := min(1+i%997, len(data)-i)
		if _, err := w.Write(data[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit must be a no-op: %v", err)
	}
	Check(t, s, "sm/al/small-writes.dcm", data)
}

func testEmpty(t *testing.T, s storage.Blobs) {
	Put(t, s, "em/pt/y.dcm", nil)
	Check(t, s, "em/pt/y.dcm", nil)
}

func testLarge(t *testing.T, s storage.Blobs) {
	// Larger than the minimum S3 part size, so multipart paths run.
	data := Payload(3, 12<<20+12345)
	ctx := context.Background()
	w, err := s.Create(ctx, "la/rg/e.dcm")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := 0; i < len(data); i += 64 << 10 {
		if _, err := w.Write(data[i:min(i+64<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	Check(t, s, "la/rg/e.dcm", data)
}

func testExists(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	Put(t, s, "ex/is/ts.dcm", []byte("first"))
	w, err := s.Create(ctx, "ex/is/ts.dcm")
	if err == nil {
		// A backend may detect the conflict only at Commit.
		_, _ = w.Write([]byte("second"))
		err = w.Commit(ctx)
		w.Abort()
	}
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Create of an existing key: %v, want ErrExists", err)
	}
	Check(t, s, "ex/is/ts.dcm", []byte("first"))
}

func testAbort(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	for _, n := range []int{0, 1000, 6 << 20} {
		key := fmt.Sprintf("ab/or/t%d.dcm", n)
		w, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(Payload(4, n)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("second Abort: %v", err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat after Abort: %v", err)
		}
		// The key is free again.
		Put(t, s, key, []byte("again"))
		Check(t, s, key, []byte("again"))
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := s.Walk(ctx, func(string, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("Walk after Abort found %d blobs", n)
	}
}

func testNotFound(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	if _, err := s.Stat(ctx, "no/pe/x.dcm"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat: %v", err)
	}
	if _, err := s.Open(ctx, "no/pe/x.dcm"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Delete(ctx, "no/pe/x.dcm"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete: %v", err)
	}
}

func testDelete(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	Put(t, s, "de/le/te.dcm", []byte("x"))
	Put(t, s, "de/le/keep.dcm", []byte("y"))
	if err := s.Delete(ctx, "de/le/te.dcm"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "de/le/te.dcm"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
	Check(t, s, "de/le/keep.dcm", []byte("y"))
}

func testWalk(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	want := map[string]int64{}
	for i := 0; i < 25; i++ {
		key := fmt.Sprintf("%02x/%02x/1.2.3.%d.dcm", i%4, i%3, i)
		Put(t, s, key, Payload(int64(i), i*10))
		want[key] = int64(i * 10)
	}
	got := map[string]int64{}
	var order []string
	if err := s.Walk(ctx, func(k string, n int64) error {
		got[k] = n
		order = append(order, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Walk found %d blobs, want %d: %v", len(got), len(want), order)
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("Walk: %s size %d, want %d", k, got[k], n)
		}
	}
	if !sort.StringsAreSorted(order) {
		t.Fatalf("Walk not in lexical order: %v", order)
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Walk(ctx, func(string, int64) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk error propagation: %v after %d calls", err, calls)
	}
}

func testInvalidKeys(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	for _, k := range []string{"", "/abs/x", "../x", "a/../../x", "a//b", "a/./b", "a/"} {
		if _, err := s.Create(ctx, k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Create(%q): %v, want ErrInvalidKey", k, err)
		}
	}
}

func testConcurrent(t *testing.T, s storage.Blobs) {
	ctx := context.Background()
	const N = 16
	var wg sync.WaitGroup
	for i := 0; i < N; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			key := fmt.Sprintf("c%d/%02d/blob%d.dcm", i%2, i%5, i)
			data := Payload(int64(100+i), 200*1024+i)
			w, err := s.Create(ctx, key)
			if err != nil {
				t.Error(err)
				return
			}
			defer w.Abort()
			for off := 0; off < len(data); off += 16 << 10 {
				if _, err := w.Write(data[off:min(off+16<<10, len(data))]); err != nil {
					t.Error(err)
					return
				}
			}
			if err := w.Commit(ctx); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	for i := 0; i < N; i++ {
		Check(t, s, fmt.Sprintf("c%d/%02d/blob%d.dcm", i%2, i%5, i), Payload(int64(100+i), 200*1024+i))
	}
}
