package dimse

import (
	"fmt"
	"strings"
)

// Status is the status of a DIMSE response (PS3.7 Annex C): the Status
// (0000,0900), Error Comment (0000,0902) and Offending Element (0000,0901)
// of the response command set. A Status whose category is Failure or
// Cancel can be used as an error.
type Status struct {
	Code              uint16
	Comment           string   // Error Comment (0000,0902), LO, ≤ 64 chars
	OffendingElements []uint32 // Offending Element (0000,0901), tags as group<<16|element
}

// Status codes, PS3.7 Annex C and the service class annexes of PS3.4.
const (
	StatusSuccess                  uint16 = 0x0000
	StatusCancel                   uint16 = 0xFE00
	StatusPending                  uint16 = 0xFF00
	StatusPendingWarning           uint16 = 0xFF01 // C-FIND: optional keys not supported
	StatusWarning                  uint16 = 0x0001
	StatusWarningCoercion          uint16 = 0xB000 // C-STORE: coercion of data elements
	StatusWarningSubOpsFailed      uint16 = 0xB000 // C-MOVE/C-GET: sub-operations complete, one or more failures
	StatusWarningElementsDiscarded uint16 = 0xB006
	StatusWarningDataSetMismatch   uint16 = 0xB007
	StatusAttributeListError       uint16 = 0x0107
	StatusAttributeValueOutOfRange uint16 = 0x0116
	StatusRefusedNotAuthorized     uint16 = 0x0124
	StatusOutOfResources           uint16 = 0xA700
	StatusOutOfResourcesMatches    uint16 = 0xA701 // C-MOVE/C-GET: unable to calculate number of matches
	StatusOutOfResourcesSubOps     uint16 = 0xA702 // C-MOVE/C-GET: unable to perform sub-operations
	StatusMoveDestinationUnknown   uint16 = 0xA801
	StatusSOPInstanceMismatch      uint16 = 0xA900 // C-STORE: data set does not match SOP class
	StatusIdentifierMismatch       uint16 = 0xA900 // C-FIND/C-MOVE/C-GET: identifier does not match SOP class
	StatusCannotUnderstand         uint16 = 0xC000
	StatusProcessingFailure        uint16 = 0x0110
	StatusNoSuchAttribute          uint16 = 0x0105
	StatusInvalidAttributeValue    uint16 = 0x0106
	StatusNoSuchSOPClass           uint16 = 0x0118
	StatusNoSuchSOPInstance        uint16 = 0x0112
	StatusInvalidObjectInstance    uint16 = 0x0117
	StatusClassInstanceConflict    uint16 = 0x0119
	StatusMissingAttribute         uint16 = 0x0120
	StatusMissingAttributeValue    uint16 = 0x0121
	StatusSOPClassNotSupported     uint16 = 0x0122
	StatusNotAuthorized            uint16 = 0x0124
	StatusDuplicateSOPInstance     uint16 = 0x0111
	StatusDuplicateInvocation      uint16 = 0x0210
	StatusInvalidArgumentValue     uint16 = 0x0115
	StatusUnrecognizedOperation    uint16 = 0x0211
	StatusMistypedArgument         uint16 = 0x0212
	StatusResourceLimitation       uint16 = 0x0213
	StatusNoSuchEventType          uint16 = 0x0113
	StatusNoSuchActionType         uint16 = 0x0123
	StatusNoSuchArgument           uint16 = 0x0114 // no such argument
)

// StatusCategory classifies status codes, PS3.7 Annex C.
type StatusCategory int

// Status categories.
const (
	CategorySuccess StatusCategory = iota
	CategoryWarning
	CategoryFailure
	CategoryCancel
	CategoryPending
)

func (c StatusCategory) String() string {
	switch c {
	case CategorySuccess:
		return "Success"
	case CategoryWarning:
		return "Warning"
	case CategoryFailure:
		return "Failure"
	case CategoryCancel:
		return "Cancel"
	case CategoryPending:
		return "Pending"
	}
	return fmt.Sprintf("StatusCategory(%d)", int(c))
}

// CategoryOf returns the category of a status code (PS3.7 Section C.1):
// 0000 success; FF00, FF01 pending; FE00 cancel; 0001, 0107, 0116 and Bxxx
// warning; everything else failure.
func CategoryOf(code uint16) StatusCategory {
	switch {
	case code == StatusSuccess:
		return CategorySuccess
	case code == StatusPending || code == StatusPendingWarning:
		return CategoryPending
	case code == StatusCancel:
		return CategoryCancel
	case code == StatusWarning || code == StatusAttributeListError || code == StatusAttributeValueOutOfRange,
		code&0xF000 == 0xB000:
		return CategoryWarning
	}
	return CategoryFailure
}

// Category returns the category of s.Code.
func (s Status) Category() StatusCategory { return CategoryOf(s.Code) }

// OK reports whether the status is Success or Warning.
func (s Status) OK() bool {
	c := s.Category()
	return c == CategorySuccess || c == CategoryWarning
}

var statusNames = map[uint16]string{
	StatusSuccess:                  "Success",
	StatusCancel:                   "Cancel",
	StatusPending:                  "Pending",
	StatusPendingWarning:           "Pending (optional keys not supported)",
	StatusWarning:                  "Warning",
	StatusWarningCoercion:          "Warning: coercion of data elements / sub-operations failed",
	StatusWarningElementsDiscarded: "Warning: elements discarded",
	StatusWarningDataSetMismatch:   "Warning: data set does not match SOP class",
	StatusAttributeListError:       "Warning: attribute list error",
	StatusAttributeValueOutOfRange: "Warning: attribute value out of range",
	StatusOutOfResources:           "Refused: out of resources",
	StatusOutOfResourcesMatches:    "Refused: out of resources (unable to calculate number of matches)",
	StatusOutOfResourcesSubOps:     "Refused: out of resources (unable to perform sub-operations)",
	StatusMoveDestinationUnknown:   "Refused: move destination unknown",
	StatusSOPInstanceMismatch:      "Error: data set does not match SOP class",
	StatusCannotUnderstand:         "Error: cannot understand",
	StatusProcessingFailure:        "Processing failure",
	StatusNoSuchAttribute:          "No such attribute",
	StatusInvalidAttributeValue:    "Invalid attribute value",
	StatusNoSuchSOPClass:           "No such SOP class",
	StatusNoSuchSOPInstance:        "No such SOP instance",
	StatusInvalidObjectInstance:    "Invalid object instance",
	StatusClassInstanceConflict:    "Class-instance conflict",
	StatusMissingAttribute:         "Missing attribute",
	StatusMissingAttributeValue:    "Missing attribute value",
	StatusSOPClassNotSupported:     "Refused: SOP class not supported",
	StatusNotAuthorized:            "Refused: not authorized",
	StatusDuplicateSOPInstance:     "Duplicate SOP instance",
	StatusDuplicateInvocation:      "Duplicate invocation",
	StatusInvalidArgumentValue:     "Invalid argument value",
	StatusUnrecognizedOperation:    "Unrecognized operation",
	StatusMistypedArgument:         "Mistyped argument",
	StatusResourceLimitation:       "Resource limitation",
	StatusNoSuchEventType:          "No such event type",
	StatusNoSuchActionType:         "No such action type",
	StatusNoSuchArgument:           "No such argument",
}

// StatusName returns a human-readable name for a status code.
func StatusName(code uint16) string {
	if n, ok := statusNames[code]; ok {
		return n
	}
	switch {
	case code&0xFF00 == 0xA700:
		return "Refused: out of resources"
	case code&0xF000 == 0xA000:
		return "Error: data set does not match SOP class"
	case code&0xF000 == 0xC000:
		return "Error: cannot understand"
	case code&0xF000 == 0xB000:
		return "Warning"
	}
	return CategoryOf(code).String()
}

// String returns e.g. "0xA700 Refused: out of resources (disk full)".
func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "0x%04X %s", s.Code, StatusName(s.Code))
	if s.Comment != "" {
		fmt.Fprintf(&b, " (%s)", s.Comment)
	}
	for _, t := range s.OffendingElements {
		fmt.Fprintf(&b, " [offending (%04X,%04X)]", t>>16, t&0xFFFF)
	}
	return b.String()
}

// Error makes a Status usable as an error: "dimse: status 0xA700 ...".
func (s Status) Error() string { return "dimse: status " + s.String() }

// RejectResult is the result field of an A-ASSOCIATE-RJ PDU (PS3.8 Table 9-21).
type RejectResult uint8

// A-ASSOCIATE-RJ results.
const (
	RejectedPermanent RejectResult = 1
	RejectedTransient RejectResult = 2
)

func (r RejectResult) String() string {
	switch r {
	case RejectedPermanent:
		return "rejected-permanent"
	case RejectedTransient:
		return "rejected-transient"
	}
	return fmt.Sprintf("RejectResult(%d)", uint8(r))
}

// RejectSource is the source field of an A-ASSOCIATE-RJ PDU (PS3.8 Table 9-21).
type RejectSource uint8

// A-ASSOCIATE-RJ sources.
const (
	SourceServiceUser                 RejectSource = 1
	SourceServiceProviderACSE         RejectSource = 2
	SourceServiceProviderPresentation RejectSource = 3
)

func (s RejectSource) String() string {
	switch s {
	case SourceServiceUser:
		return "DICOM UL service-user"
	case SourceServiceProviderACSE:
		return "DICOM UL service-provider (ACSE related function)"
	case SourceServiceProviderPresentation:
		return "DICOM UL service-provider (presentation related function)"
	}
	return fmt.Sprintf("RejectSource(%d)", uint8(s))
}

// RejectReason is the reason/diag field of an A-ASSOCIATE-RJ PDU (PS3.8
// Table 9-21). Its meaning depends on the source: the constants below are
// named for the source they go with.
type RejectReason uint8

// A-ASSOCIATE-RJ reasons.
const (
	// Source 1, service-user.
	ReasonNoReasonGiven                  RejectReason = 1
	ReasonApplicationContextNotSupported RejectReason = 2
	ReasonCallingAENotRecognized         RejectReason = 3
	ReasonCalledAENotRecognized          RejectReason = 7
	// Source 2, service-provider (ACSE related function).
	ReasonProviderNoReasonGiven       RejectReason = 1
	ReasonProtocolVersionNotSupported RejectReason = 2
	// Source 3, service-provider (presentation related function).
	ReasonTemporaryCongestion RejectReason = 1
	ReasonLocalLimitExceeded  RejectReason = 2
)

// Describe names the reason for the given source.
func (r RejectReason) Describe(src RejectSource) string {
	switch src {
	case SourceServiceUser:
		switch r {
		case ReasonNoReasonGiven:
			return "no-reason-given"
		case ReasonApplicationContextNotSupported:
			return "application-context-name-not-supported"
		case ReasonCallingAENotRecognized:
			return "calling-AE-title-not-recognized"
		case ReasonCalledAENotRecognized:
			return "called-AE-title-not-recognized"
		}
	case SourceServiceProviderACSE:
		switch r {
		case ReasonProviderNoReasonGiven:
			return "no-reason-given"
		case ReasonProtocolVersionNotSupported:
			return "protocol-version-not-supported"
		}
	case SourceServiceProviderPresentation:
		switch r {
		case ReasonTemporaryCongestion:
			return "temporary-congestion"
		case ReasonLocalLimitExceeded:
			return "local-limit-exceeded"
		}
	}
	return fmt.Sprintf("reason %d", uint8(r))
}

// String names the reason as if the source were the service-user.
func (r RejectReason) String() string { return r.Describe(SourceServiceUser) }

// Rejection is an A-ASSOCIATE-RJ: returned by Server.Admit to refuse an
// association, and by Dial when the peer refuses one.
type Rejection struct {
	Result RejectResult
	Source RejectSource
	Reason RejectReason
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("dimse: association rejected: %s, source %s, reason %s",
		r.Result, r.Source, r.Reason.Describe(r.Source))
}
