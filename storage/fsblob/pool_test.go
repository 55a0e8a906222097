package fsblob

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestCreateUniquePreparesAhead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for i := 0; i < 40; i++ {
		w, key, err := s.CreateUnique(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if keys[key] {
			t.Fatalf("key %s handed out twice", key)
		}
		keys[key] = true
		w.Write([]byte("data"))
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Walk lists the committed blobs, not the prepared ones.
	n := 0
	if err := s.Walk(ctx, func(key string, size int64) error {
		if !keys[key] {
			t.Errorf("Walk lists %s, never handed out", key)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 40 {
		t.Errorf("Walk found %d blobs, want 40", n)
	}
	// Close removes the prepared files.
	s.Close()
	files := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return nil
	})
	if files != 40 {
		t.Errorf("%d files on disk after Close, want the 40 committed", files)
	}
}
