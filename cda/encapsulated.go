package cda

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/relais-health/relais/dicom"
)

// MIMETypeCDA is the MIME Type of Encapsulated Document (0042,0012) of an
// Encapsulated CDA instance (PS3.3 C.24.2.1).
const MIMETypeCDA = "text/XML"

// EncapsulateOptions are the values of an Encapsulated CDA instance that the
// report does not hold.
type EncapsulateOptions struct {
	// SeriesInstanceUID and SOPInstanceUID are generated under the 2.25
	// arc (PS3.5 B.2) when empty.
	SeriesInstanceUID, SOPInstanceUID string
	// SeriesNumber and InstanceNumber default to 1 when zero or negative.
	SeriesNumber, InstanceNumber int
	// Manufacturer (General Equipment) defaults to "Relais";
	// InstitutionName is written only when set.
	Manufacturer, InstitutionName string
	// Now is the Instance Creation Date/Time; default time.Now().
	Now time.Time
}

// Data element tags the instance uses that package dicom does not name.
const (
	tSpecificCharacterSet      dicom.Tag = 0x00080005
	tInstanceCreationDate      dicom.Tag = 0x00080012
	tInstanceCreationTime      dicom.Tag = 0x00080013
	tSOPClassUID               dicom.Tag = 0x00080016
	tSOPInstanceUID            dicom.Tag = 0x00080018
	tStudyDate                 dicom.Tag = 0x00080020
	tContentDate               dicom.Tag = 0x00080023
	tAcquisitionDateTime       dicom.Tag = 0x0008002A
	tStudyTime                 dicom.Tag = 0x00080030
	tContentTime               dicom.Tag = 0x00080033
	tAccessionNumber           dicom.Tag = 0x00080050
	tModality                  dicom.Tag = 0x00080060
	tConversionType            dicom.Tag = 0x00080064
	tManufacturer              dicom.Tag = 0x00080070
	tInstitutionName           dicom.Tag = 0x00080080
	tReferringPhysicianName    dicom.Tag = 0x00080090
	tCodeValue                 dicom.Tag = 0x00080100
	tCodingSchemeDesignator    dicom.Tag = 0x00080102
	tCodeMeaning               dicom.Tag = 0x00080104
	tTimezoneOffsetFromUTC     dicom.Tag = 0x00080201
	tPatientName               dicom.Tag = 0x00100010
	tPatientID                 dicom.Tag = 0x00100020
	tIssuerOfPatientID         dicom.Tag = 0x00100021
	tIssuerQualifiersSequence  dicom.Tag = 0x00100024
	tPatientBirthDate          dicom.Tag = 0x00100030
	tPatientSex                dicom.Tag = 0x00100040
	tStudyInstanceUID          dicom.Tag = 0x0020000D
	tSeriesInstanceUID         dicom.Tag = 0x0020000E
	tStudyID                   dicom.Tag = 0x00200010
	tSeriesNumber              dicom.Tag = 0x00200011
	tInstanceNumber            dicom.Tag = 0x00200013
	tBurnedInAnnotation        dicom.Tag = 0x00280301
	tUniversalEntityID         dicom.Tag = 0x00400032
	tUniversalEntityIDType     dicom.Tag = 0x00400033
	tConceptNameCodeSequence   dicom.Tag = 0x0040A043
	tHL7InstanceIdentifier     dicom.Tag = 0x0040E001
	tDocumentTitle             dicom.Tag = 0x00420010
	tEncapsulatedDocument      dicom.Tag = 0x00420011
	tMIMETypeOfEncapsulatedDoc dicom.Tag = 0x00420012
	tEncapsulatedDocumentLen   dicom.Tag = 0x00420015
)

// EncapsulatedCDA builds a DICOM Encapsulated CDA Storage instance (SOP
// Class 1.2.840.10008.5.1.4.1.1.104.2, PS3.3 A.45.2) holding the CDA
// document xml (as returned by Level3), in the report's study (a new series
// of modality DOC). It returns the data set in Explicit VR Little Endian,
// the same data set as a Part 10 file (with its file meta information), and
// the SOP Instance UID.
//
// The patient is identified by the INS when Patient.UsesINS (Patient ID =
// the matricule, Issuer of Patient ID "ASIP-SANTE-INS-…" and the INS OID as
// Universal Entity ID of type ISO), otherwise by the local id (with
// LocalIDRoot as Universal Entity ID when set). Patient's Name is
// BirthName^first of FirstNames. The document is padded to even length with
// a trailing space; Encapsulated Document Length holds its unpadded length.
// Dates and times are written in the zone of Report.Effective, declared by
// Timezone Offset From UTC (0008,0201): Content Date/Time and Acquisition
// DateTime are Report.Effective, Study Date/Time Study.Start, Instance
// Creation Date/Time opt.Now. Study ID is the accession number when it fits
// (16 characters), else empty. The report is validated first and Validate's
// error returned.
func EncapsulatedCDA(r *Report, xml []byte, opt EncapsulateOptions) (dataset []byte, file []byte, sopInstanceUID string, err error) {
	if err := r.Validate(); err != nil {
		return nil, nil, "", err
	}
	if len(xml) == 0 {
		return nil, nil, "", errors.New("cda: encapsulate: empty document")
	}
	if uint64(len(xml)) >= 0xFFFFFFFE {
		return nil, nil, "", errors.New("cda: encapsulate: document too large")
	}
	if opt.SeriesInstanceUID == "" {
		if opt.SeriesInstanceUID, err = newUID(); err != nil {
			return nil, nil, "", err
		}
	}
	if opt.SOPInstanceUID == "" {
		if opt.SOPInstanceUID, err = newUID(); err != nil {
			return nil, nil, "", err
		}
	}
	for _, u := range []string{opt.SeriesInstanceUID, opt.SOPInstanceUID, r.Study.StudyInstanceUID} {
		if !validUID(u) {
			return nil, nil, "", fmt.Errorf("cda: encapsulate: invalid UID %q", u)
		}
	}
	if opt.SeriesNumber <= 0 {
		opt.SeriesNumber = 1
	}
	if opt.InstanceNumber <= 0 {
		opt.InstanceNumber = 1
	}
	if opt.Manufacturer == "" {
		opt.Manufacturer = "Relais"
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	// Every date and time of the instance is in the zone of the report's
	// effective time, which Timezone Offset From UTC declares.
	loc := r.Effective.Location()
	now, effective, studyStart := opt.Now.In(loc), r.Effective, r.Study.Start.In(loc)

	var b bytes.Buffer
	w := elemWriter{e: dicom.NewEncoder(&b, dicom.TransferSyntax{ExplicitVR: true})}
	p := &r.Patient

	// SOP Common, General Study, General Equipment, Encapsulated Document…
	// in ascending tag order.
	w.str(tSpecificCharacterSet, dicom.VRCS, "ISO_IR 192")
	w.str(tInstanceCreationDate, dicom.VRDA, da(now))
	w.str(tInstanceCreationTime, dicom.VRTM, tm(now))
	w.str(tSOPClassUID, dicom.VRUI, dicom.EncapsulatedCDAStorage)
	w.str(tSOPInstanceUID, dicom.VRUI, opt.SOPInstanceUID)
	w.str(tStudyDate, dicom.VRDA, da(studyStart))
	w.str(tContentDate, dicom.VRDA, da(effective))
	w.str(tAcquisitionDateTime, dicom.VRDT, effective.Format("20060102150405-0700"))
	w.str(tStudyTime, dicom.VRTM, tm(studyStart))
	w.str(tContentTime, dicom.VRTM, tm(effective))
	w.str(tAccessionNumber, dicom.VRSH, r.Order.AccessionNumber)
	w.str(tModality, dicom.VRCS, "DOC")
	w.str(tConversionType, dicom.VRCS, "WSD")
	w.str(tManufacturer, dicom.VRLO, opt.Manufacturer)
	if opt.InstitutionName != "" {
		w.str(tInstitutionName, dicom.VRLO, opt.InstitutionName)
	}
	w.str(tReferringPhysicianName, dicom.VRPN, "")
	w.str(tTimezoneOffsetFromUTC, dicom.VRSH, effective.Format("-0700"))

	// Patient.
	w.str(tPatientName, dicom.VRPN, patientName(p))
	id, issuer, oid := p.LocalID, "", p.LocalIDRoot
	if p.UsesINS() {
		id, issuer, oid = p.INS, insIssuer(p.insOID()), p.insOID()
	}
	w.str(tPatientID, dicom.VRLO, id)
	if issuer != "" {
		w.str(tIssuerOfPatientID, dicom.VRLO, issuer)
	}
	if oid != "" {
		var it bytes.Buffer
		iw := elemWriter{e: dicom.NewEncoder(&it, dicom.TransferSyntax{ExplicitVR: true})}
		iw.str(tUniversalEntityID, dicom.VRUT, oid)
		iw.str(tUniversalEntityIDType, dicom.VRCS, "ISO")
		if iw.err != nil {
			return nil, nil, "", iw.err
		}
		w.seq(tIssuerQualifiersSequence, it.Bytes())
	}
	w.str(tPatientBirthDate, dicom.VRDA, da(p.BirthDate))
	w.str(tPatientSex, dicom.VRCS, sexCS(p.Sex))

	// General Study, Encapsulated Document Series, Encapsulated Document.
	w.str(tStudyInstanceUID, dicom.VRUI, r.Study.StudyInstanceUID)
	w.str(tSeriesInstanceUID, dicom.VRUI, opt.SeriesInstanceUID)
	w.str(tStudyID, dicom.VRSH, studyID(r))
	w.str(tSeriesNumber, dicom.VRIS, strconv.Itoa(opt.SeriesNumber))
	w.str(tInstanceNumber, dicom.VRIS, strconv.Itoa(opt.InstanceNumber))
	w.str(tBurnedInAnnotation, dicom.VRCS, "NO")
	{
		var it bytes.Buffer
		iw := elemWriter{e: dicom.NewEncoder(&it, dicom.TransferSyntax{ExplicitVR: true})}
		iw.str(tCodeValue, dicom.VRSH, DocumentCode)
		iw.str(tCodingSchemeDesignator, dicom.VRSH, "LN")
		iw.str(tCodeMeaning, dicom.VRLO, "Diagnostic imaging study")
		if iw.err != nil {
			return nil, nil, "", iw.err
		}
		w.seq(tConceptNameCodeSequence, it.Bytes())
	}
	w.str(tHL7InstanceIdentifier, dicom.VRST, r.ID)
	w.str(tDocumentTitle, dicom.VRST, r.title())
	doc := xml
	if len(doc)%2 == 1 {
		doc = append(append(make([]byte, 0, len(xml)+1), xml...), ' ')
	}
	if w.err == nil {
		w.err = w.e.WriteElement(tEncapsulatedDocument, dicom.VROB, doc)
	}
	w.str(tMIMETypeOfEncapsulatedDoc, dicom.VRLO, MIMETypeCDA)
	if w.err == nil {
		w.err = w.e.WriteUints(tEncapsulatedDocumentLen, dicom.VRUL, uint64(len(xml)))
	}
	if w.err != nil {
		return nil, nil, "", fmt.Errorf("cda: encapsulate: %w", w.err)
	}
	dataset = b.Bytes()

	var f bytes.Buffer
	if _, err := dicom.WriteFileMeta(&f, dicom.FileMeta{
		MediaStorageSOPClassUID:    dicom.EncapsulatedCDAStorage,
		MediaStorageSOPInstanceUID: opt.SOPInstanceUID,
		TransferSyntaxUID:          dicom.ExplicitVRLittleEndian,
	}); err != nil {
		return nil, nil, "", fmt.Errorf("cda: encapsulate: %w", err)
	}
	f.Write(dataset)
	return dataset, f.Bytes(), opt.SOPInstanceUID, nil
}

// elemWriter keeps the first error of a run of writes.
type elemWriter struct {
	e   *dicom.Encoder
	err error
}

func (w *elemWriter) str(t dicom.Tag, vr dicom.VR, s string) {
	if w.err == nil {
		w.err = w.e.WriteString(t, vr, s)
	}
}

// seq writes a sequence of defined length with one item.
func (w *elemWriter) seq(t dicom.Tag, item []byte) {
	if w.err == nil {
		w.err = w.e.WriteSequence(t, [][]byte{item}, false)
	}
}

func da(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("20060102")
}

func tm(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("150405")
}

// patientName is the DICOM PN of the patient: birth name ^ first given name.
func patientName(p *Patient) string {
	family := p.BirthName
	if family == "" {
		family = p.UsedName
	}
	given, _, _ := strings.Cut(strings.TrimSpace(p.FirstNames), " ")
	name := pnEscape(family)
	if given != "" {
		name += "^" + pnEscape(given)
	}
	return name
}

// pnEscape removes the PN delimiters and backslashes from a component.
func pnEscape(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '^', '=', '\\':
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
}

func sexCS(s string) string {
	switch s {
	case "M", "F":
		return s
	}
	return "" // U (indéterminé): unknown
}

// insIssuer is the Issuer of Patient ID of an INS kind, as package coerce writes it.
func insIssuer(oid string) string {
	switch oid {
	case OIDINSNIA:
		return "ASIP-SANTE-INS-NIA"
	case OIDINSNIRTest:
		return "ASIP-SANTE-INS-NIR-TEST"
	case OIDINSNIRDemo:
		return "ASIP-SANTE-INS-NIR-DEMO"
	}
	return "ASIP-SANTE-INS-NIR"
}

// studyID is the accession number when it fits Study ID (SH, 16 characters).
func studyID(r *Report) string {
	if a := r.Order.AccessionNumber; len(a) <= 16 {
		return a
	}
	return ""
}

// newUID returns a UID derived from a random (version 4) UUID under 2.25.
func newUID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("cda: generating UID: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(u[:]).String(), nil
}

// validUID reports whether s is a syntactically valid UID (PS3.5 9.1).
func validUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range strings.Split(s, ".") {
		if c == "" || len(c) > 1 && c[0] == '0' {
			return false
		}
		for i := 0; i < len(c); i++ {
			if c[i] < '0' || c[i] > '9' {
				return false
			}
		}
	}
	return true
}
