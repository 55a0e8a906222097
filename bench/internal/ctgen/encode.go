// Package ctgen writes synthetic CT studies as DICOM Part 10 files.
//
// It is a deliberately small, self-contained encoder (standard library only)
// so the benchmark tools under bench/ can run against any DICOM server
// without depending on the rest of the relais module.
package ctgen

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"
)

// Well-known UIDs.
const (
	CTImageStorage         = "1.2.840.10008.5.1.4.1.1.2"
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	// ImplementationClassUID identifies this generator (a fixed UUID-derived UID).
	ImplementationClassUID = "2.25.252603800375707300799794833923417398238"
	ImplementationVersion  = "RELAIS_BENCH_1"
)

// Tag is a DICOM (group,element) pair packed as group<<16 | element.
type Tag uint32

// Group returns the tag's group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the tag's element number.
func (t Tag) Element() uint16 { return uint16(t) }

func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// Element is one data element with its value already encoded (little endian),
// not yet padded.
type Element struct {
	Tag   Tag
	VR    string
	Value []byte
}

// longVR reports whether the VR uses the 4-byte length form in explicit VR.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// padByte is the byte used to pad a value of this VR to an even length.
func padByte(vr string) byte {
	switch vr {
	case "UI", "OB", "UN":
		return 0x00
	}
	return ' '
}

// Str builds a string-valued element (AE, AS, CS, DA, DS, IS, LO, PN, SH, TM, UI...).
// Multiple values are joined with a backslash.
func Str(t Tag, vr string, values ...string) Element {
	return Element{Tag: t, VR: vr, Value: []byte(strings.Join(values, `\`))}
}

// US builds an unsigned short element.
func US(t Tag, v ...uint16) Element {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return Element{Tag: t, VR: "US", Value: b}
}

// UL builds an unsigned long element.
func UL(t Tag, v uint32) Element {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, v)
	return Element{Tag: t, VR: "UL", Value: b}
}

// Bytes builds an OB/OW element from raw little-endian bytes.
func Bytes(t Tag, vr string, b []byte) Element { return Element{Tag: t, VR: vr, Value: b} }

// encodedLen is the number of bytes the element takes in explicit VR LE.
func (e Element) encodedLen() int {
	n := len(e.Value) + len(e.Value)%2
	if longVR(e.VR) {
		return 12 + n
	}
	return 8 + n
}

// writeElements writes elements sorted by tag in explicit VR little endian,
// padding odd-length values per VR.
func writeElements(w io.Writer, elems []Element) error {
	sort.SliceStable(elems, func(i, j int) bool { return elems[i].Tag < elems[j].Tag })
	var hdr [12]byte
	for i, e := range elems {
		if i > 0 && elems[i-1].Tag == e.Tag {
			return fmt.Errorf("duplicate tag %v", e.Tag)
		}
		if len(e.VR) != 2 {
			return fmt.Errorf("tag %v: bad VR %q", e.Tag, e.VR)
		}
		n := len(e.Value) + len(e.Value)%2
		binary.LittleEndian.PutUint16(hdr[0:], e.Tag.Group())
		binary.LittleEndian.PutUint16(hdr[2:], e.Tag.Element())
		hdr[4], hdr[5] = e.VR[0], e.VR[1]
		h := hdr[:8]
		if longVR(e.VR) {
			hdr[6], hdr[7] = 0, 0
			binary.LittleEndian.PutUint32(hdr[8:], uint32(n))
			h = hdr[:12]
		} else {
			if n > 0xFFFF {
				return fmt.Errorf("tag %v: value too long for VR %s", e.Tag, e.VR)
			}
			binary.LittleEndian.PutUint16(hdr[6:], uint16(n))
		}
		if _, err := w.Write(h); err != nil {
			return err
		}
		if _, err := w.Write(e.Value); err != nil {
			return err
		}
		if len(e.Value)%2 == 1 {
			if _, err := w.Write([]byte{padByte(e.VR)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// WritePart10 writes a DICOM Part 10 file: 128-byte preamble, "DICM", the
// file meta information group (explicit VR LE, with its group length) and the
// dataset in explicit VR little endian. sopClass and sopInstance are copied
// into the meta group; the dataset must not contain group 0002.
func WritePart10(w io.Writer, sopClass, sopInstance string, dataset []Element) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	meta := []Element{
		Bytes(0x00020001, "OB", []byte{0x00, 0x01}),
		Str(0x00020002, "UI", sopClass),
		Str(0x00020003, "UI", sopInstance),
		Str(0x00020010, "UI", ExplicitVRLittleEndian),
		Str(0x00020012, "UI", ImplementationClassUID),
		Str(0x00020013, "SH", ImplementationVersion),
	}
	glen := 0
	for _, e := range meta {
		glen += e.encodedLen()
	}
	meta = append(meta, UL(0x00020000, uint32(glen)))
	if _, err := bw.Write(make([]byte, 128)); err != nil {
		return err
	}
	if _, err := bw.WriteString("DICM"); err != nil {
		return err
	}
	if err := writeElements(bw, meta); err != nil {
		return err
	}
	for _, e := range dataset {
		if e.Tag.Group() == 0x0002 {
			return fmt.Errorf("dataset contains meta element %v", e.Tag)
		}
	}
	if err := writeElements(bw, dataset); err != nil {
		return err
	}
	return bw.Flush()
}

// NewUID returns a UUID-derived UID: "2.25." followed by the decimal value of a
// random (version 4) UUID, as in PS3.5 B.2.
func NewUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	b[6] = b[6]&0x0F | 0x40 // version 4
	b[8] = b[8]&0x3F | 0x80 // RFC 4122 variant
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}
