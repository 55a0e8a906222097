package kos

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/relais-health/relais/storage"
)

// Retrieve says where the referenced instances can be retrieved: the AE
// title of the C-MOVE/C-GET SCP, the Retrieve Location UID (the XDS-I.b
// imaging document source's repository id) and the DICOMweb base URL the
// WADO-RS series URLs are built under ({WADOBase}/studies/{study}/series/
// {series}).
type Retrieve struct {
	AETitle     string
	LocationUID string
	WADOBase    string
}

// SeriesURL returns the WADO-RS URL of a series under r.WADOBase ("" when
// WADOBase is empty).
func (r Retrieve) SeriesURL(study, series string) string {
	if r.WADOBase == "" {
		return ""
	}
	return strings.TrimRight(r.WADOBase, "/") + "/studies/" + url.PathEscape(study) + "/series/" + url.PathEscape(series)
}

// Index attribute keys (8 hex digit tags, see storage.Instance.Attrs).
const (
	attrPatientName        = "00100010"
	attrPatientID          = "00100020"
	attrIssuerOfPatientID  = "00100021"
	attrTypeOfPatientID    = "00100022"
	attrIssuerQualifiers   = "00100024"
	attrBirthDate          = "00100030"
	attrSex                = "00100040"
	attrOtherPatientIDsSeq = "00101002"
	attrStudyDate          = "00080020"
	attrStudyTime          = "00080030"
	attrAccessionNumber    = "00080050"
	attrAccessionIssuer    = "00080051"
	attrReferringPhysician = "00080090"
	attrStudyDescription   = "00081030"
	attrStudyID            = "00200010"
	attrSeriesNumber       = "00200011"
	attrInstanceNumber     = "00200013"
	attrRequestedProcDesc  = "00321060"
	attrRequestAttrsSeq    = "00400275"
	attrRequestedProcID    = "00401001"
	attrLocalNamespace     = "00400031"
	attrUniversalEntityID  = "00400032"
	attrUniversalEntityTyp = "00400033"
)

// FromInstances maps index records of one study to a Manifest: patient
// and study attributes come from the first instance's Attrs (kept
// sequences decoded: Issuer of Patient ID Qualifiers, Other Patient IDs,
// Issuer of Accession Number, Request Attributes for the requested
// procedure), series are ordered by Series Number then UID and instances
// by Instance Number then UID, each series carrying r's retrieve
// information. Instances of other studies than the first one's, and Key
// Object Selection documents (earlier manifests and notes), are left out.
// Title, document UIDs and dates are left for the caller (Build fills the
// defaults). The placer and filler order numbers are not in the index:
// the caller sets them from the order when it has one.
func FromInstances(instances []*storage.Instance, r Retrieve) Manifest {
	var m Manifest
	if len(instances) == 0 {
		return m
	}
	first := instances[0]
	a := first.Attrs
	m.Patient = Patient{
		Name:              a[attrPatientName],
		ID:                or(a[attrPatientID], first.PatientID),
		IssuerOfPatientID: a[attrIssuerOfPatientID],
		Qualifiers:        firstIssuer(a[attrIssuerQualifiers]),
		BirthDate:         a[attrBirthDate],
		Sex:               a[attrSex],
	}
	if items, err := storage.DecodeItems(a[attrOtherPatientIDsSeq]); err == nil {
		for _, it := range items {
			if it[attrPatientID] == "" {
				continue
			}
			m.Patient.OtherIDs = append(m.Patient.OtherIDs, OtherID{
				ID: it[attrPatientID], Issuer: it[attrIssuerOfPatientID], Type: it[attrTypeOfPatientID],
				Qualifiers: firstIssuer(it[attrIssuerQualifiers]),
			})
		}
	}
	m.Study = StudyRef{
		StudyInstanceUID:              first.StudyInstanceUID,
		StudyID:                       a[attrStudyID],
		StudyDate:                     a[attrStudyDate],
		StudyTime:                     a[attrStudyTime],
		Description:                   a[attrStudyDescription],
		ReferringPhysician:            a[attrReferringPhysician],
		AccessionNumber:               a[attrAccessionNumber],
		AccessionIssuer:               firstIssuer(a[attrAccessionIssuer]),
		RequestedProcedureDescription: a[attrRequestedProcDesc],
	}
	if items, err := storage.DecodeItems(a[attrRequestAttrsSeq]); err == nil {
		// The request matching the study's accession (or the first).
		for _, it := range items {
			if acc := it[attrAccessionNumber]; acc != "" && acc != m.Study.AccessionNumber {
				continue
			}
			m.Study.RequestedProcedureID = it[attrRequestedProcID]
			if m.Study.RequestedProcedureDescription == "" {
				m.Study.RequestedProcedureDescription = it[attrRequestedProcDesc]
			}
			break
		}
	}
	type seriesAcc struct {
		ref    SeriesRef
		number int
		insts  []*storage.Instance
	}
	bySeries := map[string]*seriesAcc{}
	var order []*seriesAcc
	for _, in := range instances {
		if in == nil || in.StudyInstanceUID != first.StudyInstanceUID || in.SOPClassUID == SOPClassUID {
			continue
		}
		s := bySeries[in.SeriesInstanceUID]
		if s == nil {
			s = &seriesAcc{number: atoi(in.Attrs[attrSeriesNumber]), ref: SeriesRef{
				SeriesInstanceUID:   in.SeriesInstanceUID,
				RetrieveAETitle:     r.AETitle,
				RetrieveLocationUID: r.LocationUID,
				RetrieveURL:         r.SeriesURL(in.StudyInstanceUID, in.SeriesInstanceUID),
			}}
			bySeries[in.SeriesInstanceUID] = s
			order = append(order, s)
		}
		s.insts = append(s.insts, in)
	}
	sort.SliceStable(order, func(i, j int) bool {
		if order[i].number != order[j].number {
			return order[i].number < order[j].number
		}
		return order[i].ref.SeriesInstanceUID < order[j].ref.SeriesInstanceUID
	})
	for _, s := range order {
		sort.SliceStable(s.insts, func(i, j int) bool {
			ni, nj := atoi(s.insts[i].Attrs[attrInstanceNumber]), atoi(s.insts[j].Attrs[attrInstanceNumber])
			if ni != nj {
				return ni < nj
			}
			return s.insts[i].SOPInstanceUID < s.insts[j].SOPInstanceUID
		})
		for _, in := range s.insts {
			s.ref.Instances = append(s.ref.Instances, InstanceRef{SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID})
		}
		m.Series = append(m.Series, s.ref)
	}
	return m
}

// firstIssuer decodes the first item of a kept issuer sequence.
func firstIssuer(v string) Issuer {
	items, err := storage.DecodeItems(v)
	if err != nil || len(items) == 0 {
		return Issuer{}
	}
	it := items[0]
	return Issuer{LocalNamespace: it[attrLocalNamespace], UniversalEntityID: it[attrUniversalEntityID], UniversalEntityIDType: it[attrUniversalEntityTyp]}
}

func atoi(s string) int {
	if i := strings.IndexByte(s, '\\'); i >= 0 {
		s = s[:i]
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
