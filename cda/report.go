// Package cda owns the radiology report as a document: the Go model of a
// report (patient identity with the INS, professionals with their RPPS,
// organisations with their FINESS, the order, the study with its series and
// instances, the narrative sections) and what is generated from it: the
// French CI-SIS CDA R2 level 3 document "IMG-CR-IMG" (compte rendu
// d'imagerie médicale, model version 2024.01), the level 1 document with
// the same header and a PDF body, the PDF rendering, and the DICOM
// Encapsulated CDA instance that carries a document in a study.
//
// The package knows nothing about storage, signing workflows or transport:
// callers fill a Report, call Validate, then Level3 (or PDF and Level1) to
// get the bytes.
package cda

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// INS OIDs (root of recordTarget/patientRole/id for the matricule INS).
const (
	OIDINSNIR     = "1.2.250.1.213.1.4.8"  // INS-NIR (production)
	OIDINSNIA     = "1.2.250.1.213.1.4.9"  // INS-NIA (NIR pending)
	OIDINSNIRTest = "1.2.250.1.213.1.4.10" // test INS-NIR
	OIDINSNIRDemo = "1.2.250.1.213.1.4.11" // demonstration INS-NIR
)

// National identifier OIDs for professionals and organisations.
const (
	OIDRPPS   = "1.2.250.1.71.4.2.1" // national professional id; extension "8" + RPPS
	OIDFINESS = "1.2.250.1.71.4.2.2" // organisation id; extension "1" + FINESS
)

// Code is a coded value (CD).
type Code struct {
	Code        string
	System      string // OID of the code system
	SystemName  string // e.g. "LOINC"
	DisplayName string
}

// Patient is the subject of the report.
//
// When the identity is qualified (IdentityStatus "QUAL") and INS is set, the
// document carries the matricule INS under INSOID (default OIDINSNIR), plus
// the local id if given, and the five INS traits are mandatory. Otherwise it
// carries the local id (LocalID under LocalIDRoot, the facility's OID) only.
type Patient struct {
	INS            string // matricule INS (NIR or NIA), 15 characters
	INSOID         string // one of the OIDINS* constants; default OIDINSNIR
	IdentityStatus string // PROV, RECUP, VALI or QUAL; only QUAL uses the INS

	LocalID     string // IPP
	LocalIDRoot string // OID of the assigning facility

	// The five INS traits.
	BirthName  string    // nom de naissance (family qualifier BR)
	FirstNames string    // prénoms de naissance, space separated; the first is the "premier prénom"
	Sex        string    // M, F or U
	BirthDate  time.Time // only the date is used
	BirthPlace string    // INSEE COG code of the birth place (commune or country)

	UsedName string // nom utilisé (family qualifier CL), optional
}

// UsesINS reports whether the document identifies the patient with the INS.
func (p *Patient) UsesINS() bool { return p.INS != "" && p.IdentityStatus == "QUAL" }

func (p *Patient) insOID() string {
	if p.INSOID == "" {
		return OIDINSNIR
	}
	return p.INSOID
}

// Organisation is a health organisation identified by its FINESS.
type Organisation struct {
	FINESS string // without the leading "1"
	Name   string
}

// Professional is a health professional identified by its RPPS.
type Professional struct {
	RPPS         string // without the leading "8"
	Prefix       string // e.g. "M", "MME"
	Given        string
	Family       string
	Specialty    Code // e.g. G15_10/SM44 (Médecin - Radio-diagnostic), system 1.2.250.1.213.1.1.4.5
	Organisation Organisation
}

// SpecialtyRadiologist is the specialty code of a radiologist.
var SpecialtyRadiologist = Code{Code: "G15_10/SM44", System: "1.2.250.1.213.1.1.4.5", DisplayName: "Médecin - Radio-diagnostic (SM)"}

// Order is the imaging request the report fulfils.
type Order struct {
	PlacerOrderNumber string
	PlacerOrderIssuer string // OID of the placer's numbering
	AccessionNumber   string
	AccessionIssuer   string // OID of the accession number's issuer
}

func (o *Order) present() bool {
	return *o != Order{}
}

// Instance is one SOP instance of a series.
type Instance struct {
	SOPClassUID    string
	SOPInstanceUID string
	Number         int
}

// Series is one series of the study.
type Series struct {
	UID       string
	Modality  string
	Number    int
	Instances []Instance
}

// Study is the imaging study the report documents.
type Study struct {
	StudyInstanceUID string
	Modality         string // DICOM modality code, e.g. CT
	ProcedureCode    Code   // the act (LOINC), e.g. 24727-0
	Start            time.Time
	End              time.Time // optional
	Series           []Series
	// WADOBaseURL, if set, is the WADO-RS base (…/dicom-web) used to reference each instance.
	WADOBaseURL string
}

// Encounter is the care context (componentOf/encompassingEncounter).
type Encounter struct {
	Facility     Organisation
	FacilityType Code   // healthCareFacility code (system 1.2.250.1.71.4.2.4), optional
	Class        string // act code (system 2.16.840.1.113883.5.4); default "AMB"
	Start        time.Time
	End          time.Time // optional
}

// Exposure is the radiation exposure of the study.
type Exposure struct {
	Text string  // free text
	DLP  float64 // total dose-length product in mGy.cm; 0 when not measured
}

// Replaced identifies the version of the document a correction replaces.
type Replaced struct {
	ID      string
	SetID   string
	Version int
}

// Report is a radiology report.
type Report struct {
	ID              string // document id (OID or UUID), unique per version
	SetID           string // common to all versions
	Version         int    // 1, then incremented by each correction
	Effective       time.Time
	Confidentiality string // N (default), R or V
	Title           string // default "CR d'imagerie médicale"

	Patient            Patient
	Author             Professional
	LegalAuthenticator Professional
	Custodian          Organisation
	Order              Order
	Study              Study
	Encounter          Encounter

	ClinicalInformation string
	RequestReason       string
	Technique           string
	Findings            string
	Conclusion          string
	Comparison          string
	RadiationExposure   *Exposure

	Replaces *Replaced // set on a correction: relatedDocument RPLC
}

// FieldError is a missing or invalid field of a Report.
type FieldError struct {
	Field  string // Go path of the field, e.g. "Patient.BirthPlace"
	Reason string
}

func (e *FieldError) Error() string { return "cda: " + e.Field + ": " + e.Reason }

// Validate checks that the fields the IMG-CR-IMG model requires are present.
// It returns the errors joined (errors.Join), each a *FieldError naming the field.
func (r *Report) Validate() error {
	var errs []error
	req := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, &FieldError{field, "required"})
		}
	}
	reqTime := func(field string, t time.Time) {
		if t.IsZero() {
			errs = append(errs, &FieldError{field, "required"})
		}
	}
	req("ID", r.ID)
	req("SetID", r.SetID)
	if r.Version < 1 {
		errs = append(errs, &FieldError{"Version", "must be at least 1"})
	}
	reqTime("Effective", r.Effective)
	switch r.Confidentiality {
	case "", "N", "R", "V":
	default:
		errs = append(errs, &FieldError{"Confidentiality", "must be N, R or V"})
	}

	p := &r.Patient
	if p.UsesINS() {
		switch p.insOID() {
		case OIDINSNIR, OIDINSNIA, OIDINSNIRTest, OIDINSNIRDemo:
		default:
			errs = append(errs, &FieldError{"Patient.INSOID", "not an INS OID"})
		}
		if len(p.INS) != 15 {
			errs = append(errs, &FieldError{"Patient.INS", "must be 15 characters"})
		}
		req("Patient.BirthName", p.BirthName)
		req("Patient.FirstNames", p.FirstNames)
		reqTime("Patient.BirthDate", p.BirthDate)
		req("Patient.BirthPlace", p.BirthPlace)
	} else {
		req("Patient.LocalID", p.LocalID)
		req("Patient.BirthName", p.BirthName)
	}
	if p.LocalID != "" {
		req("Patient.LocalIDRoot", p.LocalIDRoot)
	}
	switch p.Sex {
	case "M", "F", "U":
	default:
		errs = append(errs, &FieldError{"Patient.Sex", "must be M, F or U"})
	}

	for _, pr := range []struct {
		name string
		p    *Professional
	}{{"Author", &r.Author}, {"LegalAuthenticator", &r.LegalAuthenticator}} {
		if !digits(pr.p.RPPS, 11) {
			errs = append(errs, &FieldError{pr.name + ".RPPS", "must be 11 digits"})
		}
		req(pr.name+".Family", pr.p.Family)
		req(pr.name+".Specialty.Code", pr.p.Specialty.Code)
		req(pr.name+".Organisation.Name", pr.p.Organisation.Name)
	}
	finess := func(field, v string) {
		if len(v) != 9 {
			errs = append(errs, &FieldError{field, "must be 9 characters"})
		}
	}
	finess("Author.Organisation.FINESS", r.Author.Organisation.FINESS)
	finess("LegalAuthenticator.Organisation.FINESS", r.LegalAuthenticator.Organisation.FINESS)
	finess("Custodian.FINESS", r.Custodian.FINESS)
	finess("Encounter.Facility.FINESS", r.Encounter.Facility.FINESS)
	req("Custodian.Name", r.Custodian.Name)

	if r.Order.present() {
		req("Order.PlacerOrderNumber", r.Order.PlacerOrderNumber)
		req("Order.PlacerOrderIssuer", r.Order.PlacerOrderIssuer)
		req("Order.AccessionNumber", r.Order.AccessionNumber)
		req("Order.AccessionIssuer", r.Order.AccessionIssuer)
	}

	s := &r.Study
	req("Study.StudyInstanceUID", s.StudyInstanceUID)
	req("Study.Modality", s.Modality)
	req("Study.ProcedureCode.Code", s.ProcedureCode.Code)
	reqTime("Study.Start", s.Start)
	for i, se := range s.Series {
		f := fmt.Sprintf("Study.Series[%d]", i)
		req(f+".UID", se.UID)
		req(f+".Modality", se.Modality)
		for j, in := range se.Instances {
			g := fmt.Sprintf("%s.Instances[%d]", f, j)
			req(g+".SOPClassUID", in.SOPClassUID)
			req(g+".SOPInstanceUID", in.SOPInstanceUID)
		}
	}

	req("Encounter.Facility.Name", r.Encounter.Facility.Name)
	reqTime("Encounter.Start", r.Encounter.Start)

	req("Conclusion", r.Conclusion)

	if r.Replaces != nil {
		req("Replaces.ID", r.Replaces.ID)
		if r.Replaces.SetID != "" && r.Replaces.SetID != r.SetID {
			errs = append(errs, &FieldError{"Replaces.SetID", "a correction keeps the setId"})
		}
		if r.Replaces.Version != 0 && r.Version <= r.Replaces.Version {
			errs = append(errs, &FieldError{"Version", "a correction increments the version"})
		}
		if r.Replaces.ID == r.ID {
			errs = append(errs, &FieldError{"Replaces.ID", "same as ID"})
		}
	}
	return errors.Join(errs...)
}

// digits reports whether s is n ASCII digits.
func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
