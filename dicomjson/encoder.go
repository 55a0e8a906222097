package dicomjson

import (
	"encoding/base64"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/relais-health/relais/dicom"
)

// flushAt is the buffered size at which the encoder writes to its writer.
const flushAt = 32 << 10

// encoder appends JSON to a buffer and writes it out in chunks of about
// flushAt bytes, so that a large dataset costs a few writes and no
// allocation once the pooled buffer has grown.
type encoder struct {
	w       io.Writer
	buf     []byte
	err     error
	scratch []byte      // for decoded or byte-swapped values
	tags    []dicom.Tag // WriteDataset: tags of the objects being written
	keys    []uint64    // WriteAttrs: sort keys of the objects being written
	strs    []string    // WriteAttrs: their values
	num     [24]byte    // digits of one number
}

var encoderPool = sync.Pool{New: func() any {
	return &encoder{buf: make([]byte, 0, flushAt+4096)}
}}

func getEncoder(w io.Writer) *encoder {
	e := encoderPool.Get().(*encoder)
	e.w, e.err = w, nil
	return e
}

func putEncoder(e *encoder) {
	e.w = nil
	e.buf = e.buf[:0]
	if cap(e.scratch) > 1<<20 {
		e.scratch = nil
	}
	if cap(e.buf) > 1<<20 {
		e.buf = make([]byte, 0, flushAt+4096)
	}
	e.tags, e.keys, e.strs = e.tags[:0], e.keys[:0], e.strs[:0]
	encoderPool.Put(e)
}

// maybeFlush writes the buffer out once it is over flushAt.
func (e *encoder) maybeFlush() {
	if len(e.buf) >= flushAt {
		e.flush()
	}
}

// flush writes the buffered bytes and returns the first write error.
func (e *encoder) flush() error {
	if e.err == nil && len(e.buf) > 0 {
		_, e.err = e.w.Write(e.buf)
	}
	e.buf = e.buf[:0]
	return e.err
}

func (e *encoder) byte(c byte)       { e.buf = append(e.buf, c) }
func (e *encoder) raw(s string)      { e.buf = append(e.buf, s...) }
func (e *encoder) rawBytes(b []byte) { e.buf = append(e.buf, b...) }

const hexDigits = "0123456789ABCDEF"

// appendTagHex appends t as 8 upper-case hex digits.
func appendTagHex(b []byte, t dicom.Tag) []byte {
	for s := 28; s >= 0; s -= 4 {
		b = append(b, hexDigits[(uint32(t)>>uint(s))&0xF])
	}
	return b
}

// key writes `"GGGGEEEE":{"vr":"XX"` preceded by a comma unless first.
func (e *encoder) attrStart(first bool, t dicom.Tag, vr dicom.VR) {
	if !first {
		e.byte(',')
	}
	e.byte('"')
	e.buf = appendTagHex(e.buf, t)
	e.raw(`":{"vr":"`)
	if knownVR(vr) {
		e.raw(string(vr))
	} else {
		e.raw("UN")
	}
	e.byte('"')
}

func knownVRSlow(vr dicom.VR) bool {
	switch vr {
	case dicom.VRAE, dicom.VRAS, dicom.VRAT, dicom.VRCS, dicom.VRDA, dicom.VRDS, dicom.VRDT, dicom.VRFD,
		dicom.VRFL, dicom.VRIS, dicom.VRLO, dicom.VRLT, dicom.VROB, dicom.VROD, dicom.VROF, dicom.VROL,
		dicom.VROV, dicom.VROW, dicom.VRPN, dicom.VRSH, dicom.VRSL, dicom.VRSQ, dicom.VRSS, dicom.VRST,
		dicom.VRSV, dicom.VRTM, dicom.VRUC, dicom.VRUI, dicom.VRUL, dicom.VRUN, dicom.VRUR, dicom.VRUS,
		dicom.VRUT, dicom.VRUV:
		return true
	}
	return false
}

// str writes s as a JSON string. Invalid UTF-8 is replaced by U+FFFD, so
// the output is always valid UTF-8 JSON.
func (e *encoder) str(s []byte) {
	e.byte('"')
	e.strBody(s)
	e.byte('"')
}

func (e *encoder) strBody(s []byte) {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			i++
			continue
		}
		if c < 0x80 {
			e.rawBytes(s[start:i])
			switch c {
			case '"':
				e.raw(`\"`)
			case '\\':
				e.raw(`\\`)
			case '\n':
				e.raw(`\n`)
			case '\r':
				e.raw(`\r`)
			case '\t':
				e.raw(`\t`)
			case '\b':
				e.raw(`\b`)
			case '\f':
				e.raw(`\f`)
			default:
				e.raw(`\u00`)
				e.byte(hexDigits[c>>4])
				e.byte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			e.rawBytes(s[start:i])
			e.raw(`\ufffd`)
			i++
			start = i
			continue
		}
		i += size
	}
	e.rawBytes(s[start:])
}

// strString is str for a string.
func (e *encoder) strString(s string) {
	e.byte('"')
	start := len(e.buf)
	e.buf = append(e.buf, s...)
	// Re-escape in place only when needed (rare): check first.
	if needsEscape(e.buf[start:]) {
		tmp := append(e.scratch[:0], e.buf[start:]...)
		e.buf = e.buf[:start]
		e.strBody(tmp)
		e.scratch = tmp
	}
	e.byte('"')
}

func needsEscape(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return true
		}
	}
	return false
}

// base64 writes b as a JSON string holding its base64 encoding.
func (e *encoder) base64(b []byte) {
	e.byte('"')
	e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
	e.byte('"')
}
