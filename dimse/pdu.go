package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDUType is the first byte of every upper layer PDU (PS3.8 Section 9.3.1).
type PDUType uint8

// PDU types, PS3.8 Section 9.3.
const (
	PDUAssociateRQ PDUType = 0x01
	PDUAssociateAC PDUType = 0x02
	PDUAssociateRJ PDUType = 0x03
	PDUPDataTF     PDUType = 0x04
	PDUReleaseRQ   PDUType = 0x05
	PDUReleaseRP   PDUType = 0x06
	PDUAbort       PDUType = 0x07
)

func (t PDUType) String() string {
	switch t {
	case PDUAssociateRQ:
		return "A-ASSOCIATE-RQ"
	case PDUAssociateAC:
		return "A-ASSOCIATE-AC"
	case PDUAssociateRJ:
		return "A-ASSOCIATE-RJ"
	case PDUPDataTF:
		return "P-DATA-TF"
	case PDUReleaseRQ:
		return "A-RELEASE-RQ"
	case PDUReleaseRP:
		return "A-RELEASE-RP"
	case PDUAbort:
		return "A-ABORT"
	}
	return fmt.Sprintf("PDU(0x%02X)", uint8(t))
}

// Item types of the variable fields of A-ASSOCIATE-RQ/AC (PS3.8 Section 9.3.2
// and Annex D).
const (
	ItemApplicationContext        = 0x10
	ItemPresentationContextRQ     = 0x20
	ItemPresentationContextAC     = 0x21
	ItemAbstractSyntax            = 0x30
	ItemTransferSyntax            = 0x40
	ItemUserInformation           = 0x50
	ItemMaxLength                 = 0x51
	ItemImplementationClassUID    = 0x52
	ItemAsyncOperationsWindow     = 0x53
	ItemRoleSelection             = 0x54
	ItemImplementationVersion     = 0x55
	ItemSOPClassExtendedNeg       = 0x56
	ItemSOPClassCommonExtendedNeg = 0x57
	ItemUserIdentityRQ            = 0x58
	ItemUserIdentityAC            = 0x59
)

// DICOMApplicationContext is the only application context name defined by
// DICOM (PS3.7 Annex A.2.1).
const DICOMApplicationContext = "1.2.840.10008.3.1.1.1"

// MaxAssociatePDULength bounds the A-ASSOCIATE-RQ/AC PDUs and the other
// non-data PDUs the engine reads; P-DATA-TF PDUs are bounded by the
// negotiated maximum length.
const MaxAssociatePDULength = 1 << 20

// Sentinel errors of the PDU layer. Decoding errors wrap one of them.
var (
	// ErrPDUTooLarge: the PDU length field exceeds the reader's limit.
	ErrPDUTooLarge = errors.New("dimse: PDU length exceeds limit")
	// ErrUnknownPDU: the PDU type is not one of PS3.8 Section 9.3.
	ErrUnknownPDU = errors.New("dimse: unrecognized PDU type")
	// ErrInvalidPDU: a length or field inside a PDU is inconsistent.
	ErrInvalidPDU = errors.New("dimse: invalid PDU")
)

// PDU is one of *AAssociateRQ, *AAssociateAC, *AAssociateRJ, *PDataTF,
// *AReleaseRQ, *AReleaseRP, *AAbort.
type PDU interface {
	// Type returns the PDU type.
	Type() PDUType
	// MarshalBinary encodes the PDU including its 6-byte header.
	MarshalBinary() ([]byte, error)
	appendBody(b []byte) []byte
	unmarshalBody(b []byte) error
}

// AAssociateRQ is the A-ASSOCIATE-RQ PDU, PS3.8 Table 9-11:
//
//	offset len field
//	0      1   PDU-type 01H
//	1      1   reserved
//	2      4   PDU-length (big endian), bytes that follow
//	6      2   protocol-version (bit 0 = version 1)
//	8      2   reserved
//	10     16  called-AE-title (space padded)
//	26     16  calling-AE-title
//	42     32  reserved
//	74     -   variable items: one application context item (10H), one or
//	           more presentation context items (20H), one user information
//	           item (50H)
type AAssociateRQ struct {
	ProtocolVersion    uint16
	CalledAE           string
	CallingAE          string
	ApplicationContext string
	Contexts           []PresentationContextRQItem
	UserInfo           UserInformation
	Unknown            []RawItem // items of unrecognized types, kept
}

// AAssociateAC is the A-ASSOCIATE-AC PDU, PS3.8 Table 9-17. Its layout is
// the one of AAssociateRQ; called/calling AE titles echo the request and
// are not tested on receipt. Presentation context items are 21H.
type AAssociateAC struct {
	ProtocolVersion    uint16
	CalledAE           string
	CallingAE          string
	ApplicationContext string
	Contexts           []PresentationContextACItem
	UserInfo           UserInformation
	Unknown            []RawItem
}

// PresentationContextRQItem is the presentation context item of an
// A-ASSOCIATE-RQ, PS3.8 Table 9-13: item-type 20H, reserved, item-length
// (2), presentation-context-ID (1), 3 reserved bytes, one abstract syntax
// sub-item (30H, Table 9-14) and one or more transfer syntax sub-items
// (40H, Table 9-15).
type PresentationContextRQItem struct {
	ID               uint8
	AbstractSyntax   string
	TransferSyntaxes []string
}

// PresentationContextACItem is the presentation context item of an
// A-ASSOCIATE-AC, PS3.8 Table 9-18: item-type 21H, reserved, item-length,
// presentation-context-ID, reserved, result/reason, reserved, one transfer
// syntax sub-item (significant only if the result is acceptance).
type PresentationContextACItem struct {
	ID             uint8
	Result         PCResult
	TransferSyntax string
}

// PCResult is the result/reason field of a presentation context AC item,
// PS3.8 Table 9-18.
type PCResult uint8

// Presentation context results, PS3.8 Table 9-18.
const (
	PCAcceptance                   PCResult = 0
	PCUserRejection                PCResult = 1
	PCNoReason                     PCResult = 2
	PCAbstractSyntaxNotSupported   PCResult = 3
	PCTransferSyntaxesNotSupported PCResult = 4
)

func (r PCResult) String() string {
	switch r {
	case PCAcceptance:
		return "acceptance"
	case PCUserRejection:
		return "user-rejection"
	case PCNoReason:
		return "no-reason (provider rejection)"
	case PCAbstractSyntaxNotSupported:
		return "abstract-syntax-not-supported (provider rejection)"
	case PCTransferSyntaxesNotSupported:
		return "transfer-syntaxes-not-supported (provider rejection)"
	}
	return fmt.Sprintf("PCResult(%d)", uint8(r))
}

// UserInformation is the user information item (50H), PS3.8 Table 9-16,
// with the sub-items of PS3.7 Annex D.3.3 and PS3.8 Annex D.1.
type UserInformation struct {
	// MaxLength is the maximum length sub-item (51H, PS3.8 Table D.1-1):
	// the largest P-DATA-TF PDU length the sender can receive; 0 = no limit.
	// It is always encoded.
	MaxLength                 uint32
	ImplementationClassUID    string // 52H, PS3.7 Table D.3-1
	ImplementationVersionName string // 55H, PS3.7 Table D.3-3
	AsyncOps                  *AsyncOpsWindow
	Roles                     []RoleSelection
	ExtendedNegotiation       []SOPClassExtendedNegotiation
	CommonExtendedNegotiation []SOPClassCommonExtendedNegotiation
	UserIdentity              *UserIdentity   // 58H (RQ only)
	UserIdentityAC            *UserIdentityAC // 59H (AC only)
	Unknown                   []RawItem       // unrecognized sub-items, kept
}

// AsyncOpsWindow is the asynchronous operations window sub-item (53H),
// PS3.7 Table D.3-7. Zero means unlimited.
type AsyncOpsWindow struct {
	MaxOpsInvoked, MaxOpsPerformed uint16
}

// RoleSelection is the SCP/SCU role selection sub-item (54H), PS3.7 Table
// D.3-9: SOP class UID length (2), SOP class UID, SCU-role (1), SCP-role (1).
type RoleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// SOPClassExtendedNegotiation is sub-item 56H, PS3.7 Table D.3-11: the
// service-class-application-information is kept opaque.
type SOPClassExtendedNegotiation struct {
	SOPClassUID string
	Info        []byte
}

// SOPClassCommonExtendedNegotiation is sub-item 57H, PS3.7 Table D.3-12.
type SOPClassCommonExtendedNegotiation struct {
	SOPClassUID           string
	ServiceClassUID       string
	RelatedGeneralClasses []string
}

// UserIdentity is the user identity negotiation sub-item of an
// A-ASSOCIATE-RQ (58H), PS3.7 Table D.3-14: user-identity-type (1 =
// username, 2 = username and passcode, 3 = Kerberos, 4 = SAML, 5 = JWT),
// positive-response-requested, primary-field-length (2), primary field,
// secondary-field-length (2), secondary field.
type UserIdentity struct {
	Type                      uint8
	PositiveResponseRequested bool
	Primary, Secondary        []byte
}

// UserIdentityAC is the user identity sub-item of an A-ASSOCIATE-AC (59H),
// PS3.7 Table D.3-15: server-response-length (2), server-response.
type UserIdentityAC struct {
	ServerResponse []byte
}

// RawItem is an item of a type this package does not interpret.
type RawItem struct {
	Type uint8
	Data []byte
}

// AAssociateRJ is the A-ASSOCIATE-RJ PDU, PS3.8 Table 9-21: header, reserved
// (1), result (1), source (1), reason/diag (1).
type AAssociateRJ struct {
	Result RejectResult
	Source RejectSource
	Reason RejectReason
}

// PDataTF is the P-DATA-TF PDU, PS3.8 Table 9-22: header followed by one or
// more presentation data value items (Table 9-23): item-length (4),
// presentation-context-ID (1), then the PDV whose first byte is the
// message control header (PS3.8 Annex E.2): bit 0 set = command, bit 1 set
// = last fragment.
type PDataTF struct {
	PDVs []PDV
}

// PDV is one presentation data value item of a P-DATA-TF PDU.
type PDV struct {
	ContextID uint8
	Command   bool // message control header bit 0
	Last      bool // message control header bit 1
	Data      []byte
}

// AReleaseRQ is the A-RELEASE-RQ PDU, PS3.8 Table 9-24 (header + 4
// reserved bytes).
type AReleaseRQ struct{}

// AReleaseRP is the A-RELEASE-RP PDU, PS3.8 Table 9-25 (header + 4
// reserved bytes).
type AReleaseRP struct{}

// AAbort is the A-ABORT PDU, PS3.8 Table 9-26: header, reserved (2), source
// (1), reason/diag (1). Reason is significant only for source 2.
type AAbort struct {
	Source AbortSource
	Reason AbortReason
}

// AbortSource is the source field of an A-ABORT PDU (PS3.8 Table 9-26).
type AbortSource uint8

// A-ABORT sources.
const (
	AbortServiceUser     AbortSource = 0
	AbortReserved        AbortSource = 1
	AbortServiceProvider AbortSource = 2
)

func (s AbortSource) String() string {
	switch s {
	case AbortServiceUser:
		return "service-user"
	case AbortReserved:
		return "reserved"
	case AbortServiceProvider:
		return "service-provider"
	}
	return fmt.Sprintf("AbortSource(%d)", uint8(s))
}

// AbortReason is the reason/diag field of an A-ABORT PDU (PS3.8 Table
// 9-26), significant when the source is the service provider.
type AbortReason uint8

// A-ABORT reasons.
const (
	AbortReasonNotSpecified       AbortReason = 0
	AbortUnrecognizedPDU          AbortReason = 1
	AbortUnexpectedPDU            AbortReason = 2
	AbortUnrecognizedPDUParameter AbortReason = 4
	AbortUnexpectedPDUParameter   AbortReason = 5
	AbortInvalidPDUParameterValue AbortReason = 6
)

func (r AbortReason) String() string {
	switch r {
	case AbortReasonNotSpecified:
		return "reason-not-specified"
	case AbortUnrecognizedPDU:
		return "unrecognized-PDU"
	case AbortUnexpectedPDU:
		return "unexpected-PDU"
	case AbortUnrecognizedPDUParameter:
		return "unrecognized-PDU-parameter"
	case AbortUnexpectedPDUParameter:
		return "unexpected-PDU-parameter"
	case AbortInvalidPDUParameterValue:
		return "invalid-PDU-parameter-value"
	}
	return fmt.Sprintf("AbortReason(%d)", uint8(r))
}

func (*AAssociateRQ) Type() PDUType { return PDUAssociateRQ }
func (*AAssociateAC) Type() PDUType { return PDUAssociateAC }
func (*AAssociateRJ) Type() PDUType { return PDUAssociateRJ }
func (*PDataTF) Type() PDUType      { return PDUPDataTF }
func (*AReleaseRQ) Type() PDUType   { return PDUReleaseRQ }
func (*AReleaseRP) Type() PDUType   { return PDUReleaseRP }
func (*AAbort) Type() PDUType       { return PDUAbort }

func (p *AAssociateRQ) MarshalBinary() ([]byte, error) { return marshalPDU(p) }
func (p *AAssociateAC) MarshalBinary() ([]byte, error) { return marshalPDU(p) }
func (p *AAssociateRJ) MarshalBinary() ([]byte, error) { return marshalPDU(p) }
func (p *PDataTF) MarshalBinary() ([]byte, error)      { return marshalPDU(p) }
func (p *AReleaseRQ) MarshalBinary() ([]byte, error)   { return marshalPDU(p) }
func (p *AReleaseRP) MarshalBinary() ([]byte, error)   { return marshalPDU(p) }
func (p *AAbort) MarshalBinary() ([]byte, error)       { return marshalPDU(p) }

func marshalPDU(p PDU) ([]byte, error) {
	b := appendPDU(make([]byte, 0, 256), p)
	if uint64(len(b)-6) > 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: %s too long", ErrInvalidPDU, p.Type())
	}
	return b, nil
}

// appendPDU appends the complete encoding (header included) of p to b.
func appendPDU(b []byte, p PDU) []byte {
	start := len(b)
	b = append(b, byte(p.Type()), 0, 0, 0, 0, 0)
	b = p.appendBody(b)
	binary.BigEndian.PutUint32(b[start+2:], uint32(len(b)-start-6))
	return b
}

// WritePDU encodes p and writes it to w in one Write call.
func WritePDU(w io.Writer, p PDU) error {
	b, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadPDU reads one PDU from r. A PDU whose declared length exceeds max is
// refused with ErrPDUTooLarge before anything is allocated; an unknown PDU
// type gives ErrUnknownPDU (after its body has been skipped when it fits
// the limit, so the stream stays in step); an inconsistent body gives
// ErrInvalidPDU. Reserved fields are not tested (PS3.8 Section 9.3.1).
func ReadPDU(r io.Reader, max uint32) (PDU, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	t := PDUType(hdr[0])
	n := binary.BigEndian.Uint32(hdr[2:])
	p := newPDU(t)
	if p == nil {
		if n <= max {
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return nil, noEOF(err)
			}
		}
		return nil, fmt.Errorf("%w: 0x%02X", ErrUnknownPDU, hdr[0])
	}
	if n > max {
		return nil, fmt.Errorf("%w: %s declares %d bytes, limit %d", ErrPDUTooLarge, t, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, noEOF(err)
	}
	if err := p.unmarshalBody(body); err != nil {
		return nil, err
	}
	return p, nil
}

// DecodePDU decodes one complete PDU (header included) from b.
func DecodePDU(b []byte) (PDU, error) {
	if len(b) < 6 {
		return nil, fmt.Errorf("%w: short header", ErrInvalidPDU)
	}
	n := binary.BigEndian.Uint32(b[2:])
	if uint64(n) != uint64(len(b)-6) {
		return nil, fmt.Errorf("%w: length %d, have %d", ErrInvalidPDU, n, len(b)-6)
	}
	p := newPDU(PDUType(b[0]))
	if p == nil {
		return nil, fmt.Errorf("%w: 0x%02X", ErrUnknownPDU, b[0])
	}
	if err := p.unmarshalBody(b[6:]); err != nil {
		return nil, err
	}
	return p, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func newPDU(t PDUType) PDU {
	switch t {
	case PDUAssociateRQ:
		return new(AAssociateRQ)
	case PDUAssociateAC:
		return new(AAssociateAC)
	case PDUAssociateRJ:
		return new(AAssociateRJ)
	case PDUPDataTF:
		return new(PDataTF)
	case PDUReleaseRQ:
		return new(AReleaseRQ)
	case PDUReleaseRP:
		return new(AReleaseRP)
	case PDUAbort:
		return new(AAbort)
	}
	return nil
}

// --- fixed-size PDUs ---

func (p *AAssociateRJ) appendBody(b []byte) []byte {
	return append(b, 0, byte(p.Result), byte(p.Source), byte(p.Reason))
}

func (p *AAssociateRJ) unmarshalBody(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("%w: A-ASSOCIATE-RJ length %d", ErrInvalidPDU, len(b))
	}
	p.Result, p.Source, p.Reason = RejectResult(b[1]), RejectSource(b[2]), RejectReason(b[3])
	return nil
}

func (p *AReleaseRQ) appendBody(b []byte) []byte { return append(b, 0, 0, 0, 0) }
func (p *AReleaseRP) appendBody(b []byte) []byte { return append(b, 0, 0, 0, 0) }

func (p *AReleaseRQ) unmarshalBody(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("%w: A-RELEASE-RQ length %d", ErrInvalidPDU, len(b))
	}
	return nil
}

func (p *AReleaseRP) unmarshalBody(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("%w: A-RELEASE-RP length %d", ErrInvalidPDU, len(b))
	}
	return nil
}

func (p *AAbort) appendBody(b []byte) []byte {
	return append(b, 0, 0, byte(p.Source), byte(p.Reason))
}

func (p *AAbort) unmarshalBody(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("%w: A-ABORT length %d", ErrInvalidPDU, len(b))
	}
	p.Source, p.Reason = AbortSource(b[2]), AbortReason(b[3])
	return nil
}

// --- P-DATA-TF ---

func (p *PDataTF) appendBody(b []byte) []byte {
	for _, v := range p.PDVs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)+2))
		b = append(b, v.ContextID, v.header())
		b = append(b, v.Data...)
	}
	return b
}

func (v PDV) header() byte {
	var h byte
	if v.Command {
		h |= 1
	}
	if v.Last {
		h |= 2
	}
	return h
}

// unmarshalBody decodes the PDV items; their Data alias b.
func (p *PDataTF) unmarshalBody(b []byte) error {
	p.PDVs = p.PDVs[:0]
	return forEachPDV(b, func(v PDV) error {
		p.PDVs = append(p.PDVs, v)
		return nil
	})
}

// forEachPDV walks the PDV items of a P-DATA-TF body without allocating.
func forEachPDV(b []byte, fn func(PDV) error) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: P-DATA-TF without PDV items", ErrInvalidPDU)
	}
	for len(b) > 0 {
		if len(b) < 6 {
			return fmt.Errorf("%w: truncated PDV item", ErrInvalidPDU)
		}
		n := binary.BigEndian.Uint32(b)
		if n < 2 || uint64(n) > uint64(len(b)-4) {
			return fmt.Errorf("%w: PDV item length %d, %d bytes left", ErrInvalidPDU, n, len(b)-4)
		}
		h := b[5]
		if h&^3 != 0 {
			return fmt.Errorf("%w: PDV message control header 0x%02X", ErrInvalidPDU, h)
		}
		v := PDV{ContextID: b[4], Command: h&1 != 0, Last: h&2 != 0, Data: b[6 : 4+n : 4+n]}
		if err := fn(v); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

// --- A-ASSOCIATE-RQ / AC ---

func appendAETitle(b []byte, ae string) []byte {
	var f [16]byte
	for i := range f {
		f[i] = ' '
	}
	copy(f[:], ae)
	return append(b, f[:]...)
}

func appendItem(b []byte, typ byte, data []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func appendStringItem(b []byte, typ byte, s string) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// beginItem appends an item header with a zero length and returns the
// offset to pass to endItem.
func beginItem(b []byte, typ byte) ([]byte, int) {
	return append(b, typ, 0, 0, 0), len(b)
}

func endItem(b []byte, start int) []byte {
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start-4))
	return b
}

func appendAssocHeader(b []byte, version uint16, called, calling string) []byte {
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, 0, 0)
	b = appendAETitle(b, called)
	b = appendAETitle(b, calling)
	return append(b, make([]byte, 32)...)
}

func (p *AAssociateRQ) appendBody(b []byte) []byte {
	b = appendAssocHeader(b, p.ProtocolVersion, p.CalledAE, p.CallingAE)
	b = appendStringItem(b, ItemApplicationContext, p.ApplicationContext)
	for _, pc := range p.Contexts {
		var s int
		b, s = beginItem(b, ItemPresentationContextRQ)
		b = append(b, pc.ID, 0, 0, 0)
		b = appendStringItem(b, ItemAbstractSyntax, pc.AbstractSyntax)
		for _, ts := range pc.TransferSyntaxes {
			b = appendStringItem(b, ItemTransferSyntax, ts)
		}
		b = endItem(b, s)
	}
	b = p.UserInfo.appendItem(b)
	for _, it := range p.Unknown {
		b = appendItem(b, it.Type, it.Data)
	}
	return b
}

func (p *AAssociateAC) appendBody(b []byte) []byte {
	b = appendAssocHeader(b, p.ProtocolVersion, p.CalledAE, p.CallingAE)
	b = appendStringItem(b, ItemApplicationContext, p.ApplicationContext)
	for _, pc := range p.Contexts {
		var s int
		b, s = beginItem(b, ItemPresentationContextAC)
		b = append(b, pc.ID, 0, byte(pc.Result), 0)
		b = appendStringItem(b, ItemTransferSyntax, pc.TransferSyntax)
		b = endItem(b, s)
	}
	b = p.UserInfo.appendItem(b)
	for _, it := range p.Unknown {
		b = appendItem(b, it.Type, it.Data)
	}
	return b
}

func (u *UserInformation) appendItem(b []byte) []byte {
	b, s := beginItem(b, ItemUserInformation)
	b = append(b, ItemMaxLength, 0, 0, 4)
	b = binary.BigEndian.AppendUint32(b, u.MaxLength)
	if u.ImplementationClassUID != "" {
		b = appendStringItem(b, ItemImplementationClassUID, u.ImplementationClassUID)
	}
	if u.AsyncOps != nil {
		b = append(b, ItemAsyncOperationsWindow, 0, 0, 4)
		b = binary.BigEndian.AppendUint16(b, u.AsyncOps.MaxOpsInvoked)
		b = binary.BigEndian.AppendUint16(b, u.AsyncOps.MaxOpsPerformed)
	}
	for _, r := range u.Roles {
		var rs int
		b, rs = beginItem(b, ItemRoleSelection)
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.SOPClassUID)))
		b = append(b, r.SOPClassUID...)
		b = append(b, boolByte(r.SCU), boolByte(r.SCP))
		b = endItem(b, rs)
	}
	if u.ImplementationVersionName != "" {
		b = appendStringItem(b, ItemImplementationVersion, u.ImplementationVersionName)
	}
	for _, e := range u.ExtendedNegotiation {
		var es int
		b, es = beginItem(b, ItemSOPClassExtendedNeg)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.SOPClassUID)))
		b = append(b, e.SOPClassUID...)
		b = append(b, e.Info...)
		b = endItem(b, es)
	}
	for _, e := range u.CommonExtendedNegotiation {
		var es int
		b, es = beginItem(b, ItemSOPClassCommonExtendedNeg)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.SOPClassUID)))
		b = append(b, e.SOPClassUID...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.ServiceClassUID)))
		b = append(b, e.ServiceClassUID...)
		n := 0
		for _, r := range e.RelatedGeneralClasses {
			n += 2 + len(r)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		for _, r := range e.RelatedGeneralClasses {
			b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
			b = append(b, r...)
		}
		b = endItem(b, es)
	}
	if id := u.UserIdentity; id != nil {
		var is int
		b, is = beginItem(b, ItemUserIdentityRQ)
		b = append(b, id.Type, boolByte(id.PositiveResponseRequested))
		b = binary.BigEndian.AppendUint16(b, uint16(len(id.Primary)))
		b = append(b, id.Primary...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(id.Secondary)))
		b = append(b, id.Secondary...)
		b = endItem(b, is)
	}
	if id := u.UserIdentityAC; id != nil {
		var is int
		b, is = beginItem(b, ItemUserIdentityAC)
		b = binary.BigEndian.AppendUint16(b, uint16(len(id.ServerResponse)))
		b = append(b, id.ServerResponse...)
		b = endItem(b, is)
	}
	for _, it := range u.Unknown {
		b = appendItem(b, it.Type, it.Data)
	}
	return endItem(b, s)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// trimAE removes the space padding of an AE title (leading and trailing
// spaces are not significant, PS3.5 Section 6.2).
func trimAE(b []byte) string {
	return strings.Trim(string(b), " \x00")
}

// trimUID removes the trailing NUL padding some peers put on UIDs.
func trimUID(b []byte) string {
	return strings.TrimRight(string(b), "\x00 ")
}

// itemIter walks the items of a variable field: type (1), reserved (1),
// length (2), value. Every length is checked against what is left.
type itemIter struct {
	b   []byte
	err error
}

func (it *itemIter) next() (typ byte, val []byte, ok bool) {
	if it.err != nil || len(it.b) == 0 {
		return 0, nil, false
	}
	if len(it.b) < 4 {
		it.err = fmt.Errorf("%w: truncated item header (%d bytes)", ErrInvalidPDU, len(it.b))
		return 0, nil, false
	}
	typ = it.b[0]
	n := int(binary.BigEndian.Uint16(it.b[2:]))
	if n > len(it.b)-4 {
		it.err = fmt.Errorf("%w: item 0x%02X length %d, %d bytes left", ErrInvalidPDU, typ, n, len(it.b)-4)
		return 0, nil, false
	}
	val = it.b[4 : 4+n : 4+n]
	it.b = it.b[4+n:]
	return typ, val, true
}

func parseAssocHeader(b []byte, what string) (version uint16, called, calling string, rest []byte, err error) {
	if len(b) < 68 {
		return 0, "", "", nil, fmt.Errorf("%w: %s fixed fields truncated (%d bytes)", ErrInvalidPDU, what, len(b))
	}
	return binary.BigEndian.Uint16(b), trimAE(b[4:20]), trimAE(b[20:36]), b[68:], nil
}

func (p *AAssociateRQ) unmarshalBody(b []byte) error {
	var rest []byte
	var err error
	p.ProtocolVersion, p.CalledAE, p.CallingAE, rest, err = parseAssocHeader(b, "A-ASSOCIATE-RQ")
	if err != nil {
		return err
	}
	it := itemIter{b: rest}
	for {
		typ, val, ok := it.next()
		if !ok {
			break
		}
		switch typ {
		case ItemApplicationContext:
			p.ApplicationContext = trimUID(val)
		case ItemPresentationContextRQ:
			pc, err := parsePCRQ(val)
			if err != nil {
				return err
			}
			p.Contexts = append(p.Contexts, pc)
		case ItemUserInformation:
			if err := p.UserInfo.unmarshal(val); err != nil {
				return err
			}
		default:
			p.Unknown = append(p.Unknown, RawItem{Type: typ, Data: append([]byte(nil), val...)})
		}
	}
	return it.err
}

func parsePCRQ(b []byte) (PresentationContextRQItem, error) {
	var pc PresentationContextRQItem
	if len(b) < 4 {
		return pc, fmt.Errorf("%w: presentation context item too short", ErrInvalidPDU)
	}
	pc.ID = b[0]
	it := itemIter{b: b[4:]}
	for {
		typ, val, ok := it.next()
		if !ok {
			break
		}
		switch typ {
		case ItemAbstractSyntax:
			pc.AbstractSyntax = trimUID(val)
		case ItemTransferSyntax:
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(val))
		default:
			// Unknown sub-items are ignored (PS3.8 Section 9.3.2.2).
		}
	}
	return pc, it.err
}

func (p *AAssociateAC) unmarshalBody(b []byte) error {
	var rest []byte
	var err error
	p.ProtocolVersion, p.CalledAE, p.CallingAE, rest, err = parseAssocHeader(b, "A-ASSOCIATE-AC")
	if err != nil {
		return err
	}
	it := itemIter{b: rest}
	for {
		typ, val, ok := it.next()
		if !ok {
			break
		}
		switch typ {
		case ItemApplicationContext:
			p.ApplicationContext = trimUID(val)
		case ItemPresentationContextAC:
			if len(val) < 4 {
				return fmt.Errorf("%w: presentation context AC item too short", ErrInvalidPDU)
			}
			pc := PresentationContextACItem{ID: val[0], Result: PCResult(val[2])}
			sub := itemIter{b: val[4:]}
			for {
				t, v, ok := sub.next()
				if !ok {
					break
				}
				if t == ItemTransferSyntax {
					pc.TransferSyntax = trimUID(v)
				}
			}
			if sub.err != nil {
				return sub.err
			}
			p.Contexts = append(p.Contexts, pc)
		case ItemUserInformation:
			if err := p.UserInfo.unmarshal(val); err != nil {
				return err
			}
		default:
			p.Unknown = append(p.Unknown, RawItem{Type: typ, Data: append([]byte(nil), val...)})
		}
	}
	return it.err
}

// lenPrefixed reads a 2-byte big-endian length and that many bytes.
func lenPrefixed(b []byte, what string) (val, rest []byte, err error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("%w: %s length truncated", ErrInvalidPDU, what)
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > len(b)-2 {
		return nil, nil, fmt.Errorf("%w: %s length %d, %d bytes left", ErrInvalidPDU, what, n, len(b)-2)
	}
	return b[2 : 2+n : 2+n], b[2+n:], nil
}

func (u *UserInformation) unmarshal(b []byte) error {
	*u = UserInformation{}
	it := itemIter{b: b}
	for {
		typ, val, ok := it.next()
		if !ok {
			break
		}
		switch typ {
		case ItemMaxLength:
			if len(val) != 4 {
				return fmt.Errorf("%w: maximum length sub-item length %d", ErrInvalidPDU, len(val))
			}
			u.MaxLength = binary.BigEndian.Uint32(val)
		case ItemImplementationClassUID:
			u.ImplementationClassUID = trimUID(val)
		case ItemImplementationVersion:
			u.ImplementationVersionName = strings.TrimRight(string(val), " \x00")
		case ItemAsyncOperationsWindow:
			if len(val) != 4 {
				return fmt.Errorf("%w: async operations window length %d", ErrInvalidPDU, len(val))
			}
			u.AsyncOps = &AsyncOpsWindow{binary.BigEndian.Uint16(val), binary.BigEndian.Uint16(val[2:])}
		case ItemRoleSelection:
			uid, rest, err := lenPrefixed(val, "role selection UID")
			if err != nil {
				return err
			}
			if len(rest) != 2 {
				return fmt.Errorf("%w: role selection roles length %d", ErrInvalidPDU, len(rest))
			}
			u.Roles = append(u.Roles, RoleSelection{SOPClassUID: trimUID(uid), SCU: rest[0] != 0, SCP: rest[1] != 0})
		case ItemSOPClassExtendedNeg:
			uid, rest, err := lenPrefixed(val, "extended negotiation UID")
			if err != nil {
				return err
			}
			u.ExtendedNegotiation = append(u.ExtendedNegotiation, SOPClassExtendedNegotiation{
				SOPClassUID: trimUID(uid), Info: append([]byte(nil), rest...)})
		case ItemSOPClassCommonExtendedNeg:
			uid, rest, err := lenPrefixed(val, "common extended negotiation SOP class UID")
			if err != nil {
				return err
			}
			svc, rest, err := lenPrefixed(rest, "common extended negotiation service class UID")
			if err != nil {
				return err
			}
			rel, _, err := lenPrefixed(rest, "related general SOP class identification")
			if err != nil {
				return err
			}
			e := SOPClassCommonExtendedNegotiation{SOPClassUID: trimUID(uid), ServiceClassUID: trimUID(svc)}
			for len(rel) > 0 {
				var r []byte
				r, rel, err = lenPrefixed(rel, "related general SOP class UID")
				if err != nil {
					return err
				}
				e.RelatedGeneralClasses = append(e.RelatedGeneralClasses, trimUID(r))
			}
			u.CommonExtendedNegotiation = append(u.CommonExtendedNegotiation, e)
		case ItemUserIdentityRQ:
			if len(val) < 2 {
				return fmt.Errorf("%w: user identity sub-item too short", ErrInvalidPDU)
			}
			id := &UserIdentity{Type: val[0], PositiveResponseRequested: val[1] != 0}
			p, rest, err := lenPrefixed(val[2:], "user identity primary field")
			if err != nil {
				return err
			}
			s, _, err := lenPrefixed(rest, "user identity secondary field")
			if err != nil {
				return err
			}
			id.Primary = append([]byte(nil), p...)
			id.Secondary = append([]byte(nil), s...)
			u.UserIdentity = id
		case ItemUserIdentityAC:
			r, _, err := lenPrefixed(val, "user identity server response")
			if err != nil {
				return err
			}
			u.UserIdentityAC = &UserIdentityAC{ServerResponse: append([]byte(nil), r...)}
		default:
			// Unrecognized sub-items are kept, and otherwise ignored
			// (PS3.7 Annex D.3.3).
			u.Unknown = append(u.Unknown, RawItem{Type: typ, Data: append([]byte(nil), val...)})
		}
	}
	return it.err
}
