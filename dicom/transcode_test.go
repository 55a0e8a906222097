package dicom

import (
	"bytes"
	"errors"
	"testing"
)

func transcode(t *testing.T, b []byte, from, to TransferSyntax) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Transcode(&out, bytes.NewReader(b), from, to, DefaultLimits()); err != nil {
		t.Fatalf("%s -> %s: %v", from.Name, to.Name, err)
	}
	return out.Bytes()
}

func TestTranscodeRoundTrips(t *testing.T) {
	for _, undef := range []bool{false, true} {
		o := fixtureOpts{undefinedSeq: undef, pixelBytes: 2048, mixed: true}
		exp := buildFixture(t, tsExplicit, o)
		imp := buildFixture(t, tsImplicit, o)
		big := buildFixture(t, tsBig, o)
		tests := []struct {
			name     string
			src      []byte
			from, to TransferSyntax
			want     []byte
		}{
			{"explicit->implicit", exp, tsExplicit, tsImplicit, imp},
			{"implicit->explicit", imp, tsImplicit, tsExplicit, exp},
			{"explicit->big", exp, tsExplicit, tsBig, big},
			{"big->explicit", big, tsBig, tsExplicit, exp},
			{"implicit->big", imp, tsImplicit, tsBig, big},
			{"big->implicit", big, tsBig, tsImplicit, imp},
			{"identity", exp, tsExplicit, tsExplicit, exp},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got := transcode(t, tc.src, tc.from, tc.to)
				if !bytes.Equal(got, tc.want) {
					t.Fatalf("output differs from the fixture encoded directly (len %d vs %d)", len(got), len(tc.want))
				}
				back := transcode(t, got, tc.to, tc.from)
				if !bytes.Equal(back, tc.src) {
					t.Fatal("round trip not identical")
				}
				if _, err := Scan(bytes.NewReader(got), tc.to, DefaultLimits(), nil); err != nil {
					t.Fatalf("output does not scan: %v", err)
				}
			})
		}
	}
}

func TestTranscodeSpecialCases(t *testing.T) {
	t.Run("long short-VR value becomes UN", func(t *testing.T) {
		in := newRaw(tsImplicit).hdr(TagStudyDescription, "", 0x10000).zeros(0x10000).Bytes()
		out := transcode(t, in, tsImplicit, tsExplicit)
		want := newRaw(tsExplicit).hdr(TagStudyDescription, VRUN, 0x10000).zeros(0x10000).Bytes()
		if !bytes.Equal(out, want) {
			t.Fatalf("got header % x", out[:12])
		}
	})
	t.Run("private tags become UN, private sequence SQ", func(t *testing.T) {
		in := newRaw(tsImplicit).str(NewTag(0x0009, 0x0010), "", "ACME").hdr(NewTag(0x0009, 0x1001), "", 4).val(1, 2, 3, 4).
			hdr(NewTag(0x0009, 0x1002), "", undefinedLength).item(TagItem, undefinedLength).str(TagPatientID, "", "AB").
			item(TagItemDelimitationItem, 0).item(TagSequenceDelimitationItem, 0).Bytes()
		out := transcode(t, in, tsImplicit, tsExplicit)
		want := newRaw(tsExplicit).str(NewTag(0x0009, 0x0010), VRLO, "ACME").hdr(NewTag(0x0009, 0x1001), VRUN, 4).val(1, 2, 3, 4).
			hdr(NewTag(0x0009, 0x1002), VRSQ, undefinedLength).item(TagItem, undefinedLength).str(TagPatientID, VRLO, "AB").
			item(TagItemDelimitationItem, 0).item(TagSequenceDelimitationItem, 0).Bytes()
		if !bytes.Equal(out, want) {
			t.Fatalf("got\n% x\nwant\n% x", out, want)
		}
	})
	t.Run("UN undefined length content kept implicit LE", func(t *testing.T) {
		r := newRaw(tsExplicit).hdr(NewTag(0x0009, 0x1001), VRUN, undefinedLength)
		in := NewEncoder(&r.Buffer, tsImplicit)
		in.WriteItemHeader(TagItem, 10)
		in.WriteString(TagPatientID, VRLO, "X1")
		in.WriteItemHeader(TagSequenceDelimitationItem, 0)
		src := r.Bytes()
		big := transcode(t, src, tsExplicit, tsBig)
		if !bytes.Equal(big[12:], src[12:]) {
			t.Error("UN content changed")
		}
		if back := transcode(t, big, tsBig, tsExplicit); !bytes.Equal(back, src) {
			t.Error("round trip differs")
		}
	})
	t.Run("swap by VR", func(t *testing.T) {
		r := newRaw(tsExplicit)
		r.hdr(NewTag(0x0018, 0x0088), VRDS, 2).val('1', ' ')
		r.hdr(NewTag(0x0018, 0x1310), VRUS, 8).val(1, 2, 3, 4, 5, 6, 7, 8)
		r.hdr(NewTag(0x0020, 0x5000), VRAT, 4).val(0x10, 0, 0x20, 0)
		r.hdr(NewTag(0x0028, 0x0034), VRIS, 2).val('1', ' ')
		r.hdr(NewTag(0x0028, 0x1050), VRDS, 2).val('1', ' ')
		r.hdr(NewTag(0x0040, 0x9224), VRFD, 8).val(1, 2, 3, 4, 5, 6, 7, 8)
		r.hdr(TagPixelData, VROW, 4).val(1, 2, 3, 4)
		out := transcode(t, r.Bytes(), tsExplicit, tsBig)
		want := newRaw(tsBig)
		want.hdr(NewTag(0x0018, 0x0088), VRDS, 2).val('1', ' ')
		want.hdr(NewTag(0x0018, 0x1310), VRUS, 8).val(2, 1, 4, 3, 6, 5, 8, 7)
		want.hdr(NewTag(0x0020, 0x5000), VRAT, 4).val(0, 0x10, 0, 0x20)
		want.hdr(NewTag(0x0028, 0x0034), VRIS, 2).val('1', ' ')
		want.hdr(NewTag(0x0028, 0x1050), VRDS, 2).val('1', ' ')
		want.hdr(NewTag(0x0040, 0x9224), VRFD, 8).val(8, 7, 6, 5, 4, 3, 2, 1)
		want.hdr(TagPixelData, VROW, 4).val(2, 1, 4, 3)
		if !bytes.Equal(out, want.Bytes()) {
			t.Fatalf("got\n% x\nwant\n% x", out, want.Bytes())
		}
	})
}

func TestTranscodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		from, to TransferSyntax
		data     []byte
		want     error
	}{
		{"encapsulated source", tsJPEG, tsExplicit, nil, ErrUnsupportedTransferSyntax},
		{"encapsulated target", tsExplicit, tsJPEG, nil, ErrUnsupportedTransferSyntax},
		{"deflated", tsDeflated, tsExplicit, nil, ErrUnsupportedTransferSyntax},
		{"truncated", tsExplicit, tsImplicit, newRaw(tsExplicit).hdr(TagPatientName, VRPN, 10).val('a').Bytes(), ErrTruncated},
		{"unbalanced", tsExplicit, tsImplicit, newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).item(TagItem, undefinedLength).item(TagSequenceDelimitationItem, 0).Bytes(), ErrMalformed},
		{"encapsulated pixel data", tsExplicit, tsImplicit, newRaw(tsExplicit).hdr(TagPixelData, VROB, undefinedLength).Bytes(), ErrMalformed},
		{"bad swap length", tsExplicit, tsBig, newRaw(tsExplicit).hdr(NewTag(0x0040, 0x9224), VRFD, 4).zeros(4).Bytes(), ErrMalformed},
		{"depth", tsExplicit, tsImplicit, nested(17), ErrLimitExceeded},
		// Found by FuzzScan: (0008,1130) is SQ in the dictionary; as UI it
		// cannot be represented in implicit VR.
		{"fuzz: non-SQ VR for a dictionary SQ to implicit", tsExplicit, tsImplicit, newRaw(tsExplicit).str(NewTag(0x0008, 0x1130), VRUI, "1.2").Bytes(), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Transcode(&out, bytes.NewReader(tc.data), tc.from, tc.to, DefaultLimits())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
