package dimse

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func FuzzReadPDU(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bin")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	for _, p := range samplePDUs() {
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPDU(bytes.NewReader(b), 1<<16)
		if err != nil {
			return
		}
		enc, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		p2, err := ReadPDU(bytes.NewReader(enc), 1<<20)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v\n% x", err, enc)
		}
		if !reflect.DeepEqual(normalize(p), normalize(p2)) {
			t.Fatalf("unstable:\n%#v\n%#v", p, p2)
		}
		enc2, _ := p2.MarshalBinary()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding unstable")
		}
	})
}

// normalize maps empty and nil byte slices to nil for comparison.
func normalize(p PDU) PDU {
	if pd, ok := p.(*PDataTF); ok {
		for i := range pd.PDVs {
			if len(pd.PDVs[i].Data) == 0 {
				pd.PDVs[i].Data = nil
			}
		}
	}
	return p
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{Field: CEchoRQ, MessageID: 1, AffectedSOPClassUID: VerificationSOPClass},
		{Field: CStoreRSP, MessageIDBeingRespondedTo: 1, Status: Status{Code: 0xA700, Comment: "x", OffendingElements: []uint32{0x00080018}}},
		{Field: CMoveRSP, MessageIDBeingRespondedTo: 1, Remaining: u16(1), Completed: u16(2), Failed: u16(3), Warning: u16(4)},
		{Field: CStoreRQ, MessageID: 1, AffectedSOPClassUID: "1.2", AffectedSOPInstanceUID: "1.2.3", HasDataSet: true, MoveOriginatorAE: "A"},
	} {
		f.Add(c.Encode())
	}
	if b, err := os.ReadFile("testdata/echoscu-p-data-echo-rq.bin"); err == nil && len(b) > 12 {
		f.Add(b[12:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		c2, err := DecodeCommand(c.Encode())
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		enc1, enc2 := c.Encode(), c2.Encode()
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("unstable encoding\n% x\n% x", enc1, enc2)
		}
	})
}
