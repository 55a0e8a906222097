package dicom

import (
	"bytes"
	"compress/flate"
	"testing"
)

var (
	tsImplicit, _  = LookupTransferSyntax(ImplicitVRLittleEndian)
	tsExplicit, _  = LookupTransferSyntax(ExplicitVRLittleEndian)
	tsBig, _       = LookupTransferSyntax(ExplicitVRBigEndian)
	tsDeflated, _  = LookupTransferSyntax(DeflatedExplicitVRLittleEndian)
	tsJPEG, _      = LookupTransferSyntax(JPEGBaseline8Bit)
	nativeSyntaxes = []TransferSyntax{tsImplicit, tsExplicit, tsBig}
)

type fixtureOpts struct {
	undefinedSeq bool // sequences and items with undefined length
	pixelBytes   int  // native pixel data size (0: none)
	fragments    int  // encapsulated pixel data fragments (needs an encapsulated ts)
	private      bool // add private elements
	mixed        bool // the nested sequence uses the other length form
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// buildItem encodes one item dataset of the Other Patient IDs Sequence.
func buildItem(t testing.TB, ts TransferSyntax, id, issuer string) []byte {
	var b bytes.Buffer
	e := NewEncoder(&b, ts)
	must(t, e.WriteString(TagPatientID, VRLO, id))
	must(t, e.WriteString(TagIssuerOfPatientID, VRLO, issuer))
	return b.Bytes()
}

// buildFixture builds a CT-like dataset in ts (for deflated syntaxes, the
// explicit VR little endian content before compression).
func buildFixture(t testing.TB, ts TransferSyntax, o fixtureOpts) []byte {
	t.Helper()
	var b bytes.Buffer
	e := NewEncoder(&b, ts)
	must(t, e.WriteString(TagSpecificCharacterSet, VRCS, "ISO_IR 100"))
	must(t, e.WriteString(TagImageType, VRCS, `ORIGINAL\PRIMARY\AXIAL`))
	must(t, e.WriteString(TagSOPClassUID, VRUI, CTImageStorage))
	must(t, e.WriteString(TagSOPInstanceUID, VRUI, "1.2.3.4.5.6.7"))
	must(t, e.WriteString(TagStudyDate, VRDA, "20240131"))
	must(t, e.WriteString(TagStudyTime, VRTM, "101010"))
	must(t, e.WriteString(TagAccessionNumber, VRSH, "ACC123"))
	must(t, e.WriteString(TagModality, VRCS, "CT"))
	must(t, e.WriteString(TagReferringPhysicianName, VRPN, "Smith^John"))
	must(t, e.WriteString(TagStudyDescription, VRLO, "CT THORAX"))
	// Referenced Image Sequence (0008,1140) with a nested sequence in its item
	var inner bytes.Buffer
	ie := NewEncoder(&inner, ts)
	must(t, ie.WriteString(NewTag(0x0008, 0x1150), VRUI, "1.2.840.10008.5.1.4.1.1.2"))
	must(t, ie.WriteString(NewTag(0x0008, 0x1155), VRUI, "1.2.3.4.9"))
	// nested: Purpose of Reference Code Sequence (0040,A170)
	var code bytes.Buffer
	ce := NewEncoder(&code, ts)
	must(t, ce.WriteString(NewTag(0x0008, 0x0100), VRSH, "121311"))
	must(t, ce.WriteString(NewTag(0x0008, 0x0102), VRSH, "DCM"))
	must(t, ce.WriteString(NewTag(0x0008, 0x0104), VRLO, "Localizer"))
	must(t, ie.WriteSequence(NewTag(0x0040, 0xA170), [][]byte{code.Bytes()}, o.undefinedSeq != o.mixed))
	must(t, e.WriteSequence(NewTag(0x0008, 0x1140), [][]byte{inner.Bytes(), inner.Bytes()}, o.undefinedSeq))
	if o.private {
		must(t, e.WriteString(NewTag(0x0009, 0x0010), VRLO, "ACME 1.0"))
		must(t, e.WriteElement(NewTag(0x0009, 0x1001), VRUN, []byte{1, 2, 3, 4}))
	}
	must(t, e.WriteString(TagPatientName, VRPN, "M\xfcller^Hans"))
	must(t, e.WriteString(TagPatientID, VRLO, "PID001"))
	must(t, e.WriteString(TagPatientBirthDate, VRDA, "19700101"))
	must(t, e.WriteString(TagPatientSex, VRCS, "M"))
	must(t, e.WriteSequence(TagOtherPatientIDsSequence, [][]byte{
		buildItem(t, ts, "OTHER1", "HOSP A"),
		buildItem(t, ts, "OTHER2", "HOSP B"),
	}, o.undefinedSeq))
	must(t, e.WriteString(TagBodyPartExamined, VRCS, "CHEST"))
	must(t, e.WriteElement(NewTag(0x0018, 0x0050), VRDS, []byte("1.25")))
	must(t, e.WriteString(TagStudyInstanceUID, VRUI, "1.2.3.4"))
	must(t, e.WriteString(TagSeriesInstanceUID, VRUI, "1.2.3.4.5"))
	must(t, e.WriteString(TagSeriesNumber, VRIS, "3"))
	must(t, e.WriteString(TagInstanceNumber, VRIS, "17"))
	must(t, e.WriteUints(NewTag(0x0028, 0x0002), VRUS, 1))
	must(t, e.WriteString(NewTag(0x0028, 0x0004), VRCS, "MONOCHROME2"))
	must(t, e.WriteUints(TagRows, VRUS, 512))
	must(t, e.WriteUints(TagColumns, VRUS, 512))
	must(t, e.WriteElement(NewTag(0x0028, 0x0030), VRDS, []byte(`0.7\0.7`)))
	must(t, e.WriteUints(TagBitsAllocated, VRUS, 16))
	must(t, e.WriteUints(NewTag(0x0028, 0x0101), VRUS, 12))
	must(t, e.WriteUints(NewTag(0x0028, 0x0102), VRUS, 11))
	must(t, e.WriteUints(NewTag(0x0028, 0x0103), VRUS, 0))
	must(t, e.WriteElement(NewTag(0x0028, 0x1052), VRDS, []byte("-1024")))
	if o.private {
		must(t, e.WriteString(NewTag(0x0029, 0x0010), VRLO, "ACME 1.0"))
		must(t, e.WriteElement(NewTag(0x0029, 0x1010), VRUN, bytes.Repeat([]byte{7}, 33)))
	}
	switch {
	case o.fragments > 0:
		frags := make([][]byte, o.fragments)
		for i := range frags {
			frags[i] = bytes.Repeat([]byte{byte(i + 1)}, 1001+i)
		}
		must(t, e.WriteEncapsulatedPixelData([]uint32{0}, frags))
	case o.pixelBytes > 0:
		px := make([]byte, o.pixelBytes)
		for i := range px {
			px[i] = byte(i * 7)
		}
		if ts.BigEndian { // same pixel values, big endian words
			for i := 0; i+1 < len(px); i += 2 {
				px[i], px[i+1] = px[i+1], px[i]
			}
		}
		must(t, e.WriteElement(TagPixelData, VROW, px))
	}
	return b.Bytes()
}

func deflate(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.DefaultCompression)
	must(t, err)
	_, err = w.Write(b)
	must(t, err)
	must(t, w.Close())
	return out.Bytes()
}

// encodedFixture returns the fixture as it appears on the wire in ts.
func encodedFixture(t testing.TB, ts TransferSyntax, o fixtureOpts) []byte {
	b := buildFixture(t, ts, o)
	if ts.Deflated {
		return deflate(t, b)
	}
	return b
}
