package ingest

import (
	"hash"
	"io"
	"sync"
)

// sinkChunk is the unit handed to the sink's goroutine.
const sinkChunk = 128 << 10

// sinkDepth bounds the chunks in flight per instance: memory per ingest is
// sinkDepth × sinkChunk whatever the instance's size.
const sinkDepth = 4

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, sinkChunk); return &b }}

// asyncSink hashes and writes to the blob on its own goroutine, so that the
// receiving goroutine only copies bytes and scans them: on a two-core
// machine the blob's write syscalls and SHA-256 run beside the network
// receive instead of after it.
type asyncSink struct {
	h    hash.Hash
	w    io.Writer
	ch   chan *[]byte
	done chan struct{}
	cur  *[]byte
	err  error // set by the goroutine; read after done or as a hint
	mu   sync.Mutex
}

func newAsyncSink(w io.Writer, h hash.Hash) *asyncSink {
	s := &asyncSink{h: h, w: w, ch: make(chan *[]byte, sinkDepth), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *asyncSink) run() {
	defer close(s.done)
	for b := range s.ch {
		s.h.Write(*b)
		if s.failed() == nil {
			if _, err := s.w.Write(*b); err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
		}
		*b = (*b)[:0]
		chunkPool.Put(b)
	}
}

func (s *asyncSink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Write copies p into the current chunk, handing full chunks over.
func (s *asyncSink) Write(p []byte) (int, error) {
	if err := s.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if s.cur == nil {
			s.cur = chunkPool.Get().(*[]byte)
		}
		c := copy((*s.cur)[len(*s.cur):cap(*s.cur)], p)
		*s.cur = (*s.cur)[:len(*s.cur)+c]
		p = p[c:]
		if len(*s.cur) == cap(*s.cur) {
			s.ch <- s.cur
			s.cur = nil
		}
	}
	return n, nil
}

// Close hands the last chunk over, waits for the goroutine and returns the
// first write error.
func (s *asyncSink) Close() error {
	if s.cur != nil && len(*s.cur) > 0 {
		s.ch <- s.cur
		s.cur = nil
	}
	close(s.ch)
	<-s.done
	return s.err
}
