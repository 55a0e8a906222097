package fsblob

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"os"
	"sync"

	"github.com/relais-health/relais/storage"
)

// poolSize is how many empty blobs are kept ready. A burst larger than the
// pool falls back to creating files inline.
const poolSize = 16

// pooled is a file created ahead of time, empty, under its final key.
type pooled struct {
	f   *os.File
	key string
}

// pool creates blob files ahead of time in a background goroutine.
type pool struct {
	once sync.Once
	mu   sync.Mutex
	keys map[string]struct{} // prepared, not handed out

	ready chan pooled
	stop  chan struct{}
	done  chan struct{}
}

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// uniqueKey is a random key spread over 256 directories: 120 bits of
// randomness make a collision (caught by O_EXCL anyway) negligible.
func uniqueKey() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%02x/%s.dcm", b[0], keyEncoding.EncodeToString(b[1:]))
}

// CreateUnique implements storage.UniqueCreator: it hands out a file created
// ahead of time when one is ready, else creates one now.
func (s *Store) CreateUnique(ctx context.Context) (storage.BlobWriter, string, error) {
	s.pool.once.Do(s.startPool)
	select {
	case p, ok := <-s.pool.ready:
		if ok {
			s.pool.mu.Lock()
			delete(s.pool.keys, p.key)
			s.pool.mu.Unlock()
			return s.newWriter(p.key, p.f), p.key, nil
		}
	default:
	}
	for {
		key := uniqueKey()
		w, err := s.Create(ctx, key)
		if err == nil {
			return w, key, nil
		}
		if !errorsIsExists(err) {
			return nil, "", err
		}
	}
}

func (s *Store) startPool() {
	s.pool.keys = map[string]struct{}{}
	s.pool.ready = make(chan pooled, poolSize)
	s.pool.stop = make(chan struct{})
	s.pool.done = make(chan struct{})
	go func() {
		defer close(s.pool.done)
		defer close(s.pool.ready)
		for {
			key := uniqueKey()
			// Registered before the file exists, so Walk never sees it.
			s.pool.mu.Lock()
			s.pool.keys[key] = struct{}{}
			s.pool.mu.Unlock()
			w, err := s.Create(context.Background(), key)
			if err != nil {
				s.pool.mu.Lock()
				delete(s.pool.keys, key)
				s.pool.mu.Unlock()
				if errorsIsExists(err) {
					continue
				}
				// Inline creation reports the error to the caller.
				return
			}
			p := pooled{f: w.(*writer).f, key: key}
			select {
			case s.pool.ready <- p:
			case <-s.pool.stop:
				p.f.Close()
				os.Remove(s.path(key))
				return
			}
		}
	}()
}

// Close stops preparing blobs and removes the prepared, unused ones. Blobs
// already handed out are unaffected. A crash leaves them as empty files that
// no index record names.
func (s *Store) Close() error {
	s.pool.once.Do(func() {})
	if s.pool.stop == nil {
		return nil
	}
	close(s.pool.stop)
	for p := range s.pool.ready {
		p.f.Close()
		os.Remove(s.path(p.key))
	}
	<-s.pool.done
	return nil
}

func (s *Store) isPooled(key string) bool {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	_, ok := s.pool.keys[key]
	return ok
}
