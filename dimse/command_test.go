package dimse

import (
	"errors"
	"reflect"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []Command{
		{Field: CEchoRQ, MessageID: 7, AffectedSOPClassUID: VerificationSOPClass},
		{Field: CEchoRSP, MessageIDBeingRespondedTo: 7, AffectedSOPClassUID: VerificationSOPClass, Status: Status{Code: 0}},
		{Field: CStoreRQ, MessageID: 1, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstanceUID: "1.2.3.45",
			Priority: PriorityHigh, HasDataSet: true, MoveOriginatorAE: "MOVER", MoveOriginatorMessageID: 9},
		{Field: CStoreRSP, MessageIDBeingRespondedTo: 1, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstanceUID: "1.2.3.45",
			Status: Status{Code: StatusOutOfResources, Comment: "disk full", OffendingElements: []uint32{0x00080018, 0x00100010}}},
		{Field: CFindRQ, MessageID: 3, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1", HasDataSet: true},
		{Field: CMoveRQ, MessageID: 4, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", MoveDestination: "DEST", HasDataSet: true},
		{Field: CMoveRSP, MessageIDBeingRespondedTo: 4, Status: Status{Code: StatusPending}, Remaining: u16(3), Completed: u16(1), Failed: u16(0), Warning: u16(0)},
		{Field: CCancelRQ, MessageIDBeingRespondedTo: 3},
		{Field: NActionRQ, MessageID: 5, RequestedSOPClassUID: "1.2.840.10008.1.20.1", RequestedSOPInstanceUID: "1.2.840.10008.1.20.1.1",
			HasDataSet: true, Extra: map[uint32][]byte{TagActionTypeID: {1, 0}}},
		{Field: CommandField(0x0555), MessageID: 1, Extra: map[uint32][]byte{0x00005000: []byte("ab")}},
	} {
		t.Run(c.Field.String(), func(t *testing.T) {
			b := c.Encode()
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("got %+v\nwant %+v", got, c)
			}
		})
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	good := (&Command{Field: CEchoRQ, MessageID: 1}).Encode()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated header", good[:5]},
		{"length beyond end", good[:len(good)-1]},
		{"no command field", (&Command{}).Encode()[:12]},
		{"other group", []byte{8, 0, 0x16, 0, 0, 0, 0, 0}},
		{"US of 3 bytes", []byte{0, 0, 0, 1, 3, 0, 0, 0, 1, 2, 3}},
		{"undefined length", []byte{0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF}},
	} {
		if _, err := DecodeCommand(tc.b); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestStatusCategory(t *testing.T) {
	for _, tc := range []struct {
		code uint16
		cat  StatusCategory
	}{
		{0x0000, CategorySuccess}, {0xFE00, CategoryCancel}, {0xFF00, CategoryPending}, {0xFF01, CategoryPending},
		{0xB000, CategoryWarning}, {0xB006, CategoryWarning}, {0xB007, CategoryWarning}, {0x0001, CategoryWarning},
		{0xA700, CategoryFailure}, {0xA701, CategoryFailure}, {0xA702, CategoryFailure}, {0xA801, CategoryFailure},
		{0xA900, CategoryFailure}, {0xC000, CategoryFailure}, {0xC123, CategoryFailure}, {0x0110, CategoryFailure},
		{0x0122, CategoryFailure}, {0x0124, CategoryFailure}, {0x0210, CategoryFailure}, {0x0211, CategoryFailure},
		{0x0212, CategoryFailure},
	} {
		if got := CategoryOf(tc.code); got != tc.cat {
			t.Errorf("0x%04X: %v, want %v", tc.code, got, tc.cat)
		}
	}
	var err error = Status{Code: StatusOutOfResources, Comment: "disk full"}
	if err.Error() != "dimse: status 0xA700 Refused: out of resources (disk full)" {
		t.Errorf("Error() = %q", err.Error())
	}
	rj := &Rejection{RejectedTransient, SourceServiceProviderPresentation, ReasonLocalLimitExceeded}
	if rj.Error() != "dimse: association rejected: rejected-transient, source DICOM UL service-provider (presentation related function), reason local-limit-exceeded" {
		t.Errorf("%q", rj.Error())
	}
}

func TestNegotiate(t *testing.T) {
	supported := func(uid string) bool { return uid != "1.9.9" }
	prefs := []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian, "1.2.840.10008.1.2.4.50"}
	got := Negotiate([]ProposedContext{
		{ID: 1, AbstractSyntax: "1.2.3", TransferSyntaxes: []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}},
		{ID: 3, AbstractSyntax: "1.9.9", TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 5, AbstractSyntax: "1.2.3", TransferSyntaxes: []string{"1.2.840.10008.1.2.4.91"}},
		{ID: 7, AbstractSyntax: "1.2.4", TransferSyntaxes: []string{"1.2.840.10008.1.2.4.50"}, SCURole: boolp(false), SCPRole: boolp(true)},
		{ID: 8, AbstractSyntax: "1.2.3", TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 1, AbstractSyntax: "1.2.3", TransferSyntaxes: []string{ImplicitVRLittleEndian}},
	}, supported, prefs)
	want := []ContextResult{
		{ID: 1, AbstractSyntax: "1.2.3", Result: PCAcceptance, TransferSyntax: ExplicitVRLittleEndian, SCURole: true},
		{ID: 3, AbstractSyntax: "1.9.9", Result: PCAbstractSyntaxNotSupported, SCURole: true},
		{ID: 5, AbstractSyntax: "1.2.3", Result: PCTransferSyntaxesNotSupported, SCURole: true},
		{ID: 7, AbstractSyntax: "1.2.4", Result: PCAcceptance, TransferSyntax: "1.2.840.10008.1.2.4.50", SCURole: false, SCPRole: true},
		{ID: 8, AbstractSyntax: "1.2.3", Result: PCNoReason, SCURole: true},
		{ID: 1, AbstractSyntax: "1.2.3", Result: PCNoReason, SCURole: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}
