// Package fsblob is the local filesystem implementation of storage.Blobs.
//
// A blob is written directly at its final path (root/key), created with
// O_EXCL (an existing key fails with storage.ErrExists). There is no
// temp-file-and-rename: a rename would need a directory fsync per instance,
// which on the target disk costs as much as the data itself. Instead a blob
// that exists without being referenced by the index was simply never
// acknowledged, and the GC finds it with Walk.
//
// While data streams in, the writer asks the kernel to start writeback every
// 256 KiB (sync_file_range(SYNC_FILE_RANGE_WRITE), non-blocking), so that the
// fdatasync in Commit mostly waits for I/O already in flight instead of
// issuing all of it at the end. Commit = fdatasync of the file, plus an fsync
// of the parent of every directory this process created on the way and has
// not synced yet (once per directory). The directory entry of a new file in
// an existing directory is persisted by the file's fdatasync on ext4 and XFS
// (their journal commit includes the create); that is the assumption that
// lets us avoid a directory fsync per blob.
package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/relais-health/relais/storage"
	"golang.org/x/sys/unix"
)

const (
	writebackChunk = 256 << 10 // sync_file_range granularity
	bufSize        = 64 << 10  // write buffer, coalesces small writes
)

// Store is a storage.Blobs on a local directory. It is safe for concurrent
// use.
type Store struct {
	root string

	mu sync.Mutex
	// unsynced holds directories (relative, slash-separated) created by this
	// process whose entry in their parent is not known durable yet.
	unsynced map[string]struct{}

	noSFR atomic.Bool // sync_file_range unsupported
	// direct: blobs are written with O_DIRECT (see direct.go).
	direct bool

	pool pool
}

var _ storage.Blobs = (*Store)(nil)

// New opens (creating if needed) a blob store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("fsblob: create root: %w", err)
		}
		if err := syncDir(filepath.Dir(abs)); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	s := &Store{root: abs, unsynced: make(map[string]struct{}), direct: probeDirect(abs)}
	if err := s.prepareDirs(); err != nil {
		return nil, err
	}
	return s, nil
}

// prepareDirs creates the 256 directories CreateUnique spreads blobs over,
// with one fsync of the root for all of them, so that no ingest ever waits
// for a directory's creation and sync.
func (s *Store) prepareDirs() error {
	created := false
	for i := 0; i < 256; i++ {
		err := os.Mkdir(filepath.Join(s.root, fmt.Sprintf("%02x", i)), 0o755)
		switch {
		case err == nil:
			created = true
		case !errors.Is(err, fs.ErrExist):
			return fmt.Errorf("fsblob: prepare directories: %w", err)
		}
	}
	if created {
		return syncDir(s.root)
	}
	return nil
}

// Options tune a Store.
type Options struct {
	// Buffered disables direct I/O: writes go through the page cache and
	// start writeback early with sync_file_range.
	Buffered bool
}

// NewWithOptions is New with options.
func NewWithOptions(dir string, o Options) (*Store, error) {
	s, err := New(dir)
	if err != nil {
		return nil, err
	}
	if o.Buffered {
		s.direct = false
	}
	return s, nil
}

// Direct reports whether the store writes with O_DIRECT.
func (s *Store) Direct() bool { return s.direct }

func (s *Store) openFlags() int {
	fl := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if s.direct {
		fl |= unix.O_DIRECT
	}
	return fl
}

// Root returns the root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

// Create creates the blob file with O_EXCL, creating missing directories.
func (s *Store) Create(ctx context.Context, key string) (storage.BlobWriter, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := s.path(key)
	f, err := os.OpenFile(p, s.openFlags(), 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.mkdirs(parentOf(key)); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(p, s.openFlags(), 0o644)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("fsblob: create %s: %w", key, storage.ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("fsblob: create %s: %w", key, err)
	}
	return s.newWriter(key, f), nil
}

func parentOf(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return ""
}

// mkdirs creates the missing directories of rel (relative, slash-separated)
// and records those it created as unsynced.
func (s *Store) mkdirs(rel string) error {
	if rel == "" {
		return nil
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		d := strings.Join(parts[:i+1], "/")
		// Mkdir and the bookkeeping happen under mu so that a concurrent
		// writer that sees the new directory also sees it as unsynced.
		s.mu.Lock()
		err := os.Mkdir(s.path(d), 0o755)
		if err == nil {
			s.unsynced[d] = struct{}{}
		}
		s.mu.Unlock()
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("fsblob: mkdir %s: %w", d, err)
		}
	}
	return nil
}

// syncDirsOf makes the directory chain of key durable: for every ancestor
// this process created and has not synced, fsync its parent.
func (s *Store) syncDirsOf(key string) error {
	s.mu.Lock()
	if len(s.unsynced) == 0 {
		s.mu.Unlock()
		return nil
	}
	var todo []string
	for d := parentOf(key); d != ""; d = parentOf(d) {
		if _, ok := s.unsynced[d]; ok {
			todo = append(todo, d)
		}
	}
	s.mu.Unlock()
	// Deepest first: each fsync persists the entry of d in its parent.
	for _, d := range todo {
		if err := syncDir(s.path(parentOf(d))); err != nil {
			return err
		}
		s.mu.Lock()
		delete(s.unsynced, d)
		s.mu.Unlock()
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsblob: open dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsblob: fsync dir %s: %w", dir, err)
	}
	return nil
}

func (s *Store) newWriter(key string, f *os.File) *writer {
	if s.direct {
		return &writer{s: s, key: key, f: f, direct: true}
	}
	return &writer{s: s, key: key, f: f, buf: make([]byte, 0, bufSize)}
}

// writer implements storage.BlobWriter.
type writer struct {
	direct bool
	abuf   *[]byte // aligned chunk (direct)
	alen   int

	s         *Store
	key       string
	f         *os.File
	buf       []byte
	off       int64 // bytes written to the file
	wbOff     int64 // start of the range not yet submitted for writeback
	err       error // sticky write error
	committed bool
	aborted   bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.committed || w.aborted || w.f == nil {
		return 0, errors.New("fsblob: write after commit/abort")
	}
	if w.direct {
		return w.writeDirect(p)
	}
	n := len(p)
	if len(w.buf)+len(p) <= cap(w.buf) {
		w.buf = append(w.buf, p...)
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	if err := w.flush(); err != nil {
		return 0, err
	}
	if len(p) >= cap(w.buf) {
		if err := w.writeFile(p); err != nil {
			return 0, err
		}
		return n, nil
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.writeFile(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *writer) writeFile(p []byte) error {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if err != nil {
		w.err = fmt.Errorf("fsblob: write %s: %w", w.key, err)
		return w.err
	}
	if w.off-w.wbOff >= writebackChunk {
		w.startWriteback()
	}
	return nil
}

// startWriteback asks the kernel to start writing [wbOff, off) without
// waiting for it.
func (w *writer) startWriteback() {
	if w.s.noSFR.Load() {
		return
	}
	err := unix.SyncFileRange(int(w.f.Fd()), w.wbOff, w.off-w.wbOff, unix.SYNC_FILE_RANGE_WRITE)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			if !w.s.noSFR.Swap(true) {
				slog.Warn("fsblob: sync_file_range unsupported; early writeback disabled", "root", w.s.root, "err", err)
			}
		}
		// Other errors surface at fdatasync.
		return
	}
	w.wbOff = w.off
}

// Commit flushes, fdatasyncs and closes the file, and syncs newly created
// parent directories.
func (w *writer) Commit(ctx context.Context) error {
	if w.committed {
		return nil
	}
	if w.aborted || w.f == nil {
		return errors.New("fsblob: commit after abort")
	}
	if w.err != nil {
		return w.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.direct {
		if err := w.finishDirect(); err != nil {
			return err
		}
	} else if err := w.flush(); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		w.err = fmt.Errorf("fsblob: fdatasync %s: %w", w.key, err)
		return w.err
	}
	if err := w.f.Close(); err != nil {
		w.err = fmt.Errorf("fsblob: close %s: %w", w.key, err)
		return w.err
	}
	w.f = nil
	if err := w.s.syncDirsOf(w.key); err != nil {
		w.err = err
		return err
	}
	w.committed = true
	return nil
}

// Abort closes and removes the file; a no-op after a successful Commit.
func (w *writer) Abort() error {
	if w.committed || w.aborted {
		return nil
	}
	w.aborted = true
	w.releaseDirect()
	var errs []error
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			errs = append(errs, err)
		}
		w.f = nil
	}
	if err := os.Remove(w.s.path(w.key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fsblob: abort %s: %w", w.key, err)
	}
	return nil
}

// blob implements storage.Blob.
type blob struct {
	*os.File
	size int64
}

func (b *blob) Size() int64 { return b.size }

// OSFile exposes the open file, so that HTTP answers can hand it to the
// kernel (sendfile) instead of copying it through user space.
func (b *blob) OSFile() *os.File { return b.File }

// Open opens a blob for reading.
func (s *Store) Open(ctx context.Context, key string) (storage.Blob, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, wrapNotFound("open", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fsblob: stat %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("fsblob: open %s: %w", key, storage.ErrNotFound)
	}
	return &blob{File: f, size: st.Size()}, nil
}

func wrapNotFound(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("fsblob: %s %s: %w", op, key, storage.ErrNotFound)
	}
	return fmt.Errorf("fsblob: %s %s: %w", op, key, err)
}

// Stat returns the size of a blob.
func (s *Store) Stat(ctx context.Context, key string) (int64, error) {
	if err := storage.CheckKey(key); err != nil {
		return 0, err
	}
	st, err := os.Stat(s.path(key))
	if err != nil {
		return 0, wrapNotFound("stat", key, err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("fsblob: stat %s: %w", key, storage.ErrNotFound)
	}
	return st.Size(), nil
}

// Delete removes a blob (empty directories are kept: fan-out directories are
// reused).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	if _, err := s.Stat(ctx, key); err != nil {
		return err
	}
	if err := os.Remove(s.path(key)); err != nil {
		return wrapNotFound("delete", key, err)
	}
	return nil
}

// Walk visits every regular file under the root in lexical order.
func (s *Store) Walk(ctx context.Context, fn func(key string, size int64) error) error {
	return filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != s.root {
				return nil // removed concurrently
			}
			return fmt.Errorf("fsblob: walk: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("fsblob: walk: %w", err)
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return fmt.Errorf("fsblob: walk: %w", err)
		}
		key := filepath.ToSlash(rel)
		if s.isPooled(key) {
			return nil // prepared ahead, not a blob yet
		}
		return fn(key, info.Size())
	})
}

func errorsIsExists(err error) bool { return errors.Is(err, storage.ErrExists) }
