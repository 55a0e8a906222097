// Package report owns the radiology report workflow of Relais: a report is
// written for a study (draft), signed by a radiologist (a CI-SIS CDA R2
// document is generated, version 1), and corrected by a later signed
// version that replaces it (same setId, next versionNumber, relatedDocument
// RPLC). Every signed version is kept with its documents and published back
// to the requesting site as a DICOM Encapsulated CDA instance of the study,
// through the durable routing queues.
//
// The package decides what may happen and builds the documents; storage of
// the published instances and the queues are given to it (Deps), so that it
// knows nothing of DIMSE or the node.
package report

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is where a report is in its life.
type State string

// States.
const (
	// Draft: written, editable, not signed; nothing has left Relais.
	Draft State = "draft"
	// Signed: version 1 is signed and published; the content is frozen.
	Signed State = "signed"
	// Corrected: a later version replaced the first signed one.
	Corrected State = "corrected"
)

// Exposure is the radiation exposure of the study.
type Exposure struct {
	Text string  `json:"text,omitempty"`
	DLP  float64 `json:"dlp_mgy_cm,omitempty"` // total dose-length product, mGy.cm
}

// Content is what the radiologist writes.
type Content struct {
	ClinicalInformation string    `json:"clinical_information,omitempty"`
	RequestReason       string    `json:"request_reason,omitempty"`
	Technique           string    `json:"technique,omitempty"`
	Comparison          string    `json:"comparison,omitempty"`
	Findings            string    `json:"findings,omitempty"`
	Conclusion          string    `json:"conclusion,omitempty"`
	RadiationExposure   *Exposure `json:"radiation_exposure,omitempty"`
	// PatientBirthPlace is the INSEE code of the patient's birth place:
	// the INS trait images do not carry, taken from the request. Without
	// it the document cannot identify the patient by the INS.
	PatientBirthPlace string `json:"patient_birth_place,omitempty"`
}

// Patch is a partial Content: nil fields are left as they are.
type Patch struct {
	ClinicalInformation *string   `json:"clinical_information,omitempty"`
	RequestReason       *string   `json:"request_reason,omitempty"`
	Technique           *string   `json:"technique,omitempty"`
	Comparison          *string   `json:"comparison,omitempty"`
	Findings            *string   `json:"findings,omitempty"`
	Conclusion          *string   `json:"conclusion,omitempty"`
	RadiationExposure   *Exposure `json:"radiation_exposure,omitempty"`
	PatientBirthPlace   *string   `json:"patient_birth_place,omitempty"`
}

// Apply returns c with p's fields set.
func (p Patch) Apply(c Content) Content {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.ClinicalInformation, p.ClinicalInformation)
	set(&c.RequestReason, p.RequestReason)
	set(&c.Technique, p.Technique)
	set(&c.Comparison, p.Comparison)
	set(&c.Findings, p.Findings)
	set(&c.Conclusion, p.Conclusion)
	set(&c.PatientBirthPlace, p.PatientBirthPlace)
	if p.RadiationExposure != nil {
		if *p.RadiationExposure == (Exposure{}) {
			c.RadiationExposure = nil
		} else {
			x := *p.RadiationExposure
			c.RadiationExposure = &x
		}
	}
	return c
}

// maxField bounds each text field (a report is prose, not an archive).
const maxField = 64 << 10

func (c Content) check() error {
	for name, v := range map[string]string{"clinical_information": c.ClinicalInformation, "request_reason": c.RequestReason,
		"technique": c.Technique, "comparison": c.Comparison, "findings": c.Findings, "conclusion": c.Conclusion} {
		if len(v) > maxField {
			return &InputError{Field: name, Reason: fmt.Sprintf("longer than %d bytes", maxField)}
		}
		if strings.ContainsRune(v, 0) {
			return &InputError{Field: name, Reason: "contains a NUL character"}
		}
	}
	if b := c.PatientBirthPlace; b != "" && (len(b) != 5 || strings.Trim(b, "0123456789AB") != "") {
		return &InputError{Field: "patient_birth_place", Reason: "an INSEE code is 5 characters (digits, 2A/2B for Corsica)"}
	}
	if x := c.RadiationExposure; x != nil && (x.DLP < 0 || x.DLP > 1e6) {
		return &InputError{Field: "radiation_exposure.dlp_mgy_cm", Reason: "outside 0..1e6"}
	}
	return nil
}

// Document is one published DICOM instance of a version.
type Document struct {
	Format         string   `json:"format"` // level3 or level1 (see config.ReportLevel3)
	DocumentID     string   `json:"document_id"`
	SOPInstanceUID string   `json:"sop_instance_uid"`
	Destinations   []string `json:"destinations,omitempty"`
}

// Version is a signed version of a report, with its documents.
type Version struct {
	Number     int       `json:"number"`
	DocumentID string    `json:"document_id"` // ClinicalDocument/id of the level 3 document
	SetID      string    `json:"set_id"`
	SignedBy   string    `json:"signed_by"` // professional id in the directory
	RPPS       string    `json:"rpps"`
	User       string    `json:"user"` // token user who signed
	SignedAt   time.Time `json:"signed_at"`
	Content    Content   `json:"content"`
	// UsesINS says whether the documents identify the patient by the INS;
	// Notices say why not, and anything else the signer should know.
	UsesINS bool     `json:"uses_ins"`
	Notices []string `json:"notices,omitempty"`
	// files are the version's documents by name (level3.xml, level1.xml,
	// pdf, level3.dcm, level1.dcm): written by Store.Put beside the record,
	// read back with Store.Document.
	files map[string][]byte
	// SeriesInstanceUID holds the report's Encapsulated CDA instances.
	SeriesInstanceUID string     `json:"series_instance_uid"`
	Documents         []Document `json:"documents"`
	// Published is set once the instances are stored in the study and
	// their deliveries queued.
	Published   bool      `json:"published"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	PublishErr  string    `json:"publish_error,omitempty"`
	Replaces    string    `json:"replaces,omitempty"` // document id of the previous version
}

// Report is a report of a study and its signed versions.
type Report struct {
	ID        string    `json:"id"`
	StudyUID  string    `json:"study_instance_uid"`
	Accession string    `json:"accession_number,omitempty"`
	Site      string    `json:"site,omitempty"`
	State     State     `json:"state"`
	Content   Content   `json:"content"` // the draft, or the last signed content
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Revision increments at every change (optimistic concurrency: an
	// edit may say which revision it edits).
	Revision int       `json:"revision"`
	Versions []Version `json:"versions,omitempty"`
}

// Last returns the last signed version (nil for a draft).
func (r *Report) Last() *Version {
	if len(r.Versions) == 0 {
		return nil
	}
	return &r.Versions[len(r.Versions)-1]
}

// Version returns signed version n (nil if none).
func (r *Report) Version(n int) *Version {
	for i := range r.Versions {
		if r.Versions[i].Number == n {
			return &r.Versions[i]
		}
	}
	return nil
}

// Errors. The HTTP layer maps them to statuses; all wrap the reason.
var (
	// ErrNotFound: unknown report, or unknown study.
	ErrNotFound = errors.New("report: not found")
	// ErrState: the operation does not apply in the report's state (an
	// edit after signing).
	ErrState = errors.New("report: not allowed in this state")
	// ErrConflict: the report changed since the revision the caller edited.
	ErrConflict = errors.New("report: changed meanwhile")
	// ErrForbidden: the caller may not do this (not a radiologist, not in
	// the directory of professionals).
	ErrForbidden = errors.New("report: forbidden")
	// ErrIncomplete: the document cannot be made (missing directory
	// entries, missing fields); the error lists what is missing.
	ErrIncomplete = errors.New("report: incomplete")
)

// InputError is an invalid field of a request.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return "report: " + e.Field + ": " + e.Reason }
