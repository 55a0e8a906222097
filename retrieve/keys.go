// Package retrieve implements DICOM retrieval (PS3.4 Annex C.4.2 and
// C.4.3): resolving a C-MOVE or C-GET identifier to stored instances, the
// sub-operation engine that sends them as C-STORE (over new associations to
// a move destination, or on the requesting association for C-GET), and the
// SCU side (Move, Get) used by the CLI and by the routing engine to fetch
// priors.
//
// The package knows nothing of the node's policy: access control, the
// destination table and the journal belong to package node.
package retrieve

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
)

// Query/Retrieve information model SOP classes (PS3.4 Annex C.6).
const (
	PatientRootMove = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootGet  = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootMove   = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootGet    = "1.2.840.10008.5.1.4.1.2.2.3"
)

// MoveSOPClasses and GetSOPClasses are the SOP classes served.
var (
	MoveSOPClasses = []string{PatientRootMove, StudyRootMove}
	GetSOPClasses  = []string{PatientRootGet, StudyRootGet}
)

// Query/Retrieve levels (0008,0052).
const (
	LevelPatient = "PATIENT"
	LevelStudy   = "STUDY"
	LevelSeries  = "SERIES"
	LevelImage   = "IMAGE"
)

// TagFailedSOPInstanceUIDList is Failed SOP Instance UID List (0008,0058).
const TagFailedSOPInstanceUIDList dicom.Tag = 0x00080058

// Keys is a retrieve identifier: the level and the unique keys (each may
// list several values, backslash-separated on the wire).
type Keys struct {
	Level     string
	PatientID string
	Studies   []string
	Series    []string
	Instances []string
}

// ErrIdentifier wraps identifier errors; they carry status A900
// (identifier does not match SOP class) through dimse.Status.
var ErrIdentifier = errors.New("retrieve: bad identifier")

func identifierError(format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	return fmt.Errorf("%w: %s: %w", ErrIdentifier, msg, dimse.Status{Code: dimse.StatusIdentifierMismatch, Comment: msg})
}

func splitUIDs(s string) []string {
	var out []string
	for _, v := range strings.Split(s, `\`) {
		// Padding may be a space or a NUL (PS3.5 6.2), and peers in the
		// wild also leave control characters around list elements.
		if v = strings.TrimFunc(v, isPadding); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func isPadding(r rune) bool { return r == 0 || unicode.IsSpace(r) }

// ParseIdentifier decodes a C-MOVE/C-GET identifier encoded in transfer
// syntax ts and checks it against the information model of sopClass
// (Patient Root or Study Root): the level must exist in the model and its
// unique key must be present.
func ParseIdentifier(data []byte, ts, sopClass string) (Keys, error) {
	syntax, ok := dicom.LookupTransferSyntax(ts)
	if !ok {
		return Keys{}, identifierError("unknown transfer syntax %s", ts)
	}
	res, err := dicom.Scan(bytes.NewReader(data), syntax, dicom.DefaultLimits(),
		dicom.WantTags(dicom.TagQueryRetrieveLevel, dicom.TagPatientID, dicom.TagStudyInstanceUID,
			dicom.TagSeriesInstanceUID, dicom.TagSOPInstanceUID))
	if err != nil {
		return Keys{}, identifierError("malformed identifier: %v", err)
	}
	ds := res.Dataset
	// Bytes the identifier's character set does not define are kept as
	// U+FFFD: the index holds UTF-8, and an identifier re-encoded for a
	// peer must say the same thing (found by FuzzParseIdentifier).
	str := func(t dicom.Tag) string {
		s, _ := ds.String(t)
		return strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	}
	k := Keys{
		Level:     strings.ToUpper(str(dicom.TagQueryRetrieveLevel)),
		PatientID: str(dicom.TagPatientID),
		Studies:   splitUIDs(str(dicom.TagStudyInstanceUID)),
		Series:    splitUIDs(str(dicom.TagSeriesInstanceUID)),
		Instances: splitUIDs(str(dicom.TagSOPInstanceUID)),
	}
	return k, k.Check(sopClass)
}

// Check validates the keys for the information model of sopClass.
func (k Keys) Check(sopClass string) error {
	patientRoot := sopClass == PatientRootMove || sopClass == PatientRootGet
	switch k.Level {
	case LevelPatient:
		if !patientRoot {
			return identifierError("level PATIENT is not in the Study Root model")
		}
		if k.PatientID == "" {
			return identifierError("level PATIENT needs PatientID")
		}
	case LevelStudy:
		if len(k.Studies) == 0 {
			return identifierError("level STUDY needs StudyInstanceUID")
		}
	case LevelSeries:
		if len(k.Series) == 0 {
			return identifierError("level SERIES needs SeriesInstanceUID")
		}
	case LevelImage:
		if len(k.Instances) == 0 {
			return identifierError("level IMAGE needs SOPInstanceUID")
		}
	case "":
		return identifierError("missing QueryRetrieveLevel")
	default:
		return identifierError("unknown QueryRetrieveLevel %q", k.Level)
	}
	return nil
}

// Encode encodes the identifier in transfer syntax ts (for an SCU).
func (k Keys) Encode(ts string) ([]byte, error) {
	syntax, ok := dicom.LookupTransferSyntax(ts)
	if !ok {
		return nil, fmt.Errorf("retrieve: unknown transfer syntax %s", ts)
	}
	type elem struct {
		tag dicom.Tag
		vr  dicom.VR
		val string
	}
	var els []elem
	add := func(t dicom.Tag, vr dicom.VR, v string) {
		if v != "" {
			els = append(els, elem{t, vr, v})
		}
	}
	// Non-ASCII values (a Patient ID, in practice) go out in UTF-8, and
	// the identifier says so: without (0008,0005) the peer would read them
	// in the default repertoire.
	for _, v := range []string{k.Level, k.PatientID} {
		if !isASCII(v) {
			add(dicom.TagSpecificCharacterSet, dicom.VRCS, "ISO_IR 192")
			break
		}
	}
	add(dicom.TagQueryRetrieveLevel, dicom.VRCS, k.Level)
	add(dicom.TagPatientID, dicom.VRLO, k.PatientID)
	add(dicom.TagStudyInstanceUID, dicom.VRUI, strings.Join(k.Studies, `\`))
	add(dicom.TagSeriesInstanceUID, dicom.VRUI, strings.Join(k.Series, `\`))
	add(dicom.TagSOPInstanceUID, dicom.VRUI, strings.Join(k.Instances, `\`))
	sort.Slice(els, func(i, j int) bool { return els[i].tag < els[j].tag })
	var b bytes.Buffer
	e := dicom.NewEncoder(&b, syntax)
	for _, el := range els {
		if err := e.WriteString(el.tag, el.vr, el.val); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// ParseKey sets one key from "Keyword=value" (as for -k on the command
// line): QueryRetrieveLevel, PatientID, StudyInstanceUID,
// SeriesInstanceUID, SOPInstanceUID, or their tags as gggg,eeee.
func (k *Keys) ParseKey(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("retrieve: key %q: want Keyword=value", s)
	}
	name = strings.TrimSpace(name)
	switch strings.ToUpper(name) {
	case "QUERYRETRIEVELEVEL", "0008,0052":
		k.Level = strings.ToUpper(strings.TrimSpace(val))
	case "PATIENTID", "0010,0020":
		k.PatientID = strings.TrimSpace(val)
	case "STUDYINSTANCEUID", "0020,000D":
		k.Studies = splitUIDs(val)
	case "SERIESINSTANCEUID", "0020,000E":
		k.Series = splitUIDs(val)
	case "SOPINSTANCEUID", "0008,0018":
		k.Instances = splitUIDs(val)
	default:
		return fmt.Errorf("retrieve: unsupported key %q (QueryRetrieveLevel, PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID)", name)
	}
	return nil
}

// encodeFailedList encodes Failed SOP Instance UID List (0008,0058) as a
// response identifier in ts; nil when there is nothing to report.
func encodeFailedList(uids []string, ts string) []byte {
	if len(uids) == 0 {
		return nil
	}
	syntax, ok := dicom.LookupTransferSyntax(ts)
	if !ok {
		syntax, _ = dicom.LookupTransferSyntax(dicom.ImplicitVRLittleEndian)
	}
	var b bytes.Buffer
	// A UI value holds at most 2^32-2 bytes; a retrieve never comes close.
	if err := dicom.NewEncoder(&b, syntax).WriteString(TagFailedSOPInstanceUIDList, dicom.VRUI, strings.Join(uids, `\`)); err != nil {
		return nil
	}
	return b.Bytes()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ExtendedNegotiationFlags are the C-MOVE and C-GET extended negotiation
// features supported (PS3.4 C.5.2.1 and C.5.3.1), one byte each:
// relational retrieval (yes: Resolve takes series or instance UIDs without
// the study above them), enhanced multi-frame image conversion (no).
var ExtendedNegotiationFlags = []byte{1, 0}

// ExtendedNegotiation answers a requestor's SOP Class Extended
// Negotiation sub-item for a MOVE or GET SOP class (nil for any other
// class, or when nothing was requested): requested flags are agreed only
// when supported, the answer as long as the request up to the flags
// defined.
func ExtendedNegotiation(sopClass string, requested []byte) []byte {
	switch sopClass {
	case PatientRootMove, StudyRootMove, PatientRootGet, StudyRootGet:
	default:
		return nil
	}
	n := min(len(requested), len(ExtendedNegotiationFlags))
	if n == 0 {
		return nil
	}
	out := make([]byte, n)
	for i := range out {
		if requested[i] == 1 && ExtendedNegotiationFlags[i] == 1 {
			out[i] = 1
		}
	}
	return out
}
