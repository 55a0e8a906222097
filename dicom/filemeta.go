package dicom

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// FileMeta is the File Meta Information of a Part 10 file (PS3.10 7.1).
type FileMeta struct {
	MediaStorageSOPClassUID      string
	MediaStorageSOPInstanceUID   string
	TransferSyntaxUID            string
	ImplementationClassUID       string
	ImplementationVersionName    string
	SourceApplicationEntityTitle string
}

// Defaults written by WriteFileMeta when FileMeta leaves them empty.
const (
	// DefaultImplementationClassUID identifies Relais (a UUID-derived UID
	// under the 2.25 arc, PS3.5 B.2).
	DefaultImplementationClassUID = "2.25.8751398169644868816819877782057602923"
	// DefaultImplementationVersionName is Relais' implementation version.
	DefaultImplementationVersionName = "RELAIS_1"
)

const maxMetaSize = 64 << 10

type peeker interface {
	Peek(n int) ([]byte, error)
}

// ReadFileMeta reads the 128-byte preamble, the "DICM" prefix and the group
// 0002 elements (explicit VR little endian) from r, consuming exactly those
// bytes, and returns the meta and the number of bytes consumed (the offset of
// the dataset). The group is bounded to 64 KiB. Without a File Meta
// Information Group Length element the group is read element by element,
// which requires r to have a Peek method (e.g. *bufio.Reader).
func ReadFileMeta(r io.Reader) (FileMeta, int64, error) {
	var m FileMeta
	var pre [132]byte
	n, err := io.ReadFull(r, pre[:])
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return m, int64(n), fmt.Errorf("%w: only %d bytes", ErrNotPart10, n)
		}
		return m, int64(n), fmt.Errorf("dicom: reading preamble: %w", err)
	}
	if string(pre[128:]) != "DICM" {
		return m, 132, fmt.Errorf("%w: no DICM prefix", ErrNotPart10)
	}
	off := int64(132)
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:8]); err != nil {
		return m, off, readErr(off, 0, err, "file meta information")
	}
	tag := NewTag(binary.LittleEndian.Uint16(hdr[0:]), binary.LittleEndian.Uint16(hdr[2:]))
	var group []byte
	if tag == TagFileMetaInformationGroupLength {
		if string(hdr[4:6]) != "UL" || binary.LittleEndian.Uint16(hdr[6:]) != 4 {
			return m, off, scanErr(off, tag, ErrMalformed, "group length element is not UL of 4 bytes")
		}
		var v [4]byte
		if _, err := io.ReadFull(r, v[:]); err != nil {
			return m, off + 8, readErr(off, tag, err, "file meta information")
		}
		gl := binary.LittleEndian.Uint32(v[:])
		if gl > maxMetaSize {
			return m, off + 12, scanErr(off, tag, ErrLimitExceeded, "file meta group length %d over %d", gl, maxMetaSize)
		}
		off += 12
		group = make([]byte, gl)
		if _, err := io.ReadFull(r, group); err != nil {
			return m, off, readErr(off, tag, err, "file meta information")
		}
		off += int64(gl)
	} else {
		p, ok := r.(peeker)
		if !ok {
			return m, off + 8, scanErr(off, tag, ErrMalformed, "file meta information without group length")
		}
		// Re-assemble the group element by element.
		var buf bytes.Buffer
		buf.Write(hdr[:8])
		cur := hdr[:8]
		for {
			if NewTag(binary.LittleEndian.Uint16(cur[0:]), binary.LittleEndian.Uint16(cur[2:])).Group() != 2 {
				return m, off, scanErr(off, 0, ErrMalformed, "file meta information without group 0002 element")
			}
			vr, ok := vrFromBytes(cur[4], cur[5])
			if !ok {
				return m, off, scanErr(off, 0, ErrMalformed, "invalid VR in file meta information")
			}
			var length uint32
			if vr.HasLongLength() {
				if _, err := io.ReadFull(r, hdr[8:12]); err != nil {
					return m, off, readErr(off, 0, err, "file meta information")
				}
				buf.Write(hdr[8:12])
				length = binary.LittleEndian.Uint32(hdr[8:])
			} else {
				length = uint32(binary.LittleEndian.Uint16(cur[6:]))
			}
			if uint64(buf.Len())+uint64(length) > maxMetaSize {
				return m, off, scanErr(off, 0, ErrLimitExceeded, "file meta information over %d bytes", maxMetaSize)
			}
			if _, err := io.CopyN(&buf, r, int64(length)); err != nil {
				return m, off, readErr(off, 0, err, "file meta information")
			}
			next, err := p.Peek(4)
			if len(next) < 4 || binary.LittleEndian.Uint16(next) != 2 {
				_ = err
				break
			}
			if _, err := io.ReadFull(r, hdr[:8]); err != nil {
				return m, off, readErr(off, 0, err, "file meta information")
			}
			buf.Write(hdr[:8])
			cur = hdr[:8]
		}
		group = buf.Bytes()
		off += int64(len(group))
	}
	if err := parseMeta(group, &m, off-int64(len(group))); err != nil {
		return m, off, err
	}
	if m.TransferSyntaxUID == "" {
		return m, off, scanErr(off, TagTransferSyntaxUID, ErrMalformed, "file meta information without transfer syntax UID")
	}
	return m, off, nil
}

func parseMeta(b []byte, m *FileMeta, base int64) error {
	var prev Tag
	for pos := 0; pos < len(b); {
		start := base + int64(pos)
		if len(b)-pos < 8 {
			return scanErr(start, 0, ErrMalformed, "file meta information ends inside an element header")
		}
		h := b[pos:]
		tag := NewTag(binary.LittleEndian.Uint16(h[0:]), binary.LittleEndian.Uint16(h[2:]))
		if tag.Group() != 2 {
			return scanErr(start, tag, ErrMalformed, "element outside group 0002 in file meta information")
		}
		if tag <= prev && prev != 0 {
			return scanErr(start, tag, ErrMalformed, "file meta information tags out of order")
		}
		prev = tag
		vr, ok := vrFromBytes(h[4], h[5])
		if !ok {
			return scanErr(start, tag, ErrMalformed, "invalid VR %q", h[4:6])
		}
		var length uint64
		hl := 8
		if vr.HasLongLength() {
			if len(h) < 12 {
				return scanErr(start, tag, ErrMalformed, "file meta information ends inside an element header")
			}
			hl = 12
			length = uint64(binary.LittleEndian.Uint32(h[8:]))
		} else {
			length = uint64(binary.LittleEndian.Uint16(h[6:]))
		}
		if uint64(len(h)-hl) < length {
			return scanErr(start, tag, ErrMalformed, "value of length %d runs past the file meta group", length)
		}
		val := h[hl : hl+int(length)]
		s := strings.TrimRight(string(val), " \x00")
		s = strings.TrimLeft(s, " ")
		switch tag {
		case TagMediaStorageSOPClassUID:
			m.MediaStorageSOPClassUID = s
		case TagMediaStorageSOPInstanceUID:
			m.MediaStorageSOPInstanceUID = s
		case TagTransferSyntaxUID:
			m.TransferSyntaxUID = s
		case TagImplementationClassUID:
			m.ImplementationClassUID = s
		case TagImplementationVersionName:
			m.ImplementationVersionName = s
		case TagSourceApplicationEntityTitle:
			m.SourceApplicationEntityTitle = s
		}
		pos += hl + int(length)
	}
	return nil
}

// WriteFileMeta writes a 128-byte zero preamble, "DICM" and the group 0002
// elements: group length, version 00\01, media storage SOP class and
// instance UIDs, transfer syntax UID, implementation class UID and version
// name (defaults if empty) and the source AE title if set. It returns the
// number of bytes written.
func WriteFileMeta(w io.Writer, m FileMeta) (int64, error) {
	if m.ImplementationClassUID == "" {
		m.ImplementationClassUID = DefaultImplementationClassUID
	}
	if m.ImplementationVersionName == "" {
		m.ImplementationVersionName = DefaultImplementationVersionName
	}
	var body bytes.Buffer
	e := NewEncoder(&body, TransferSyntax{ExplicitVR: true})
	errs := []error{
		e.WriteElement(TagFileMetaInformationVersion, VROB, []byte{0, 1}),
		e.WriteString(TagMediaStorageSOPClassUID, VRUI, m.MediaStorageSOPClassUID),
		e.WriteString(TagMediaStorageSOPInstanceUID, VRUI, m.MediaStorageSOPInstanceUID),
		e.WriteString(TagTransferSyntaxUID, VRUI, m.TransferSyntaxUID),
		e.WriteString(TagImplementationClassUID, VRUI, m.ImplementationClassUID),
		e.WriteString(TagImplementationVersionName, VRSH, m.ImplementationVersionName),
	}
	if m.SourceApplicationEntityTitle != "" {
		errs = append(errs, e.WriteString(TagSourceApplicationEntityTitle, VRAE, m.SourceApplicationEntityTitle))
	}
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	out := make([]byte, 132, 132+12+body.Len())
	copy(out[128:], "DICM")
	var gl [12]byte
	binary.LittleEndian.PutUint16(gl[0:], 2)
	binary.LittleEndian.PutUint16(gl[2:], 0)
	gl[4], gl[5] = 'U', 'L'
	binary.LittleEndian.PutUint16(gl[6:], 4)
	binary.LittleEndian.PutUint32(gl[8:], uint32(body.Len()))
	out = append(out, gl[:]...)
	out = append(out, body.Bytes()...)
	n, err := w.Write(out)
	if err != nil {
		return int64(n), fmt.Errorf("dicom: writing file meta: %w", err)
	}
	return int64(n), nil
}
