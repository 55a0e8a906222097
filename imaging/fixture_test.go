package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

// fixture describes a test instance; build encodes it as a Part 10 file.
type fixture struct {
	ts                                  string // default Explicit VR Little Endian
	rows, cols, spp, ba, bs, hb, pr, pc int
	frames                              int    // NumberOfFrames written when > 0
	photometric                         string // default MONOCHROME2 / RGB
	slope, intercept, wc, ww, fn        string // written when set
	pixels                              []byte // native pixel data, little endian
	pixVR                               dicom.VR
	bot                                 []uint32
	fragments                           [][]byte // encapsulated
	eot                                 []uint64
	eotLengths                          []uint64
	palette                             [3][]uint16 // PALETTE COLOR LUTs (16-bit entries, first mapped 0)
	noRows                              bool
	voiLUT                              *voiLUT // a VOI LUT Sequence item
	pixelLengthOverride                 uint32  // a lying Pixel Data length
}

func (f fixture) build(t testing.TB) []byte {
	t.Helper()
	b, err := f.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f fixture) encode() ([]byte, error) {
	if f.ts == "" {
		f.ts = dicom.ExplicitVRLittleEndian
	}
	if f.spp == 0 {
		f.spp = 1
	}
	if f.bs == 0 {
		f.bs = f.ba
	}
	if f.hb == 0 {
		f.hb = f.bs - 1
	}
	if f.photometric == "" {
		f.photometric = "MONOCHROME2"
		if f.spp == 3 {
			f.photometric = "RGB"
		}
	}
	ts, ok := dicom.LookupTransferSyntax(f.ts)
	if !ok {
		return nil, fmt.Errorf("unknown syntax %s", f.ts)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if ts.BigEndian {
		order = binary.BigEndian
	}
	var ds bytes.Buffer
	e := dicom.NewEncoder(&ds, ts)
	us := func(t dicom.Tag, v int) error {
		x := make([]byte, 2)
		order.PutUint16(x, uint16(v))
		return e.WriteElement(t, dicom.VRUS, x)
	}
	uid := testdicom.UID()
	steps := []func() error{
		func() error { return e.WriteString(dicom.TagSOPClassUID, "UI", dicom.SecondaryCaptureImageStorage) },
		func() error { return e.WriteString(dicom.TagSOPInstanceUID, "UI", uid) },
		func() error { return us(tagSamplesPerPixel, f.spp) },
		func() error { return e.WriteString(tagPhotometric, "CS", f.photometric) },
		func() error {
			if f.spp == 1 {
				return nil
			}
			return us(tagPlanarConfiguration, f.pc)
		},
		func() error {
			if f.frames == 0 {
				return nil
			}
			return e.WriteString(tagNumberOfFrames, "IS", fmt.Sprint(f.frames))
		},
		func() error {
			if f.noRows {
				return nil
			}
			return us(tagRows, f.rows)
		},
		func() error { return us(tagColumns, f.cols) },
		func() error { return us(tagBitsAllocated, f.ba) },
		func() error { return us(tagBitsStored, f.bs) },
		func() error { return us(tagHighBit, f.hb) },
		func() error { return us(tagPixelRepresentation, f.pr) },
		func() error { return str(e, tagWindowCenter, "DS", f.wc) },
		func() error { return str(e, tagWindowWidth, "DS", f.ww) },
		func() error { return str(e, tagRescaleIntercept, "DS", f.intercept) },
		func() error { return str(e, tagRescaleSlope, "DS", f.slope) },
		func() error { return str(e, tagVOILUTFunction, "LO", f.fn) },
		func() error {
			if f.palette[0] == nil {
				return nil
			}
			for c, t := range []dicom.Tag{tagRedDescriptor, tagGreenDescriptor, tagBlueDescriptor} {
				x := make([]byte, 6)
				order.PutUint16(x, uint16(len(f.palette[c])))
				order.PutUint16(x[4:], 16)
				if err := e.WriteElement(t, dicom.VRUS, x); err != nil {
					return err
				}
			}
			for c, t := range []dicom.Tag{tagRedData, tagGreenData, tagBlueData} {
				x := make([]byte, 2*len(f.palette[c]))
				for k, v := range f.palette[c] {
					order.PutUint16(x[2*k:], v)
				}
				if err := e.WriteElement(t, dicom.VROW, x); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			if f.voiLUT == nil {
				return nil
			}
			var item bytes.Buffer
			ie := dicom.NewEncoder(&item, ts)
			d := make([]byte, 6)
			order.PutUint16(d, uint16(len(f.voiLUT.data)))
			order.PutUint16(d[2:], uint16(f.voiLUT.first))
			order.PutUint16(d[4:], uint16(f.voiLUT.bits))
			data := make([]byte, 2*len(f.voiLUT.data))
			for k, v := range f.voiLUT.data {
				order.PutUint16(data[2*k:], v)
			}
			if err := ie.WriteElement(tagLUTDescriptor, dicom.VRUS, d); err != nil {
				return err
			}
			if err := ie.WriteElement(tagLUTData, dicom.VROW, data); err != nil {
				return err
			}
			return e.WriteSequence(tagVOILUTSequence, [][]byte{item.Bytes()}, false)
		},
		func() error {
			if f.eot == nil {
				return nil
			}
			x := make([]byte, 8*len(f.eot))
			for k, v := range f.eot {
				binary.LittleEndian.PutUint64(x[8*k:], v)
			}
			if err := e.WriteElement(tagExtendedOffsetTable, dicom.VROV, x); err != nil {
				return err
			}
			x = make([]byte, 8*len(f.eotLengths))
			for k, v := range f.eotLengths {
				binary.LittleEndian.PutUint64(x[8*k:], v)
			}
			return e.WriteElement(tagExtendedOffsetLengths, dicom.VROV, x)
		},
		func() error {
			if ts.Encapsulated {
				return e.WriteEncapsulatedPixelData(f.bot, f.fragments)
			}
			vr := f.pixVR
			if vr == "" {
				vr = dicom.VROW
				if f.ba <= 8 {
					vr = dicom.VROB
				}
			}
			px := append([]byte(nil), f.pixels...)
			if len(px)%2 == 1 {
				px = append(px, 0)
			}
			if ts.BigEndian {
				unit := f.ba / 8
				if vr == dicom.VROW && unit < 2 {
					unit = 2
				}
				swapBytes(px, unit)
			}
			if f.pixelLengthOverride != 0 {
				if err := e.WriteHeader(dicom.TagPixelData, vr, f.pixelLengthOverride); err != nil {
					return err
				}
				return e.WriteRaw(px)
			}
			return e.WriteElement(dicom.TagPixelData, vr, px)
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	if _, err := dicom.WriteFileMeta(&out, dicom.FileMeta{MediaStorageSOPClassUID: dicom.SecondaryCaptureImageStorage,
		MediaStorageSOPInstanceUID: uid, TransferSyntaxUID: f.ts}); err != nil {
		return nil, err
	}
	out.Write(ds.Bytes())
	return out.Bytes(), nil
}

// voiLUT is a VOI LUT: data for inputs first, first+1, ..., of bits bits.
type voiLUT struct {
	first, bits int
	data        []uint16
}

func str(e *dicom.Encoder, t dicom.Tag, vr dicom.VR, s string) error {
	if s == "" {
		return nil
	}
	return e.WriteString(t, vr, s)
}

func swapBytes(b []byte, unit int) {
	if unit < 2 {
		return
	}
	for k := 0; k+unit <= len(b); k += unit {
		for i, j := k, k+unit-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
	}
}

// ramp returns n bytes of a deterministic pattern.
func ramp(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*31 + i/13)
	}
	return b
}

// ctPixels returns a signed 16-bit CT-like phantom (air, soft tissue
// disc, bone ring, a gradient) as little endian bytes, values in the low
// bitsStored bits and junk above the high bit (which readers must mask).
func ctPixels(rows, cols, bitsStored int, junk bool) []byte {
	px := make([]byte, 2*rows*cols)
	mask := 1<<bitsStored - 1
	for y := range rows {
		for x := range cols {
			dx, dy := float64(x-cols/2), float64(y-rows/2)
			r := math.Hypot(dx, dy) / float64(min(rows, cols)/2)
			v := -1000.0 // stored values; rescale applied by the readers
			switch {
			case r < 0.6:
				v = 40 + 60*math.Sin(float64(x)/7)*math.Cos(float64(y)/11) + float64(x-y)
			case r < 0.75:
				v = 900 + 400*r
			case r < 0.8:
				v = -300
			}
			s := int(v) & mask
			if junk {
				s |= 0x5000 &^ mask
			}
			binary.LittleEndian.PutUint16(px[2*(y*cols+x):], uint16(s))
		}
	}
	return px
}
