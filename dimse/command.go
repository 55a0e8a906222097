package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// CommandField is the Command Field (0000,0100) of a DIMSE message, PS3.7
// Section 9.3 and 10.3 (Table E.1-1).
type CommandField uint16

// Command fields, PS3.7 Annex E.
const (
	CStoreRQ        CommandField = 0x0001
	CStoreRSP       CommandField = 0x8001
	CGetRQ          CommandField = 0x0010
	CGetRSP         CommandField = 0x8010
	CFindRQ         CommandField = 0x0020
	CFindRSP        CommandField = 0x8020
	CMoveRQ         CommandField = 0x0021
	CMoveRSP        CommandField = 0x8021
	CEchoRQ         CommandField = 0x0030
	CEchoRSP        CommandField = 0x8030
	NEventReportRQ  CommandField = 0x0100
	NEventReportRSP CommandField = 0x8100
	NGetRQ          CommandField = 0x0110
	NGetRSP         CommandField = 0x8110
	NSetRQ          CommandField = 0x0120
	NSetRSP         CommandField = 0x8120
	NActionRQ       CommandField = 0x0130
	NActionRSP      CommandField = 0x8130
	NCreateRQ       CommandField = 0x0140
	NCreateRSP      CommandField = 0x8140
	NDeleteRQ       CommandField = 0x0150
	NDeleteRSP      CommandField = 0x8150
	CCancelRQ       CommandField = 0x0FFF
)

// Short aliases for registering handlers, as in mux.Handle(dimse.CEcho, ...).
const (
	CStore = CStoreRQ
	CFind  = CFindRQ
	CMove  = CMoveRQ
	CGet   = CGetRQ
	CEcho  = CEchoRQ
)

var commandNames = map[CommandField]string{
	CStoreRQ: "C-STORE-RQ", CStoreRSP: "C-STORE-RSP", CGetRQ: "C-GET-RQ", CGetRSP: "C-GET-RSP",
	CFindRQ: "C-FIND-RQ", CFindRSP: "C-FIND-RSP", CMoveRQ: "C-MOVE-RQ", CMoveRSP: "C-MOVE-RSP",
	CEchoRQ: "C-ECHO-RQ", CEchoRSP: "C-ECHO-RSP", NEventReportRQ: "N-EVENT-REPORT-RQ",
	NEventReportRSP: "N-EVENT-REPORT-RSP", NGetRQ: "N-GET-RQ", NGetRSP: "N-GET-RSP",
	NSetRQ: "N-SET-RQ", NSetRSP: "N-SET-RSP", NActionRQ: "N-ACTION-RQ", NActionRSP: "N-ACTION-RSP",
	NCreateRQ: "N-CREATE-RQ", NCreateRSP: "N-CREATE-RSP", NDeleteRQ: "N-DELETE-RQ",
	NDeleteRSP: "N-DELETE-RSP", CCancelRQ: "C-CANCEL-RQ",
}

func (f CommandField) String() string {
	if n, ok := commandNames[f]; ok {
		return n
	}
	return fmt.Sprintf("CommandField(0x%04X)", uint16(f))
}

// IsResponse reports whether f is a response (bit 15 set).
func (f CommandField) IsResponse() bool { return f&0x8000 != 0 }

// Known reports whether f is defined by PS3.7.
func (f CommandField) Known() bool { _, ok := commandNames[f]; return ok }

// Priorities, Priority (0000,0700).
const (
	PriorityMedium uint16 = 0x0000
	PriorityHigh   uint16 = 0x0001
	PriorityLow    uint16 = 0x0002
)

// Command set element tags (group 0000), PS3.7 Table E.1-1.
const (
	TagCommandGroupLength        uint32 = 0x00000000
	TagAffectedSOPClassUID       uint32 = 0x00000002
	TagRequestedSOPClassUID      uint32 = 0x00000003
	TagCommandField              uint32 = 0x00000100
	TagMessageID                 uint32 = 0x00000110
	TagMessageIDBeingRespondedTo uint32 = 0x00000120
	TagMoveDestination           uint32 = 0x00000600
	TagPriority                  uint32 = 0x00000700
	TagCommandDataSetType        uint32 = 0x00000800
	TagStatus                    uint32 = 0x00000900
	TagOffendingElement          uint32 = 0x00000901
	TagErrorComment              uint32 = 0x00000902
	TagErrorID                   uint32 = 0x00000903
	TagAffectedSOPInstanceUID    uint32 = 0x00001000
	TagRequestedSOPInstanceUID   uint32 = 0x00001001
	TagEventTypeID               uint32 = 0x00001002
	TagAttributeIdentifierList   uint32 = 0x00001005
	TagActionTypeID              uint32 = 0x00001008
	TagNumberOfRemainingSubops   uint32 = 0x00001020
	TagNumberOfCompletedSubops   uint32 = 0x00001021
	TagNumberOfFailedSubops      uint32 = 0x00001022
	TagNumberOfWarningSubops     uint32 = 0x00001023
	TagMoveOriginatorAETitle     uint32 = 0x00001030
	TagMoveOriginatorMessageID   uint32 = 0x00001031
)

// dataSetAbsent is the Command Data Set Type (0000,0800) value meaning no
// data set follows (PS3.7 Table E.1-1); any other value means one does.
const dataSetAbsent = 0x0101

// Command is a decoded DIMSE command set (PS3.7 Section 6.3.1 and Annex E).
// Elements the struct does not name (Error ID, Event Type ID, Action Type
// ID, Attribute Identifier List, private or retired elements) are kept in
// Extra, keyed by tag, with their raw little-endian values.
type Command struct {
	Field                                 CommandField
	MessageID                             uint16
	MessageIDBeingRespondedTo             uint16
	AffectedSOPClassUID                   string
	AffectedSOPInstanceUID                string
	RequestedSOPClassUID                  string
	RequestedSOPInstanceUID               string
	Priority                              uint16
	HasDataSet                            bool
	Status                                Status // responses only
	MoveDestination                       string
	MoveOriginatorAE                      string
	MoveOriginatorMessageID               uint16
	Remaining, Completed, Failed, Warning *uint16 // sub-operation counts (C-MOVE/C-GET responses)
	Extra                                 map[uint32][]byte
}

// ErrBadCommand wraps every command set decoding error.
var ErrBadCommand = errors.New("dimse: invalid command set")

// MaxCommandLength bounds the size of a command set the engine reassembles.
const MaxCommandLength = 64 << 10

// Encode returns the command set in implicit VR little endian with its
// Command Group Length (0000,0000) first, PS3.7 Section 6.3.1.
func (c *Command) Encode() []byte { return c.AppendEncode(nil) }

// AppendEncode appends the encoding of c to b.
func (c *Command) AppendEncode(b []byte) []byte {
	start := len(b)
	b = appendUL(b, TagCommandGroupLength, 0)
	body := len(b)
	isRSP := c.Field.IsResponse()
	// Elements in ascending tag order; Extra merged in.
	extraTags := make([]uint32, 0, len(c.Extra))
	for t := range c.Extra {
		if t>>16 == 0 && t != TagCommandGroupLength && !knownTag(t) {
			extraTags = append(extraTags, t)
		}
	}
	sort.Slice(extraTags, func(i, j int) bool { return extraTags[i] < extraTags[j] })
	ei := 0
	emitExtraBefore := func(b []byte, tag uint32) []byte {
		for ei < len(extraTags) && extraTags[ei] < tag {
			b = appendElem(b, extraTags[ei], c.Extra[extraTags[ei]])
			ei++
		}
		return b
	}
	put := func(b []byte, tag uint32, v []byte) []byte {
		b = emitExtraBefore(b, tag)
		return appendElem(b, tag, v)
	}
	var tmp [2]byte
	us := func(v uint16) []byte { binary.LittleEndian.PutUint16(tmp[:], v); return tmp[:] }

	if c.AffectedSOPClassUID != "" {
		b = put(b, TagAffectedSOPClassUID, padUID(c.AffectedSOPClassUID))
	}
	if c.RequestedSOPClassUID != "" {
		b = put(b, TagRequestedSOPClassUID, padUID(c.RequestedSOPClassUID))
	}
	b = put(b, TagCommandField, us(uint16(c.Field)))
	// Requests carry Message ID; responses and C-CANCEL-RQ (PS3.7
	// Section 9.3.2.3) carry Message ID Being Responded To.
	if !isRSP && c.Field != CCancelRQ || c.MessageID != 0 {
		b = put(b, TagMessageID, us(c.MessageID))
	}
	if isRSP || c.Field == CCancelRQ || c.MessageIDBeingRespondedTo != 0 {
		b = put(b, TagMessageIDBeingRespondedTo, us(c.MessageIDBeingRespondedTo))
	}
	if c.MoveDestination != "" {
		b = put(b, TagMoveDestination, padText(c.MoveDestination))
	}
	if !isRSP && (c.Field == CStoreRQ || c.Field == CFindRQ || c.Field == CMoveRQ || c.Field == CGetRQ || c.Priority != 0) {
		b = put(b, TagPriority, us(c.Priority))
	}
	dst := uint16(dataSetAbsent)
	if c.HasDataSet {
		dst = 0x0001
	}
	b = put(b, TagCommandDataSetType, us(dst))
	if isRSP {
		b = put(b, TagStatus, us(c.Status.Code))
	}
	if len(c.Status.OffendingElements) > 0 {
		v := make([]byte, 0, 4*len(c.Status.OffendingElements))
		for _, t := range c.Status.OffendingElements {
			v = binary.LittleEndian.AppendUint16(v, uint16(t>>16))
			v = binary.LittleEndian.AppendUint16(v, uint16(t))
		}
		b = put(b, TagOffendingElement, v)
	}
	if c.Status.Comment != "" {
		cm := c.Status.Comment
		if len(cm) > 64 {
			cm = cm[:64]
		}
		b = put(b, TagErrorComment, padText(cm))
	}
	if c.AffectedSOPInstanceUID != "" {
		b = put(b, TagAffectedSOPInstanceUID, padUID(c.AffectedSOPInstanceUID))
	}
	if c.RequestedSOPInstanceUID != "" {
		b = put(b, TagRequestedSOPInstanceUID, padUID(c.RequestedSOPInstanceUID))
	}
	for i, p := range []*uint16{c.Remaining, c.Completed, c.Failed, c.Warning} {
		if p != nil {
			b = put(b, TagNumberOfRemainingSubops+uint32(i), us(*p))
		}
	}
	if c.MoveOriginatorAE != "" {
		b = put(b, TagMoveOriginatorAETitle, padText(c.MoveOriginatorAE))
	}
	if c.MoveOriginatorAE != "" || c.MoveOriginatorMessageID != 0 {
		b = put(b, TagMoveOriginatorMessageID, us(c.MoveOriginatorMessageID))
	}
	b = emitExtraBefore(b, 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(b[start+8:], uint32(len(b)-body))
	return b
}

func knownTag(t uint32) bool {
	switch t {
	case TagAffectedSOPClassUID, TagRequestedSOPClassUID, TagCommandField, TagMessageID,
		TagMessageIDBeingRespondedTo, TagMoveDestination, TagPriority, TagCommandDataSetType,
		TagStatus, TagOffendingElement, TagErrorComment, TagAffectedSOPInstanceUID,
		TagRequestedSOPInstanceUID, TagNumberOfRemainingSubops, TagNumberOfCompletedSubops,
		TagNumberOfFailedSubops, TagNumberOfWarningSubops, TagMoveOriginatorAETitle,
		TagMoveOriginatorMessageID:
		return true
	}
	return false
}

func appendElem(b []byte, tag uint32, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(tag>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(tag))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendUL(b []byte, tag uint32, v uint32) []byte {
	var x [4]byte
	binary.LittleEndian.PutUint32(x[:], v)
	return appendElem(b, tag, x[:])
}

func padUID(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func padText(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	return b
}

// DecodeCommand decodes an implicit VR little endian command set. Every
// element length is checked against the input; elements outside group
// 0000 and a missing Command Field are errors wrapping ErrBadCommand.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	haveField := false
	c.HasDataSet = false
	for len(b) > 0 {
		if len(b) < 8 {
			return c, fmt.Errorf("%w: truncated element header", ErrBadCommand)
		}
		group := binary.LittleEndian.Uint16(b)
		elem := binary.LittleEndian.Uint16(b[2:])
		n := binary.LittleEndian.Uint32(b[4:])
		tag := uint32(group)<<16 | uint32(elem)
		if group != 0 {
			return c, fmt.Errorf("%w: element (%04X,%04X) outside group 0000", ErrBadCommand, group, elem)
		}
		if uint64(n) > uint64(len(b)-8) {
			return c, fmt.Errorf("%w: element (%04X,%04X) length %d, %d bytes left", ErrBadCommand, group, elem, n, len(b)-8)
		}
		v := b[8 : 8+n : 8+n]
		b = b[8+n:]
		usv := func() (uint16, error) {
			if len(v) != 2 {
				return 0, fmt.Errorf("%w: (%04X,%04X) US length %d", ErrBadCommand, group, elem, len(v))
			}
			return binary.LittleEndian.Uint16(v), nil
		}
		var err error
		switch tag {
		case TagCommandGroupLength:
			if len(v) != 4 {
				return c, fmt.Errorf("%w: command group length size %d", ErrBadCommand, len(v))
			}
		case TagAffectedSOPClassUID:
			c.AffectedSOPClassUID = trimUID(v)
		case TagRequestedSOPClassUID:
			c.RequestedSOPClassUID = trimUID(v)
		case TagAffectedSOPInstanceUID:
			c.AffectedSOPInstanceUID = trimUID(v)
		case TagRequestedSOPInstanceUID:
			c.RequestedSOPInstanceUID = trimUID(v)
		case TagCommandField:
			var f uint16
			f, err = usv()
			c.Field = CommandField(f)
			haveField = true
		case TagMessageID:
			c.MessageID, err = usv()
		case TagMessageIDBeingRespondedTo:
			c.MessageIDBeingRespondedTo, err = usv()
		case TagMoveDestination:
			c.MoveDestination = strings.Trim(string(v), " \x00")
		case TagPriority:
			c.Priority, err = usv()
		case TagCommandDataSetType:
			var d uint16
			d, err = usv()
			c.HasDataSet = d != dataSetAbsent
		case TagStatus:
			c.Status.Code, err = usv()
		case TagOffendingElement:
			if len(v)%4 != 0 {
				return c, fmt.Errorf("%w: offending element length %d", ErrBadCommand, len(v))
			}
			c.Status.OffendingElements = nil
			for i := 0; i+4 <= len(v); i += 4 {
				c.Status.OffendingElements = append(c.Status.OffendingElements,
					uint32(binary.LittleEndian.Uint16(v[i:]))<<16|uint32(binary.LittleEndian.Uint16(v[i+2:])))
			}
		case TagErrorComment:
			c.Status.Comment = strings.TrimRight(string(v), " \x00")
		case TagNumberOfRemainingSubops, TagNumberOfCompletedSubops, TagNumberOfFailedSubops, TagNumberOfWarningSubops:
			var x uint16
			x, err = usv()
			p := &x
			switch tag {
			case TagNumberOfRemainingSubops:
				c.Remaining = p
			case TagNumberOfCompletedSubops:
				c.Completed = p
			case TagNumberOfFailedSubops:
				c.Failed = p
			default:
				c.Warning = p
			}
		case TagMoveOriginatorAETitle:
			c.MoveOriginatorAE = strings.Trim(string(v), " \x00")
		case TagMoveOriginatorMessageID:
			c.MoveOriginatorMessageID, err = usv()
		default:
			if c.Extra == nil {
				c.Extra = make(map[uint32][]byte)
			}
			c.Extra[tag] = append([]byte(nil), v...)
		}
		if err != nil {
			return c, err
		}
	}
	if !haveField {
		return c, fmt.Errorf("%w: no Command Field (0000,0100)", ErrBadCommand)
	}
	return c, nil
}

func u16(v uint16) *uint16 { return &v }
