package fsblob

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Direct I/O. A blob is written with O_DIRECT in aligned chunks as the data
// arrives, so the device is already holding most of an instance when its
// last byte comes in: Commit then writes the last (padded) block, trims
// the file to its real size and fdatasyncs, which flushes the device cache
// and commits the size, instead of waiting for the whole instance to be
// written back from the page cache. It also spares the copy into the page
// cache. Filesystems without O_DIRECT (tmpfs) fall back to buffered writes.

const (
	directAlign = 4096      // covers 512-byte and 4K logical blocks
	directChunk = 256 << 10 // one pwrite per chunk
)

var directPool = sync.Pool{New: func() any {
	raw := make([]byte, directChunk+directAlign)
	off := int(uintptr(unsafe.Pointer(&raw[0])) & (directAlign - 1))
	if off != 0 {
		off = directAlign - off
	}
	b := raw[off : off+directChunk : off+directChunk]
	return &b
}}

// probeDirect reports whether dir's filesystem accepts O_DIRECT writes.
func probeDirect(dir string) bool {
	p := filepath.Join(dir, ".direct-probe")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o644)
	if err != nil {
		return false
	}
	defer os.Remove(p)
	defer f.Close()
	b := directPool.Get().(*[]byte)
	defer directPool.Put(b)
	_, err = f.WriteAt((*b)[:directAlign], 0)
	return err == nil
}

// writeDirect buffers p in the aligned chunk, writing full chunks.
func (w *writer) writeDirect(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.abuf == nil {
			w.abuf = directPool.Get().(*[]byte)
		}
		c := copy((*w.abuf)[w.alen:], p)
		w.alen += c
		p = p[c:]
		if w.alen == directChunk {
			if err := w.pwrite((*w.abuf)[:directChunk]); err != nil {
				return n - len(p), err
			}
			w.off += directChunk
			w.alen = 0
		}
	}
	return n, nil
}

func (w *writer) pwrite(b []byte) error {
	for len(b) > 0 {
		m, err := w.f.WriteAt(b, w.off)
		if err != nil {
			w.err = fmt.Errorf("fsblob: write %s: %w", w.key, err)
			return w.err
		}
		if m%directAlign != 0 {
			w.err = fmt.Errorf("fsblob: write %s: short direct write of %d bytes", w.key, m)
			return w.err
		}
		b = b[m:]
	}
	return nil
}

// finishDirect writes the unaligned tail through the page cache (O_DIRECT
// cleared on the descriptor), which sets the exact size without the
// truncate a padded direct write would need. The caller fdatasyncs.
func (w *writer) finishDirect() error {
	if w.alen > 0 {
		tail := (*w.abuf)[:w.alen]
		aligned := w.alen &^ (directAlign - 1)
		if aligned > 0 {
			if err := w.pwrite(tail[:aligned]); err != nil {
				return err
			}
			w.off += int64(aligned)
			tail = tail[aligned:]
		}
		if len(tail) > 0 {
			fd := int(w.f.Fd())
			fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			if err == nil {
				_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT)
			}
			if err == nil {
				_, err = w.f.WriteAt(tail, w.off)
			}
			if err != nil {
				w.err = fmt.Errorf("fsblob: write %s: %w", w.key, err)
				return w.err
			}
			w.off += int64(len(tail))
		}
		w.alen = 0
	}
	w.releaseDirect()
	return nil
}

func (w *writer) releaseDirect() {
	if w.abuf != nil {
		directPool.Put(w.abuf)
		w.abuf = nil
	}
}
