// Package query is the query engine of Relais: it answers patient, study,
// series and instance queries (DICOM C-FIND now, QIDO-RS next) from the
// storage index. It knows nothing of DIMSE: its input is a parsed Query,
// its output result Rows (UTF-8 values by tag), which the protocol layer
// encodes (EncodeRow for DICOM identifiers).
//
// # Matching (PS3.4 C.2.2.2)
//
// Single value, universal (empty key), wildcard ('*' and '?'), range on
// DA, TM and DT (open ends "-D" and "D-"; when a date key and its time key,
// e.g. StudyDate and StudyTime, both carry values and the date is a range,
// they are matched as one date-time range, C.2.2.2.5.1), list of UIDs
// (backslash-separated) and, for CS keys, a backslash-separated list of
// alternatives. Matching is case-sensitive except for PN, which Relais
// matches case-insensitively (PS3.4 leaves it to the implementation, and
// radiology desks type names in every case); a PN key matches the whole
// stored name or any of its component groups (alphabetic, ideographic,
// phonetic), so "山田*" finds "Yamada^Tarou=山田^太郎". A key with a value
// never matches an attribute that has none.
//
// Sequence matching (C.2.2.2.6) covers the sequences the index keeps
// (storage.SequenceItemTags: Other Patient IDs, Issuer of Patient ID
// Qualifiers, Issuer of Accession Number, Procedure Code, Request
// Attributes, Referenced Study), stored item by item: a sequence key
// matches when at least one stored item matches all the keys of its item
// (so {PatientID=X, IssuerOfPatientID=Y} never matches X from one item and
// Y from another), item keys being matched like top-level keys, nested
// kept sequences recursively. The answer's sequence holds one item per
// matching stored item with the requested item keys, or every kept
// attribute of every item when the key has no item keys. Other sequence
// keys are returned empty. A matching key the engine cannot use, on an
// attribute or a sequence item attribute the index does not keep, is left
// out of the matching and the answer says so (Query.Unsupported, status
// FF01).
//
// # Hierarchical and relational queries
//
// Unique keys above the query level (C.4.1.2.1) restrict the search when
// present; when absent the query is answered relationally (all entities
// above are searched), which covers SCUs that negotiated relational queries
// and the many that send hierarchical queries without them.
//
// # Speed
//
// Study-level candidates come from the index's secondary indices
// (storage.Index.StudiesBy): the planner picks the most selective indexed
// key of the query (Study Instance UID list, Patient ID, Accession Number,
// Patient Name prefix, Study Date, Modalities in Study) and scans all
// studies only when none is usable. Every matcher is checked on every
// candidate, so the index only has to return a superset.
package query

import (
	"errors"
	"fmt"
	"strings"

	"github.com/relais-health/relais/dicom"
)

// SOP classes of the FIND models.
const (
	PatientRootFind = "1.2.840.10008.5.1.4.1.2.1.1"
	StudyRootFind   = "1.2.840.10008.5.1.4.1.2.2.1"
)

// Model is a query/retrieve information model.
type Model string

// The information models.
const (
	PatientRoot Model = "patient"
	StudyRoot   Model = "study"
)

// ModelOf returns the model of a FIND SOP class.
func ModelOf(sopClass string) (Model, bool) {
	switch sopClass {
	case PatientRootFind:
		return PatientRoot, true
	case StudyRootFind:
		return StudyRoot, true
	}
	return "", false
}

// FindSOPClass returns the FIND SOP class of a model.
func (m Model) FindSOPClass() string {
	if m == PatientRoot {
		return PatientRootFind
	}
	return StudyRootFind
}

// Level is a Query/Retrieve Level (0008,0052).
type Level string

// The query levels.
const (
	Patient Level = "PATIENT"
	Study   Level = "STUDY"
	Series  Level = "SERIES"
	Image   Level = "IMAGE"
)

func (l Level) rank() int {
	switch l {
	case Patient:
		return 0
	case Study:
		return 1
	case Series:
		return 2
	case Image:
		return 3
	}
	return -1
}

// ErrBadQuery is wrapped by errors about an identifier that does not fit
// the model (unknown or missing level, level not in the model).
var ErrBadQuery = errors.New("query: identifier does not match the model")

// Key is one key of a query: a matching key when Value is not empty (or a
// sequence key with items), a return key otherwise.
type Key struct {
	Tag dicom.Tag
	VR  dicom.VR
	// Value is UTF-8 (decoded from the identifier's character set), with
	// multiple values joined by '\'.
	Value string
	// Items are the keys of the first item of a sequence key (the item
	// keys of C.2.2.2.6).
	Items []Key
}

// Query is a parsed query.
type Query struct {
	Model Model
	Level Level
	// Keys are the identifier's keys in tag order, without Specific
	// Character Set and Query/Retrieve Level.
	Keys []Key
}

// Tags of attributes the engine computes or that drive the query.
var (
	tagPatientRelatedStudies   = dicom.NewTag(0x0020, 0x1200)
	tagPatientRelatedSeries    = dicom.NewTag(0x0020, 0x1202)
	tagPatientRelatedInstances = dicom.NewTag(0x0020, 0x1204)
	tagSOPClassesInStudy       = dicom.NewTag(0x0008, 0x0062)
)

// Parse builds a Query from a C-FIND identifier scanned with all elements
// (dicom.WantAll): text values are decoded to UTF-8 with the identifier's
// Specific Character Set.
func Parse(model Model, ds *dicom.Dataset) (*Query, error) {
	if model != PatientRoot && model != StudyRoot {
		return nil, fmt.Errorf("%w: unknown model %q", ErrBadQuery, model)
	}
	lv, err := ds.String(dicom.TagQueryRetrieveLevel)
	if err != nil {
		return nil, fmt.Errorf("query: level: %w", err)
	}
	q := &Query{Model: model, Level: Level(strings.ToUpper(strings.TrimSpace(lv)))}
	if q.Level.rank() < 0 {
		return nil, fmt.Errorf("%w: Query/Retrieve Level %q", ErrBadQuery, lv)
	}
	if model == StudyRoot && q.Level == Patient {
		return nil, fmt.Errorf("%w: level PATIENT in the Study Root model", ErrBadQuery)
	}
	keys, err := parseKeys(ds)
	if err != nil {
		return nil, err
	}
	q.Keys = keys
	return q, nil
}

func parseKeys(ds *dicom.Dataset) ([]Key, error) {
	var keys []Key
	for _, t := range sortedTags(ds) {
		if t == dicom.TagSpecificCharacterSet || t == dicom.TagQueryRetrieveLevel || t.Group() == 0x0002 || t.Element() == 0 {
			continue
		}
		e := ds.Elements[t]
		k := Key{Tag: t, VR: e.VR}
		if k.VR == "" || k.VR == "UN" {
			if vr := dicom.LookupVR(t); vr != "" {
				k.VR = vr
			}
		}
		if e.VR == dicom.VRSQ || e.Items != nil {
			k.VR = dicom.VRSQ
			if len(e.Items) > 0 {
				sub, err := parseKeys(e.Items[0])
				if err != nil {
					return nil, err
				}
				k.Items = sub
			}
		} else {
			v, err := ds.String(t)
			if err != nil {
				return nil, fmt.Errorf("query: key %s: %w", t, err)
			}
			k.Value = v
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func sortedTags(ds *dicom.Dataset) []dicom.Tag {
	tags := make([]dicom.Tag, 0, len(ds.Elements))
	for t := range ds.Elements {
		tags = append(tags, t)
	}
	for i := 1; i < len(tags); i++ { // insertion sort: identifiers are small
		for j := i; j > 0 && tags[j] < tags[j-1]; j-- {
			tags[j], tags[j-1] = tags[j-1], tags[j]
		}
	}
	return tags
}

// Get returns the key with tag t.
func (q *Query) Get(t dicom.Tag) (Key, bool) {
	for _, k := range q.Keys {
		if k.Tag == t {
			return k, true
		}
	}
	return Key{}, false
}

// value returns the matching value of key t ("" if absent or universal).
func (q *Query) value(t dicom.Tag) string {
	k, _ := q.Get(t)
	if k.Value == "*" {
		return ""
	}
	return k.Value
}

// Summary describes the query's keys for the audit journal: the tags of
// the matching keys (a sequence key is one when an item key has a value)
// and of the return keys, never their values.
func (q *Query) Summary() string {
	var m, r []string
	for _, k := range q.Keys {
		name := dicom.Keyword(k.Tag)
		if name == "" {
			name = k.Tag.String()
		}
		if k.Value != "" || hasValues(k.Items) {
			m = append(m, name)
		} else {
			r = append(r, name)
		}
	}
	return fmt.Sprintf("match=[%s] return=[%s]", strings.Join(m, ","), strings.Join(r, ","))
}

// ExtendedNegotiationFlags are the C-FIND extended negotiation features
// the engine supports (PS3.4 C.5.1.1, Table C.5-1 and following), one
// byte each in the order of the service-class-application-information:
// relational queries (yes: keys above the level are optional, see
// "Hierarchical and relational queries"), combined date and time range
// matching (yes, C.2.2.2.5.1), fuzzy semantic matching of person names
// (no: PN is matched case-insensitively, nothing fuzzier), timezone query
// adjustment (no).
var ExtendedNegotiationFlags = []byte{1, 1, 0, 0}

// ExtendedNegotiation answers a requestor's SOP Class Extended
// Negotiation sub-item for a FIND SOP class (nil for any other class, or
// when nothing was requested): each requested flag is agreed (1) when the
// engine supports it, refused (0) otherwise; the answer is as long as the
// request, up to the flags defined.
func ExtendedNegotiation(sopClass string, requested []byte) []byte {
	if _, ok := ModelOf(sopClass); !ok {
		return nil
	}
	return agreeFlags(requested, ExtendedNegotiationFlags)
}

// agreeFlags returns the agreed extended negotiation flags: for each
// requested byte (up to len(supported)), 1 when it and the supported byte
// are both 1, else 0; nil when requested is empty.
func agreeFlags(requested, supported []byte) []byte {
	n := min(len(requested), len(supported))
	if n == 0 {
		return nil
	}
	out := make([]byte, n)
	for i := range out {
		if requested[i] == 1 && supported[i] == 1 {
			out[i] = 1
		}
	}
	return out
}
