// Package telerequest owns telemedicine requests (demandes de
// télé-expertise / téléinterprétation): who asks (the requesting physician
// and site), for which patient (identity with its INS status), why
// (clinical information and question), how urgently (STAT, URGENT,
// ROUTINE), with which consent of the patient, and for which study.
//
// A request is linked to its study by accession number or Study Instance
// UID, whichever arrives first: a request recorded before the images is
// linked when an instance of that study is stored (Service.OnInstance, and
// a periodic sweep over the index for what the hand-off missed); images
// stored first are found when the request is created. A candidate study
// whose patient or site clearly differs is never linked automatically: the
// request is flagged "reconciliation needed" for a human, who links or
// rejects it with a reason.
//
// A request is never deleted: it is cancelled with a reason, and cancelled
// is final. Every change is journaled (request.created, request.updated,
// request.consent, request.linked, request.reconciliation,
// request.cancelled) and kept in the record's append-only history.
package telerequest

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/relais-health/relais/identity"
)

// State is where a request is in its life. It is derived from the facts
// of the record (consent, link, report, cancellation).
type State string

// States.
const (
	// AwaitingConsent: the patient's consent is not given (not recorded
	// yet, or refused): the request may not be sent for reading.
	AwaitingConsent State = "awaiting-consent"
	// Open: consent given, the study is not here yet.
	Open State = "open"
	// Linked: consent given and the study is known.
	Linked State = "linked"
	// Reported: the study's report was signed (report workflow).
	Reported State = "reported"
	// Cancelled: cancelled with a reason; final.
	Cancelled State = "cancelled"
)

// ParseState parses a state name.
func ParseState(s string) (State, error) {
	switch st := State(strings.ToLower(strings.TrimSpace(s))); st {
	case AwaitingConsent, Open, Linked, Reported, Cancelled:
		return st, nil
	}
	return "", &InputError{Field: "state", Reason: fmt.Sprintf("%q is not one of awaiting-consent, open, linked, reported, cancelled", s)}
}

// Urgency is how fast the request must be read.
type Urgency string

// Urgencies.
const (
	STAT    Urgency = "STAT"
	Urgent  Urgency = "URGENT"
	Routine Urgency = "ROUTINE"
)

func parseUrgency(s string) (Urgency, error) {
	switch u := Urgency(strings.ToUpper(strings.TrimSpace(s))); u {
	case STAT, Urgent, Routine:
		return u, nil
	case "":
		return Routine, nil
	}
	return "", &InputError{Field: "urgency", Reason: fmt.Sprintf("%q is not one of STAT, URGENT, ROUTINE", s)}
}

// Physician is the requesting physician (médecin requérant).
type Physician struct {
	Name string `json:"name"`
	// RPPS is the 11-digit RPPS number (optional).
	RPPS string `json:"rpps,omitempty"`
	// User is the token user who recorded the request (set by Relais).
	User string `json:"user,omitempty"`
}

// PatientFields are the patient's identity as the requester knows it.
type PatientFields struct {
	// Name is the used family name (nom utilisé); BirthName the birth name
	// (nom de naissance).
	Name       string `json:"name,omitempty"`
	BirthName  string `json:"birth_name,omitempty"`
	FirstNames string `json:"first_names,omitempty"`
	Sex        string `json:"sex,omitempty"`        // M, F or U
	BirthDate  string `json:"birth_date,omitempty"` // YYYYMMDD (YYYY-MM-DD accepted)
	// BirthPlace is the INSEE code of the birth place.
	BirthPlace string `json:"birth_place,omitempty"`
	// LocalID is the site's patient id (IPP).
	LocalID string `json:"local_id,omitempty"`
	// INS is the matricule INS (15 characters, key checked).
	INS string `json:"ins,omitempty"`
}

// Patient is the request's patient with the identity status the
// requester declared and every change of it.
type Patient struct {
	PatientFields
	INSStatus  identity.Status `json:"ins_status"`
	INSHistory []StatusChange  `json:"ins_status_history,omitempty"`
}

// StatusChange records a declaration or change of the identity status.
type StatusChange struct {
	From     string    `json:"from,omitempty"` // "" for the first declaration
	To       string    `json:"to"`
	User     string    `json:"user"`
	At       time.Time `json:"at"`
	Evidence string    `json:"evidence"`
}

// Consent statuses and methods.
const (
	ConsentGiven   = "given"
	ConsentRefused = "refused"
	MethodOral     = "oral"
	MethodWritten  = "written"
	MethodOther    = "other"
)

// Consent is the patient's consent to the telemedicine act.
type Consent struct {
	Status     string    `json:"status"` // given or refused
	Method     string    `json:"method"` // oral, written or other
	Text       string    `json:"text,omitempty"`
	RecordedBy string    `json:"recorded_by"`
	RecordedAt time.Time `json:"recorded_at"`
}

// ConsentInput is a consent as sent by a user.
type ConsentInput struct {
	Status string `json:"status"`
	Method string `json:"method"`
	Text   string `json:"text,omitempty"`
}

func (c ConsentInput) check() (ConsentInput, error) {
	c.Status = strings.ToLower(strings.TrimSpace(c.Status))
	c.Method = strings.ToLower(strings.TrimSpace(c.Method))
	switch c.Status {
	case ConsentGiven, ConsentRefused:
	case "":
		return c, &InputError{Field: "consent.status", Reason: "required: given or refused"}
	default:
		return c, &InputError{Field: "consent.status", Reason: fmt.Sprintf("%q is not given or refused", c.Status)}
	}
	switch c.Method {
	case MethodOral, MethodWritten:
	case MethodOther:
		if strings.TrimSpace(c.Text) == "" {
			return c, &InputError{Field: "consent.text", Reason: "required when the method is other: say how consent was obtained"}
		}
	case "":
		return c, &InputError{Field: "consent.method", Reason: "required: oral, written or other"}
	default:
		return c, &InputError{Field: "consent.method", Reason: fmt.Sprintf("%q is not oral, written or other", c.Method)}
	}
	if err := checkText("consent.text", c.Text, maxShort); err != nil {
		return c, err
	}
	return c, nil
}

// Reconciliation is a candidate study that matched the request's
// accession number or Study Instance UID but whose patient or site
// clearly differs: a human must link it (or reject it) with a reason.
type Reconciliation struct {
	StudyUID  string    `json:"study_instance_uid"`
	Accession string    `json:"accession_number,omitempty"`
	Reasons   []string  `json:"reasons"`
	Since     time.Time `json:"since"`
}

// Change is one entry of a request's history.
type Change struct {
	At   time.Time `json:"at"`
	User string    `json:"user"`
	Kind string    `json:"kind"` // the journal kind
	// Reason says what changed, with ids only: it is journaled.
	Reason string `json:"reason,omitempty"`
	// Note is the user's own words (why a study was linked or the request
	// cancelled): kept in the record, not journaled, as it may name the
	// patient.
	Note string `json:"note,omitempty"`
	// Previous holds the values the change replaced, by field name (JSON).
	Previous map[string]string `json:"previous,omitempty"`
}

// Request is a telemedicine request.
type Request struct {
	ID        string    `json:"id"`
	State     State     `json:"state"`
	Site      string    `json:"site"`
	Requester Physician `json:"requester"`
	Patient   Patient   `json:"patient"`

	ClinicalInformation string  `json:"clinical_information,omitempty"`
	Question            string  `json:"question"`
	Urgency             Urgency `json:"urgency"`

	Consent *Consent `json:"consent,omitempty"`

	// AccessionNumber and StudyUID identify the study: given with the
	// request or learnt from the linked study.
	AccessionNumber string `json:"accession_number,omitempty"`
	StudyUID        string `json:"study_instance_uid,omitempty"`
	// StudyLinked: the study is stored here and belongs to this request.
	StudyLinked bool       `json:"study_linked"`
	LinkedBy    string     `json:"linked_by,omitempty"` // "auto" or the user
	LinkedAt    *time.Time `json:"linked_at,omitempty"`
	// Reconciliation, when set, is a candidate study a human must decide
	// on; RejectedStudies were rejected and are never linked automatically.
	Reconciliation  *Reconciliation `json:"reconciliation,omitempty"`
	RejectedStudies []string        `json:"rejected_studies,omitempty"`

	// Derived flags (kept in step with the facts on every change).
	AwaitingConsent      bool `json:"awaiting_consent"`
	ReconciliationNeeded bool `json:"reconciliation_needed"`
	ReadyForReading      bool `json:"ready_for_reading"`

	Reported     bool       `json:"reported"`
	ReportedAt   *time.Time `json:"reported_at,omitempty"`
	Cancelled    bool       `json:"cancelled"`
	CancelReason string     `json:"cancel_reason,omitempty"`

	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Revision  int       `json:"revision"`
	History   []Change  `json:"history"`
}

// derive sets the state and the derived flags from the facts.
func (r *Request) derive() {
	given := r.Consent != nil && r.Consent.Status == ConsentGiven
	r.AwaitingConsent = !given && !r.Cancelled
	r.ReconciliationNeeded = r.Reconciliation != nil && !r.Cancelled
	r.ReadyForReading = given && r.StudyLinked && !r.Cancelled && !r.Reported
	switch {
	case r.Cancelled:
		r.State = Cancelled
	case r.Reported:
		r.State = Reported
	case !given:
		r.State = AwaitingConsent
	case r.StudyLinked:
		r.State = Linked
	default:
		r.State = Open
	}
}

// final reports whether nothing may change any more.
func (r *Request) final() bool { return r.Cancelled }

func (r *Request) clone() *Request {
	c := *r
	c.Patient.INSHistory = append([]StatusChange(nil), r.Patient.INSHistory...)
	if r.Consent != nil {
		x := *r.Consent
		c.Consent = &x
	}
	if r.Reconciliation != nil {
		x := *r.Reconciliation
		x.Reasons = append([]string(nil), r.Reconciliation.Reasons...)
		c.Reconciliation = &x
	}
	c.RejectedStudies = append([]string(nil), r.RejectedStudies...)
	c.History = make([]Change, len(r.History))
	for i, h := range r.History {
		c.History[i] = h
		if h.Previous != nil {
			m := make(map[string]string, len(h.Previous))
			for k, v := range h.Previous {
				m[k] = v
			}
			c.History[i].Previous = m
		}
	}
	if r.LinkedAt != nil {
		t := *r.LinkedAt
		c.LinkedAt = &t
	}
	if r.ReportedAt != nil {
		t := *r.ReportedAt
		c.ReportedAt = &t
	}
	return &c
}

// Errors. Service errors wrap them; InputError is a bad field (400).
var (
	ErrNotFound  = errors.New("telerequest: not found")
	ErrForbidden = errors.New("telerequest: forbidden")
	ErrState     = errors.New("telerequest: not allowed in this state")
	ErrConflict  = errors.New("telerequest: changed meanwhile")
)

// InputError names a field that is missing or invalid.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return "request: " + e.Field + ": " + e.Reason }

// Bounds of text fields.
const (
	maxShort = 256      // names, ids, reasons
	maxLong  = 64 << 10 // clinical information, question
)

func checkText(field, v string, max int) error {
	if len(v) > max {
		return &InputError{Field: field, Reason: fmt.Sprintf("longer than %d bytes", max)}
	}
	if !utf8.ValidString(v) {
		return &InputError{Field: field, Reason: "not valid UTF-8"}
	}
	for _, c := range v {
		if c == 0 || (max == maxShort && unicode.IsControl(c)) {
			return &InputError{Field: field, Reason: "contains a control character"}
		}
	}
	return nil
}

// checkRPPS: 11 digits.
func checkRPPS(v string) error {
	if v == "" {
		return nil
	}
	if len(v) != 11 || strings.Trim(v, "0123456789") != "" {
		return &InputError{Field: "requester.rpps", Reason: "an RPPS number is 11 digits"}
	}
	return nil
}

// normalize checks the patient fields and returns them normalized
// (trimmed, sex upper-case, birth date YYYYMMDD).
func (p PatientFields) normalize() (PatientFields, error) {
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", &p.Name}, {"birth_name", &p.BirthName}, {"first_names", &p.FirstNames}, {"sex", &p.Sex},
		{"birth_date", &p.BirthDate}, {"birth_place", &p.BirthPlace}, {"local_id", &p.LocalID}, {"ins", &p.INS}} {
		*f.v = strings.TrimSpace(*f.v)
		if err := checkText("patient."+f.name, *f.v, maxShort); err != nil {
			return p, err
		}
	}
	if len(p.LocalID) > 64 {
		return p, &InputError{Field: "patient.local_id", Reason: "longer than 64 characters (a DICOM Patient ID)"}
	}
	p.Sex = strings.ToUpper(p.Sex)
	switch p.Sex {
	case "", "M", "F", "U":
	default:
		return p, &InputError{Field: "patient.sex", Reason: fmt.Sprintf("%q is not M, F or U", p.Sex)}
	}
	if p.BirthDate != "" {
		d := strings.ReplaceAll(p.BirthDate, "-", "")
		t, err := time.Parse("20060102", d)
		if err != nil || len(d) != 8 || t.Year() < 1870 {
			return p, &InputError{Field: "patient.birth_date", Reason: fmt.Sprintf("%q is not a date (YYYYMMDD or YYYY-MM-DD)", p.BirthDate)}
		}
		p.BirthDate = d
	}
	if b := strings.ToUpper(p.BirthPlace); b != "" {
		if len(b) != 5 || strings.Trim(b, "0123456789AB") != "" {
			return p, &InputError{Field: "patient.birth_place", Reason: "an INSEE code is 5 characters (digits, 2A/2B for Corsica)"}
		}
		p.BirthPlace = b
	}
	if p.INS != "" {
		p.INS = strings.ToUpper(p.INS)
		if !identity.ValidINSKey(p.INS) {
			return p, &InputError{Field: "patient.ins", Reason: "not a well-formed matricule INS (15 characters, the key does not match)"}
		}
	}
	return p, nil
}

// identityOf is the identity package's view of the patient, to apply its
// status rules.
func identityOf(p Patient) identity.Identity {
	id := identity.Identity{Status: p.INSStatus, Local: identity.Identifier{Value: p.LocalID, Type: identity.TypeLocal},
		Traits: identity.Traits{BirthName: p.BirthName, FirstNames: p.FirstNames, Sex: p.Sex, BirthDate: p.BirthDate, BirthPlace: p.BirthPlace}}
	if p.INS != "" {
		id.INS = &identity.Identifier{Value: p.INS, Issuer: identity.OIDINSNIR, Type: identity.TypeINSNIR}
	}
	return id
}

// checkDeclared checks a status declared at creation: RECUP and QUAL
// carry an INS retrieved from the INSi teleservice, so an INS is needed;
// any status above PROV needs evidence (what the requester checked).
func checkDeclared(p Patient, evidence string) error {
	if p.INSStatus < identity.PROV || p.INSStatus > identity.QUAL {
		return &InputError{Field: "patient.ins_status", Reason: "not PROV, RECUP, VALI or QUAL"}
	}
	if (p.INSStatus == identity.RECUP || p.INSStatus == identity.QUAL) && p.INS == "" {
		return &InputError{Field: "patient.ins", Reason: fmt.Sprintf("identity status %s needs the INS retrieved from the INSi teleservice", p.INSStatus)}
	}
	if p.INSStatus > identity.PROV && strings.TrimSpace(evidence) == "" {
		return &InputError{Field: "patient.ins_status_evidence", Reason: fmt.Sprintf("declaring %s needs evidence (INSi call, identity document checked)", p.INSStatus)}
	}
	return checkText("patient.ins_status_evidence", evidence, maxShort)
}

// normalizeUID checks a DICOM UID (digits and dots, at most 64).
func checkUID(field, v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 64 || strings.Trim(v, "0123456789.") != "" || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") || strings.Contains(v, "..") {
		return &InputError{Field: field, Reason: fmt.Sprintf("%q is not a DICOM UID", v)}
	}
	return nil
}

// checkAccession: an Accession Number is SH (16 characters, no backslash).
func checkAccession(field, v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 16 || strings.ContainsAny(v, `\`) {
		return &InputError{Field: field, Reason: fmt.Sprintf("%q is not an accession number (16 characters at most, no backslash)", v)}
	}
	return checkText(field, v, maxShort)
}
