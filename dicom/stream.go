package dicom

import (
	"bufio"
	"encoding/binary"
	"io"
	"sync"
)

const (
	undefinedLength = 0xFFFFFFFF
	bufSize         = 64 << 10
)

// encoding is the element encoding in effect at one level of a dataset. It
// differs from the transfer syntax inside UN elements of undefined length,
// which are always implicit VR little endian.
type encoding struct {
	explicit bool
	be       bool
}

var implicitLE = encoding{}

func (e encoding) u16(b []byte) uint16 {
	if e.be {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (e encoding) u32(b []byte) uint32 {
	if e.be {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (e encoding) putU16(b []byte, v uint16) {
	if e.be {
		binary.BigEndian.PutUint16(b, v)
	} else {
		binary.LittleEndian.PutUint16(b, v)
	}
}

func (e encoding) putU32(b []byte, v uint32) {
	if e.be {
		binary.BigEndian.PutUint32(b, v)
	} else {
		binary.LittleEndian.PutUint32(b, v)
	}
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

func getReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// stream is a bounded reader over one encoded dataset that tracks the
// offset of every byte consumed.
type stream struct {
	br  *bufio.Reader
	off int64
	lim Limits
}

// errCleanEOF is returned by header when the input ends exactly at an
// element boundary.
var errCleanEOF = io.EOF

// header reads one element, item or delimiter header. For item and
// delimitation tags (group FFFE) vr is "". In implicit VR, vr comes from the
// dictionary.
func (s *stream) header(enc encoding) (tag Tag, vr VR, length uint32, err error) {
	start := s.off
	b, err := s.br.Peek(8)
	if len(b) < 8 {
		if len(b) == 0 && err == io.EOF {
			return 0, "", 0, errCleanEOF
		}
		if err == io.EOF {
			return 0, "", 0, scanErr(start, 0, ErrTruncated, "data ends inside an element header (%d of 8 bytes)", len(b))
		}
		return 0, "", 0, readErr(start, 0, err, "an element header")
	}
	tag = Tag(uint32(enc.u16(b[0:]))<<16 | uint32(enc.u16(b[2:])))
	n := 8
	switch {
	case tag.Group() == 0xFFFE:
		length = enc.u32(b[4:])
	case !enc.explicit:
		length = enc.u32(b[4:])
		vr = LookupVR(tag)
	default:
		var ok bool
		vr, ok = vrFromBytes(b[4], b[5])
		if !ok {
			return tag, "", 0, scanErr(start, tag, ErrMalformed, "invalid VR %q", b[4:6])
		}
		if vr.HasLongLength() {
			n = 12
			b, err = s.br.Peek(12)
			if len(b) < 12 {
				if err == io.EOF {
					return tag, vr, 0, scanErr(start, tag, ErrTruncated, "data ends inside an element header (%d of 12 bytes)", len(b))
				}
				return tag, vr, 0, readErr(start, tag, err, "an element header")
			}
			length = enc.u32(b[8:])
		} else {
			length = uint32(enc.u16(b[6:]))
		}
	}
	if s.lim.MaxDatasetSize > 0 && s.off+int64(n) > s.lim.MaxDatasetSize {
		return tag, vr, length, scanErr(start, tag, ErrLimitExceeded, "dataset larger than %d bytes", s.lim.MaxDatasetSize)
	}
	s.br.Discard(n)
	s.off += int64(n)
	return tag, vr, length, nil
}

// checkValue validates a defined value length against the limits and the end
// of the enclosing item (end < 0: no enclosing defined length).
func (s *stream) checkValue(start int64, tag Tag, length uint32, end int64) error {
	if length > s.lim.MaxValueLength {
		return scanErr(start, tag, ErrLimitExceeded, "value length %d over limit %d", length, s.lim.MaxValueLength)
	}
	if end >= 0 && s.off+int64(length) > end {
		return scanErr(start, tag, ErrMalformed, "value of length %d runs past the end of its enclosing item/sequence at offset %d", length, end)
	}
	if s.lim.MaxDatasetSize > 0 && s.off+int64(length) > s.lim.MaxDatasetSize {
		return scanErr(start, tag, ErrLimitExceeded, "dataset larger than %d bytes", s.lim.MaxDatasetSize)
	}
	return nil
}

// skip discards n bytes of a value through the reader's buffer.
func (s *stream) skip(n int64, start int64, tag Tag) error {
	for n > 0 {
		chunk := n
		if chunk > 1<<30 {
			chunk = 1 << 30
		}
		d, err := s.br.Discard(int(chunk))
		s.off += int64(d)
		n -= int64(d)
		if err != nil {
			return readErr(start, tag, err, "a value")
		}
	}
	return nil
}

// readFull reads len(p) value bytes.
func (s *stream) readFull(p []byte, start int64, tag Tag) error {
	n, err := io.ReadFull(s.br, p)
	s.off += int64(n)
	if err != nil {
		return readErr(start, tag, err, "a value")
	}
	return nil
}
