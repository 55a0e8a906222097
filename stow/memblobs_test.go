package stow

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/relais-health/relais/storage"
)

// memBlobs is an in-memory storage.Blobs for the fuzz target (fsync-free).
// Walk lists uncommitted blobs too, as fsblob does for partial ones, so a
// writer that is neither committed nor aborted is seen as a leftover.
type memBlobs struct {
	mu      sync.Mutex
	blobs   map[string][]byte
	pending map[string]bool
}

func newMemBlobs() *memBlobs {
	return &memBlobs{blobs: map[string][]byte{}, pending: map[string]bool{}}
}

type memWriter struct {
	s    *memBlobs
	key  string
	buf  bytes.Buffer
	done bool
}

func (w *memWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }

func (w *memWriter) Commit(context.Context) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.done {
		return errors.New("memblobs: writer closed")
	}
	w.done = true
	delete(w.s.pending, w.key)
	w.s.blobs[w.key] = w.buf.Bytes()
	return nil
}

func (w *memWriter) Abort() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if !w.done {
		w.done = true
		delete(w.s.pending, w.key)
	}
	return nil
}

func (s *memBlobs) Create(_ context.Context, key string) (storage.BlobWriter, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[key]; ok || s.pending[key] {
		return nil, storage.ErrExists
	}
	s.pending[key] = true
	return &memWriter{s: s, key: key}, nil
}

type memBlob struct {
	*bytes.Reader
}

func (memBlob) Close() error { return nil }

func (s *memBlobs) Open(_ context.Context, key string) (storage.Blob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return memBlob{bytes.NewReader(b)}, nil
}

func (s *memBlobs) Stat(_ context.Context, key string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[key]
	if !ok {
		return 0, storage.ErrNotFound
	}
	return int64(len(b)), nil
}

func (s *memBlobs) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[key]; !ok {
		return storage.ErrNotFound
	}
	delete(s.blobs, key)
	return nil
}

func (s *memBlobs) Walk(_ context.Context, fn func(string, int64) error) error {
	s.mu.Lock()
	keys := make([]string, 0, len(s.blobs)+len(s.pending))
	sizes := map[string]int64{}
	for k, b := range s.blobs {
		keys = append(keys, k)
		sizes[k] = int64(len(b))
	}
	for k := range s.pending {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(k, sizes[k]); err != nil {
			return err
		}
	}
	return nil
}
