package dimse_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

// findFlags answers like a C-FIND SCP that supports relational queries and
// combined date-time matching only: each flag is agreed when requested and
// supported.
func findFlags(class string, requested []byte) []byte {
	if class != studyRootFind {
		return nil
	}
	supported := []byte{1, 1, 0, 0}
	out := make([]byte, min(len(requested), len(supported)))
	for i := range out {
		if requested[i] == 1 && supported[i] == 1 {
			out[i] = 1
		}
	}
	return out
}

// readRawPDU reads one whole PDU's bytes.
func readRawPDU(t *testing.T, r io.Reader) []byte {
	t.Helper()
	hdr := make([]byte, 6)
	if _, err := io.ReadFull(r, hdr); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6+binary.BigEndian.Uint32(hdr[2:]))
	copy(b, hdr)
	if _, err := io.ReadFull(r, b[6:]); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExtendedNegotiationGolden: the A-ASSOCIATE-AC answers the 56H
// sub-item of an accepted SOP class with the Server's answer, hand-encoded
// per PS3.7 Table D.3-11 (item type 56H, reserved, item length, SOP class
// UID length, SOP class UID, service-class-application-information), and
// answers none for a SOP class not accepted or left unanswered; the
// decoded AC re-encodes byte for byte.
func TestExtendedNegotiationGolden(t *testing.T) {
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil),
		AbstractSyntaxes:    func(uid string) bool { return uid == studyRootFind || uid == dimse.VerificationSOPClass },
		ExtendedNegotiation: findFlags,
	})
	p := dimsetest.DialPeer(t, srv.Addr)
	rq := dimsetest.AssociateRQ("RAW", "RELAIS",
		dimse.PresentationContextRQItem{ID: 3, AbstractSyntax: studyRootFind, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}},
		dimse.PresentationContextRQItem{ID: 5, AbstractSyntax: "1.2.840.10008.5.1.4.1.2.1.1", TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}})
	rq.UserInfo.ExtendedNegotiation = []dimse.SOPClassExtendedNegotiation{
		{SOPClassUID: studyRootFind, Info: []byte{1, 1, 1, 1}},
		{SOPClassUID: "1.2.840.10008.5.1.4.1.2.1.1", Info: []byte{1}}, // not accepted
		{SOPClassUID: dimse.VerificationSOPClass, Info: []byte{1}},    // accepted, answered nil
		{SOPClassUID: studyRootFind, Info: []byte{0}},                 // repeated: the first is answered
	}
	p.SendPDU(rq)
	raw := readRawPDU(t, p.Conn)
	golden := append([]byte{0x56, 0x00, 0x00, 0x21, 0x00, 0x1B}, studyRootFind...)
	golden = append(golden, 1, 1, 0, 0)
	if !bytes.Contains(raw, golden) {
		t.Fatalf("A-ASSOCIATE-AC lacks the 56H answer % x:\n% x", golden, raw)
	}
	if n := bytes.Count(raw, []byte{0x56, 0x00, 0x00}); n != 1 {
		t.Errorf("%d 56H sub-items, want 1", n)
	}
	pdu, err := dimse.DecodePDU(raw)
	if err != nil {
		t.Fatal(err)
	}
	ac := pdu.(*dimse.AAssociateAC)
	want := []dimse.SOPClassExtendedNegotiation{{SOPClassUID: studyRootFind, Info: []byte{1, 1, 0, 0}}}
	if len(ac.UserInfo.ExtendedNegotiation) != 1 || ac.UserInfo.ExtendedNegotiation[0].SOPClassUID != want[0].SOPClassUID ||
		!bytes.Equal(ac.UserInfo.ExtendedNegotiation[0].Info, want[0].Info) {
		t.Fatalf("decoded %+v, want %+v", ac.UserInfo.ExtendedNegotiation, want)
	}
	again, err := ac.MarshalBinary()
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-encoding differs (%v):\n% x\nwant\n% x", err, again, raw)
	}
	p.SendPDU(&dimse.AReleaseRQ{})
	p.Expect(dimse.PDUReleaseRP)
	p.Close()
	srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationReleased))
}

// TestExtendedNegotiationDial: Dial requests extended negotiation and
// reports the acceptor's answers; without ExtendedNegotiation the Server
// answers none.
func TestExtendedNegotiationDial(t *testing.T) {
	cases := []struct {
		name   string
		answer func(string, []byte) []byte
		asked  []byte
		want   []byte // nil: no answer
	}{
		{"all flags asked", findFlags, []byte{1, 1, 1, 1}, []byte{1, 1, 0, 0}},
		{"relational only", findFlags, []byte{1}, []byte{1}},
		{"nothing asked", findFlags, []byte{0, 0}, []byte{0, 0}},
		{"server without ExtendedNegotiation", nil, []byte{1, 1}, nil},
		{"panicking ExtendedNegotiation", func(string, []byte) []byte { panic("boom") }, []byte{1}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil),
				AbstractSyntaxes: func(string) bool { return true }, ExtendedNegotiation: tc.answer})
			a, err := dimse.Dial(context.Background(), srv.Addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "RELAIS",
				Contexts:            []dimse.ProposedContext{{AbstractSyntax: studyRootFind, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}}},
				ExtendedNegotiation: []dimse.SOPClassExtendedNegotiation{{SOPClassUID: studyRootFind, Info: tc.asked}},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Release(context.Background())
			got, ok := a.Info().ExtendedNegotiation[studyRootFind]
			if tc.want == nil {
				if ok {
					t.Fatalf("answered % x, want no answer", got)
				}
				return
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("answer % x, want % x", got, tc.want)
			}
		})
	}
}
