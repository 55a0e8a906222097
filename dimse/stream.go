package dimse

import (
	"io"
	"sync"
	"sync/atomic"
)

// pbuf is a pooled buffer holding the body of one P-DATA-TF PDU. Its PDVs
// are handed to data streams as chunks that alias it; refs counts the
// holders, and the last release puts it back in its pool.
type pbuf struct {
	b    []byte
	refs atomic.Int32
	pool *sync.Pool
}

func (p *pbuf) release() {
	if p == nil {
		return
	}
	if p.refs.Add(-1) == 0 {
		p.pool.Put(p)
	}
}

var bufPools sync.Map // int (capacity) → *sync.Pool

// getBuf returns a buffer with capacity size and one reference.
func getBuf(size int) *pbuf {
	pv, ok := bufPools.Load(size)
	if !ok {
		p := &sync.Pool{}
		p.New = func() any { return &pbuf{b: make([]byte, size), pool: p} }
		pv, _ = bufPools.LoadOrStore(size, p)
	}
	b := pv.(*sync.Pool).Get().(*pbuf)
	b.refs.Store(1)
	return b
}

// chunk is one PDV of a data set on its way from the reader goroutine to
// the consumer.
type chunk struct {
	buf  *pbuf
	data []byte
	last bool
}

// streamDepth is the number of PDVs a data stream buffers between the
// reader goroutine and the consumer; with PDUs of at most MaxPDULength it
// bounds the memory one association holds.
const streamDepth = 4

// dataStream is the io.Reader of a data set being received: the reader
// goroutine feeds it PDV by PDV; Read blocks until the next PDV arrives.
// It is used by one consumer goroutine.
type dataStream struct {
	ch       chan chunk
	done     <-chan struct{} // association ended
	cur      chunk
	off      int
	lastSeen bool
	eof      bool
	err      error
	n        int64 // bytes consumed
}

func newDataStream(done <-chan struct{}) *dataStream {
	return &dataStream{ch: make(chan chunk, streamDepth), done: done}
}

// next releases the current chunk and waits for the following one.
func (s *dataStream) next() error {
	if s.cur.buf != nil {
		s.cur.buf.release()
	}
	s.cur, s.off = chunk{}, 0
	if s.lastSeen {
		s.eof = true
		return io.EOF
	}
	var c chunk
	select {
	case c = <-s.ch:
	default:
		select {
		case c = <-s.ch:
		case <-s.done:
			// Prefer data already queued.
			select {
			case c = <-s.ch:
			default:
				s.err = ErrAssociationEnded
				return s.err
			}
		}
	}
	s.cur = c
	s.lastSeen = c.last
	return nil
}

// Read implements io.Reader.
func (s *dataStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for s.off >= len(s.cur.data) {
		if s.eof {
			return 0, io.EOF
		}
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.cur.data[s.off:])
	s.off += n
	s.n += int64(n)
	return n, nil
}

// WriteTo implements io.WriterTo, writing each PDV straight from the PDU
// buffer without an intermediate copy.
func (s *dataStream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if s.err != nil {
			return total, s.err
		}
		if s.off < len(s.cur.data) {
			n, err := w.Write(s.cur.data[s.off:])
			s.off += n
			s.n += int64(n)
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if s.eof {
			return total, nil
		}
		if err := s.next(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}

// drain discards the rest of the data set.
func (s *dataStream) drain() error {
	for !s.eof && s.err == nil {
		s.off = len(s.cur.data)
		if err := s.next(); err != nil && err != io.EOF {
			return err
		}
	}
	return s.err
}
