// Package kos builds Key Object Selection documents (PS3.3 A.35.4): the
// imaging manifests that IHE XDS-I.b and the French CI-SIS use to share a
// study (title 113030 "Manifest", with Retrieve AE Title, Retrieve
// Location UID and WADO-RS Retrieve URL per series) and the key-image
// notes a radiologist flags (title 113000 "Of Interest"). It owns the
// mapping from a Manifest (plain inputs: patient, study, request, series
// and instances) to the encoded DICOM object. It knows nothing of HTTP,
// routing or the storage internals (FromInstances only reads index
// records): its callers store and send what it returns.
package kos

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/relais-health/relais/dicom"
)

// SOPClassUID is the Key Object Selection Document Storage SOP class.
const SOPClassUID = dicom.KeyObjectSelectionDocumentStorage

// Code is a coded concept (Code Value, Coding Scheme Designator, Code
// Meaning).
type Code struct {
	Value, Scheme, Meaning string
}

// Document titles (CID 7010) and concepts used by the package.
var (
	// TitleManifest is the XDS-I.b manifest title (the default).
	TitleManifest = Code{"113030", "DCM", "Manifest"}
	// TitleOfInterest is the key-image note title.
	TitleOfInterest = Code{"113000", "DCM", "Of Interest"}
	// KeyObjectDescription names the optional TEXT item of TID 2010.
	KeyObjectDescription = Code{"113012", "DCM", "Key Object Description"}
)

// Issuer identifies an assigning authority (Issuer of Patient ID
// Qualifiers, Issuer of Accession Number, Order Placer/Filler
// Identifier): local namespace and/or universal entity id with its type
// ("ISO" for an OID, the default when UniversalEntityID is set).
type Issuer struct {
	LocalNamespace        string
	UniversalEntityID     string
	UniversalEntityIDType string
}

func (i Issuer) empty() bool { return i.LocalNamespace == "" && i.UniversalEntityID == "" }

// OIDINS is the INS-NIR OID (production).
const OIDINS = "1.2.250.1.213.1.4.8"

// OtherID is an item of the Other Patient IDs Sequence (0010,1002), e.g.
// the INS: ID = matricule, Issuer = "ASIP-SANTE-INS-NIR", Qualifiers =
// {UniversalEntityID: OIDINS}.
type OtherID struct {
	ID, Issuer string
	// Type is the Type of Patient ID (0010,0022), "TEXT" if empty.
	Type       string
	Qualifiers Issuer
}

// Patient holds the Patient module attributes.
type Patient struct {
	Name              string // PN, e.g. "DUPONT^JEAN"
	ID                string
	IssuerOfPatientID string
	// Qualifiers is the Issuer of Patient ID Qualifiers Sequence
	// (0010,0024) (Universal Entity ID and its type).
	Qualifiers Issuer
	BirthDate  string // DA, YYYYMMDD
	Sex        string // M, F, O or ""
	OtherIDs   []OtherID
}

// StudyRef holds the General Study attributes and the request the
// manifest answers (Referenced Request Sequence).
type StudyRef struct {
	StudyInstanceUID   string
	StudyID            string
	StudyDate          string // DA
	StudyTime          string // TM
	Description        string
	ReferringPhysician string // PN
	AccessionNumber    string
	AccessionIssuer    Issuer
	// PlacerOrderNumber and FillerOrderNumber are the imaging service
	// request numbers (0040,2016), (0040,2017), with their issuers
	// (Order Placer/Filler Identifier Sequences).
	PlacerOrderNumber             string
	PlacerOrderIssuer             Issuer
	FillerOrderNumber             string
	FillerOrderIssuer             Issuer
	RequestedProcedureID          string
	RequestedProcedureDescription string
}

// hasRequest reports whether the study carries request information (the
// Referenced Request Sequence is then written).
func (s StudyRef) hasRequest() bool {
	return s.AccessionNumber != "" || s.PlacerOrderNumber != "" || s.FillerOrderNumber != "" || s.RequestedProcedureID != ""
}

// InstanceRef references one SOP instance.
type InstanceRef struct {
	SOPClassUID, SOPInstanceUID string
}

// SeriesRef references the selected instances of one series and where to
// retrieve them.
type SeriesRef struct {
	SeriesInstanceUID string
	// StudyInstanceUID is the series' study; empty means the manifest's
	// study.
	StudyInstanceUID string
	// RetrieveAETitle (0008,0054), RetrieveLocationUID (0040,E011) and
	// RetrieveURL (0008,1190, the WADO-RS series URL) are written beside
	// the series in the evidence sequence when set.
	RetrieveAETitle     string
	RetrieveLocationUID string
	RetrieveURL         string
	Instances           []InstanceRef
}

// Manifest is everything a Key Object Selection document is built from.
type Manifest struct {
	Patient Patient
	Study   StudyRef
	Series  []SeriesRef
	// Title is the document title; TitleManifest if empty.
	Title Code
	// Description, when set, is written as the TEXT "Key Object
	// Description" (113012) content item.
	Description  string
	Institution  string
	Manufacturer string // "Relais" if empty
	// ContentDateTime dates the document; now if zero.
	ContentDateTime time.Time
	// SeriesInstanceUID and SOPInstanceUID of the document; generated
	// under 2.25 if empty.
	SeriesInstanceUID string
	SOPInstanceUID    string
	// SeriesNumber and InstanceNumber; 0 is written as 1.
	SeriesNumber   int
	InstanceNumber int
	// Frames, by SOP Instance UID, are the frame numbers (from 1) a
	// content item references in a multi-frame image (Referenced Frame
	// Number, 0008,1160): the frames a radiologist flagged. The evidence
	// sequence references the whole instance.
	Frames map[string][]int
}

// Tags used (besides those dicom names).
var (
	tagSpecificCharacterSet      = dicom.NewTag(0x0008, 0x0005)
	tagInstanceCreationDate      = dicom.NewTag(0x0008, 0x0012)
	tagInstanceCreationTime      = dicom.NewTag(0x0008, 0x0013)
	tagSOPClassUID               = dicom.NewTag(0x0008, 0x0016)
	tagSOPInstanceUID            = dicom.NewTag(0x0008, 0x0018)
	tagStudyDate                 = dicom.NewTag(0x0008, 0x0020)
	tagContentDate               = dicom.NewTag(0x0008, 0x0023)
	tagStudyTime                 = dicom.NewTag(0x0008, 0x0030)
	tagContentTime               = dicom.NewTag(0x0008, 0x0033)
	tagAccessionNumber           = dicom.NewTag(0x0008, 0x0050)
	tagIssuerOfAccessionNumber   = dicom.NewTag(0x0008, 0x0051)
	tagRetrieveAETitle           = dicom.NewTag(0x0008, 0x0054)
	tagModality                  = dicom.NewTag(0x0008, 0x0060)
	tagManufacturer              = dicom.NewTag(0x0008, 0x0070)
	tagInstitutionName           = dicom.NewTag(0x0008, 0x0080)
	tagReferringPhysicianName    = dicom.NewTag(0x0008, 0x0090)
	tagCodeValue                 = dicom.NewTag(0x0008, 0x0100)
	tagCodingSchemeDesignator    = dicom.NewTag(0x0008, 0x0102)
	tagCodeMeaning               = dicom.NewTag(0x0008, 0x0104)
	tagMappingResource           = dicom.NewTag(0x0008, 0x0105)
	tagMappingResourceUID        = dicom.NewTag(0x0008, 0x0118)
	tagRetrieveURL               = dicom.NewTag(0x0008, 0x1190)
	tagTimezoneOffsetFromUTC     = dicom.NewTag(0x0008, 0x0201)
	tagStudyDescription          = dicom.NewTag(0x0008, 0x1030)
	tagReferencedPPSSequence     = dicom.NewTag(0x0008, 0x1111)
	tagReferencedSeriesSequence  = dicom.NewTag(0x0008, 0x1115)
	tagReferencedStudySequence   = dicom.NewTag(0x0008, 0x1110)
	tagReferencedSOPClassUID     = dicom.NewTag(0x0008, 0x1150)
	tagReferencedSOPInstanceUID  = dicom.NewTag(0x0008, 0x1155)
	tagReferencedSOPSequence     = dicom.NewTag(0x0008, 0x1199)
	tagReferencedFrameNumber     = dicom.NewTag(0x0008, 0x1160)
	tagPatientName               = dicom.NewTag(0x0010, 0x0010)
	tagPatientID                 = dicom.NewTag(0x0010, 0x0020)
	tagIssuerOfPatientID         = dicom.NewTag(0x0010, 0x0021)
	tagTypeOfPatientID           = dicom.NewTag(0x0010, 0x0022)
	tagIssuerOfPatientIDQualSeq  = dicom.NewTag(0x0010, 0x0024)
	tagPatientBirthDate          = dicom.NewTag(0x0010, 0x0030)
	tagPatientSex                = dicom.NewTag(0x0010, 0x0040)
	tagOtherPatientIDsSequence   = dicom.NewTag(0x0010, 0x1002)
	tagStudyInstanceUID          = dicom.NewTag(0x0020, 0x000D)
	tagSeriesInstanceUID         = dicom.NewTag(0x0020, 0x000E)
	tagStudyID                   = dicom.NewTag(0x0020, 0x0010)
	tagSeriesNumber              = dicom.NewTag(0x0020, 0x0011)
	tagInstanceNumber            = dicom.NewTag(0x0020, 0x0013)
	tagRequestedProcedureDesc    = dicom.NewTag(0x0032, 0x1060)
	tagRequestedProcedureCodeSeq = dicom.NewTag(0x0032, 0x1064)
	tagOrderPlacerIdentifierSeq  = dicom.NewTag(0x0040, 0x0026)
	tagOrderFillerIdentifierSeq  = dicom.NewTag(0x0040, 0x0027)
	tagLocalNamespaceEntityID    = dicom.NewTag(0x0040, 0x0031)
	tagUniversalEntityID         = dicom.NewTag(0x0040, 0x0032)
	tagUniversalEntityIDType     = dicom.NewTag(0x0040, 0x0033)
	tagRequestedProcedureID      = dicom.NewTag(0x0040, 0x1001)
	tagPlacerOrderNumber         = dicom.NewTag(0x0040, 0x2016)
	tagFillerOrderNumber         = dicom.NewTag(0x0040, 0x2017)
	tagRelationshipType          = dicom.NewTag(0x0040, 0xA010)
	tagValueType                 = dicom.NewTag(0x0040, 0xA040)
	tagConceptNameCodeSequence   = dicom.NewTag(0x0040, 0xA043)
	tagContinuityOfContent       = dicom.NewTag(0x0040, 0xA050)
	tagTextValue                 = dicom.NewTag(0x0040, 0xA160)
	tagReferencedRequestSequence = dicom.NewTag(0x0040, 0xA370)
	tagCurrentRequestedProcEvSeq = dicom.NewTag(0x0040, 0xA375)
	tagContentTemplateSequence   = dicom.NewTag(0x0040, 0xA504)
	tagContentSequence           = dicom.NewTag(0x0040, 0xA730)
	tagTemplateIdentifier        = dicom.NewTag(0x0040, 0xDB00)
	tagRetrieveLocationUID       = dicom.NewTag(0x0040, 0xE011)
)

// NewUID returns a fresh UID under the 2.25 root (PS3.5 B.2): a random
// 122-bit UUID (version 4) as a decimal integer.
func NewUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("kos: crypto/rand: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}

// ErrInvalid reports a Manifest that cannot make a valid document.
var ErrInvalid = errors.New("kos: invalid manifest")

func validUID(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if s[i-1] == '.' {
				return false
			}
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
		if c == '0' && (i == 0 || s[i-1] == '.') && i+1 < len(s) && s[i+1] != '.' {
			return false // leading zero in a component
		}
	}
	return true
}

// check validates the manifest's identifiers and references.
func (m *Manifest) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
	}
	if !validUID(m.Study.StudyInstanceUID) {
		return bad("Study Instance UID %q", m.Study.StudyInstanceUID)
	}
	for _, u := range []string{m.SeriesInstanceUID, m.SOPInstanceUID} {
		if u != "" && !validUID(u) {
			return bad("document UID %q", u)
		}
	}
	if len(m.Series) == 0 {
		return bad("no series referenced")
	}
	for _, s := range m.Series {
		if !validUID(s.SeriesInstanceUID) {
			return bad("Series Instance UID %q", s.SeriesInstanceUID)
		}
		if s.StudyInstanceUID != "" && !validUID(s.StudyInstanceUID) {
			return bad("Study Instance UID %q of series %s", s.StudyInstanceUID, s.SeriesInstanceUID)
		}
		if s.RetrieveLocationUID != "" && !validUID(s.RetrieveLocationUID) {
			return bad("Retrieve Location UID %q", s.RetrieveLocationUID)
		}
		if len(s.Instances) == 0 {
			return bad("series %s references no instance", s.SeriesInstanceUID)
		}
		for _, in := range s.Instances {
			if !validUID(in.SOPClassUID) || !validUID(in.SOPInstanceUID) {
				return bad("instance %q (class %q) of series %s", in.SOPInstanceUID, in.SOPClassUID, s.SeriesInstanceUID)
			}
		}
	}
	classes := map[string]string{}
	for _, s := range m.Series {
		for _, in := range s.Instances {
			classes[in.SOPInstanceUID] = in.SOPClassUID
		}
	}
	for sop, fr := range m.Frames {
		if len(fr) == 0 {
			continue
		}
		cls, ok := classes[sop]
		if !ok {
			return bad("frames of %s, which the manifest does not reference", sop)
		}
		if !MultiFrame(cls) {
			return bad("frames of %s: SOP class %s is not multi-frame", sop, cls)
		}
		for _, f := range fr {
			if f < 1 {
				return bad("frame number %d of %s (frames count from 1)", f, sop)
			}
		}
	}
	if t := m.Title; t != (Code{}) && (t.Value == "" || t.Scheme == "" || t.Meaning == "") {
		return bad("title %+v incomplete", t)
	}
	return nil
}

// AssignUIDs generates the document's Series and SOP Instance UIDs that
// are empty, so the caller knows them before building (to store or index
// the document).
func (m *Manifest) AssignUIDs() {
	if m.SeriesInstanceUID == "" {
		m.SeriesInstanceUID = NewUID()
	}
	if m.SOPInstanceUID == "" {
		m.SOPInstanceUID = NewUID()
	}
}

// Build returns the manifest's data set (without file meta) in Explicit
// VR Little Endian, with Specific Character Set ISO_IR 192 (UTF-8). UIDs
// left empty are generated for this document only: call AssignUIDs first
// to know them.
func Build(m Manifest) ([]byte, error) {
	ds, _, err := build(m)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// BuildFile returns the manifest as a Part 10 file (Explicit VR Little
// Endian).
func BuildFile(m Manifest) ([]byte, error) {
	ds, sop, err := build(m)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := dicom.WriteFileMeta(&b, dicom.FileMeta{
		MediaStorageSOPClassUID:    SOPClassUID,
		MediaStorageSOPInstanceUID: sop,
		TransferSyntaxUID:          dicom.ExplicitVRLittleEndian,
	}); err != nil {
		return nil, err
	}
	b.Write(ds)
	return b.Bytes(), nil
}

func build(m Manifest) ([]byte, string, error) {
	if err := m.check(); err != nil {
		return nil, "", err
	}
	if m.Title == (Code{}) {
		m.Title = TitleManifest
	}
	if m.Manufacturer == "" {
		m.Manufacturer = "Relais"
	}
	if m.ContentDateTime.IsZero() {
		m.ContentDateTime = time.Now()
	}
	m.AssignUIDs()
	if m.SeriesNumber == 0 {
		m.SeriesNumber = 1
	}
	if m.InstanceNumber == 0 {
		m.InstanceNumber = 1
	}
	d := &dataset{}
	// SOP Common.
	d.str(tagSpecificCharacterSet, "CS", "ISO_IR 192")
	d.str(tagSOPClassUID, "UI", SOPClassUID)
	d.str(tagSOPInstanceUID, "UI", m.SOPInstanceUID)
	now := m.ContentDateTime
	d.str(tagInstanceCreationDate, "DA", now.Format("20060102"))
	d.str(tagInstanceCreationTime, "TM", now.Format("150405"))
	d.str(tagTimezoneOffsetFromUTC, "SH", now.Format("-0700"))
	patient(d, m.Patient)
	study(d, m.Study)
	// Key Object Document Series.
	d.str(tagModality, "CS", "KO")
	d.str(tagSeriesInstanceUID, "UI", m.SeriesInstanceUID)
	d.num(tagSeriesNumber, m.SeriesNumber)
	d.seq(tagReferencedPPSSequence)
	// General Equipment.
	d.str(tagManufacturer, "LO", m.Manufacturer)
	d.opt(tagInstitutionName, "LO", m.Institution)
	// Key Object Document.
	d.num(tagInstanceNumber, m.InstanceNumber)
	d.str(tagContentDate, "DA", now.Format("20060102"))
	d.str(tagContentTime, "TM", now.Format("150405"))
	if m.Study.hasRequest() {
		d.seq(tagReferencedRequestSequence, request(m.Study))
	}
	d.seq(tagCurrentRequestedProcEvSeq, evidence(m)...)
	// SR Document Content (TID 2010).
	d.str(tagValueType, "CS", "CONTAINER")
	d.seq(tagConceptNameCodeSequence, code(m.Title))
	d.str(tagContinuityOfContent, "CS", "SEPARATE")
	tpl := &dataset{}
	tpl.str(tagMappingResource, "CS", "DCMR")
	tpl.str(tagMappingResourceUID, "UI", "1.2.840.10008.8.1.1")
	tpl.str(tagTemplateIdentifier, "CS", "2010")
	d.seq(tagContentTemplateSequence, tpl)
	var content []*dataset
	if m.Description != "" {
		t := &dataset{}
		t.str(tagRelationshipType, "CS", "CONTAINS")
		t.str(tagValueType, "CS", "TEXT")
		t.seq(tagConceptNameCodeSequence, code(KeyObjectDescription))
		t.str(tagTextValue, "UT", m.Description)
		content = append(content, t)
	}
	for _, s := range m.Series {
		for _, in := range s.Instances {
			it := &dataset{}
			it.str(tagRelationshipType, "CS", "CONTAINS")
			it.str(tagValueType, "CS", ValueType(in.SOPClassUID))
			ref := sopRef(in)
			if fr := m.Frames[in.SOPInstanceUID]; len(fr) > 0 {
				ref.frames(tagReferencedFrameNumber, fr)
			}
			it.seq(tagReferencedSOPSequence, ref)
			content = append(content, it)
		}
	}
	d.seq(tagContentSequence, content...)
	b, err := d.encode()
	if err != nil {
		return nil, "", err
	}
	return b, m.SOPInstanceUID, nil
}

// multiFrame are the storage SOP classes (after 1.2.840.10008.5.1.4.1.1.)
// whose instances may hold several frames: only their references may
// name frames (Referenced Frame Number).
var multiFrame = map[string]bool{
	"2.1": true, "2.2": true, // Enhanced CT, Legacy Converted Enhanced CT
	"3.1": true, "6.2": true, "6.3": true, // US Multi-frame, Enhanced US Volume, Photoacoustic
	"4.1": true, "4.2": true, "4.3": true, "4.4": true, // Enhanced MR, MR Spectroscopy, Enhanced MR Color, Legacy Converted Enhanced MR
	"7.1": true, "7.2": true, "7.3": true, "7.4": true, // Multi-frame Secondary Capture
	"12.1": true, "12.1.1": true, "12.2": true, "12.2.1": true, // XA, Enhanced XA, XRF, Enhanced XRF
	"13.1.1": true, "13.1.2": true, "13.1.3": true, "13.1.4": true, "13.1.5": true, // X-Ray 3D, Breast Tomosynthesis, Breast Projection
	"14.1": true, "14.2": true, // IVOCT
	"20": true, "30": true, // NM, Parametric Map
	"66.4": true, "66.7": true, // Segmentation, Label Map Segmentation
	"77.1.1.1": true, "77.1.2.1": true, "77.1.4.1": true, "77.1.5.4": true, "77.1.5.7": true, "77.1.5.8": true, "77.1.6": true, // video, OCT, whole slide
	"128.1": true, "130": true, // Legacy Converted Enhanced PET, Enhanced PET
	"481.1": true, "481.2": true, // RT Image, RT Dose
}

// MultiFrame reports whether instances of a SOP class may hold several
// frames (a reference may then name frames).
func MultiFrame(sopClass string) bool {
	rest, ok := strings.CutPrefix(sopClass, "1.2.840.10008.5.1.4.1.1.")
	return ok && multiFrame[rest]
}

// ValueType returns the content item value type TID 2010 uses to
// reference an instance of a SOP class: WAVEFORM for waveforms, COMPOSITE
// for non-image objects (structured reports and key object documents,
// encapsulated documents, presentation states, raw data, registrations,
// RT plans and structure sets), IMAGE otherwise.
func ValueType(sopClass string) string {
	const storage = "1.2.840.10008.5.1.4.1.1."
	rest, ok := strings.CutPrefix(sopClass, storage)
	if !ok {
		return "IMAGE"
	}
	head, _, _ := strings.Cut(rest, ".")
	switch head {
	case "9":
		return "WAVEFORM"
	case "88", "104", "11", "66":
		if rest == "66.4" || rest == "66.7" { // segmentation, label map segmentation
			return "IMAGE"
		}
		return "COMPOSITE"
	case "481":
		switch rest {
		case "481.1", "481.2": // RT image, RT dose
			return "IMAGE"
		}
		return "COMPOSITE"
	}
	return "IMAGE"
}

func code(c Code) *dataset {
	d := &dataset{}
	d.str(tagCodeValue, "SH", c.Value)
	d.str(tagCodingSchemeDesignator, "SH", c.Scheme)
	d.str(tagCodeMeaning, "LO", c.Meaning)
	return d
}

func sopRef(in InstanceRef) *dataset {
	d := &dataset{}
	d.str(tagReferencedSOPClassUID, "UI", in.SOPClassUID)
	d.str(tagReferencedSOPInstanceUID, "UI", in.SOPInstanceUID)
	return d
}

// issuerItem encodes an issuer as a Universal Entity ID item (with the
// local namespace when withLocal).
func issuerItem(i Issuer, withLocal bool) *dataset {
	d := &dataset{}
	if withLocal {
		d.opt(tagLocalNamespaceEntityID, "UT", i.LocalNamespace)
	}
	if i.UniversalEntityID != "" {
		d.str(tagUniversalEntityID, "UT", i.UniversalEntityID)
		typ := i.UniversalEntityIDType
		if typ == "" {
			typ = "ISO"
		}
		d.str(tagUniversalEntityIDType, "CS", typ)
	}
	return d
}

func patient(d *dataset, p Patient) {
	d.str(tagPatientName, "PN", p.Name)
	d.str(tagPatientID, "LO", p.ID)
	d.opt(tagIssuerOfPatientID, "LO", p.IssuerOfPatientID)
	if p.Qualifiers.UniversalEntityID != "" {
		d.seq(tagIssuerOfPatientIDQualSeq, issuerItem(p.Qualifiers, false))
	}
	d.str(tagPatientBirthDate, "DA", p.BirthDate)
	d.str(tagPatientSex, "CS", p.Sex)
	if len(p.OtherIDs) > 0 {
		var items []*dataset
		for _, o := range p.OtherIDs {
			it := &dataset{}
			it.str(tagPatientID, "LO", o.ID)
			it.opt(tagIssuerOfPatientID, "LO", o.Issuer)
			typ := o.Type
			if typ == "" {
				typ = "TEXT"
			}
			it.str(tagTypeOfPatientID, "CS", typ)
			if o.Qualifiers.UniversalEntityID != "" {
				it.seq(tagIssuerOfPatientIDQualSeq, issuerItem(o.Qualifiers, false))
			}
			items = append(items, it)
		}
		d.seq(tagOtherPatientIDsSequence, items...)
	}
}

func study(d *dataset, s StudyRef) {
	d.str(tagStudyInstanceUID, "UI", s.StudyInstanceUID)
	d.str(tagStudyDate, "DA", s.StudyDate)
	d.str(tagStudyTime, "TM", s.StudyTime)
	d.str(tagReferringPhysicianName, "PN", s.ReferringPhysician)
	d.str(tagStudyID, "SH", s.StudyID)
	d.str(tagAccessionNumber, "SH", s.AccessionNumber)
	if !s.AccessionIssuer.empty() {
		d.seq(tagIssuerOfAccessionNumber, issuerItem(s.AccessionIssuer, true))
	}
	d.opt(tagStudyDescription, "LO", s.Description)
}

// request is the Referenced Request Sequence item (PS3.3 Table C.17-3 /
// C.17.6.2).
func request(s StudyRef) *dataset {
	d := &dataset{}
	d.str(tagStudyInstanceUID, "UI", s.StudyInstanceUID)
	d.seq(tagReferencedStudySequence)
	d.str(tagAccessionNumber, "SH", s.AccessionNumber)
	if !s.AccessionIssuer.empty() {
		d.seq(tagIssuerOfAccessionNumber, issuerItem(s.AccessionIssuer, true))
	}
	d.str(tagPlacerOrderNumber, "LO", s.PlacerOrderNumber)
	if !s.PlacerOrderIssuer.empty() {
		d.seq(tagOrderPlacerIdentifierSeq, issuerItem(s.PlacerOrderIssuer, true))
	}
	d.str(tagFillerOrderNumber, "LO", s.FillerOrderNumber)
	if !s.FillerOrderIssuer.empty() {
		d.seq(tagOrderFillerIdentifierSeq, issuerItem(s.FillerOrderIssuer, true))
	}
	d.str(tagRequestedProcedureID, "SH", s.RequestedProcedureID)
	d.str(tagRequestedProcedureDesc, "LO", s.RequestedProcedureDescription)
	d.seq(tagRequestedProcedureCodeSeq)
	return d
}

// evidence is the Current Requested Procedure Evidence Sequence: one item
// per study (in order of first appearance), one Referenced Series item per
// series.
func evidence(m Manifest) []*dataset {
	var studies []string
	series := map[string][]*dataset{}
	for _, s := range m.Series {
		st := s.StudyInstanceUID
		if st == "" {
			st = m.Study.StudyInstanceUID
		}
		if _, ok := series[st]; !ok {
			studies = append(studies, st)
		}
		it := &dataset{}
		it.opt(tagRetrieveAETitle, "AE", s.RetrieveAETitle)
		it.opt(tagRetrieveURL, "UR", s.RetrieveURL)
		it.str(tagSeriesInstanceUID, "UI", s.SeriesInstanceUID)
		it.opt(tagRetrieveLocationUID, "UI", s.RetrieveLocationUID)
		var refs []*dataset
		for _, in := range s.Instances {
			refs = append(refs, sopRef(in))
		}
		it.seq(tagReferencedSOPSequence, refs...)
		series[st] = append(series[st], it)
	}
	var items []*dataset
	for _, st := range studies {
		it := &dataset{}
		it.str(tagStudyInstanceUID, "UI", st)
		it.seq(tagReferencedSeriesSequence, series[st]...)
		items = append(items, it)
	}
	return items
}
