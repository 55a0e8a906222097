package telerequest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/identity"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
)

// Journal kinds.
const (
	KindCreated        = "request.created"
	KindUpdated        = "request.updated"
	KindConsent        = "request.consent"
	KindLinked         = "request.linked"
	KindReconciliation = "request.reconciliation"
	KindCancelled      = "request.cancelled"
)

// SystemUser is the user of the changes Relais makes by itself
// (automatic links, reconciliation flags).
const SystemUser = "relais"

// Directory tells which site a user or calling AE belongs to (package
// directory implements it).
type Directory interface {
	SiteFor(callingAE, user string) (id string, s config.Site, ok bool)
	Site(id string) (config.Site, bool)
}

// Deps are what the service works with.
type Deps struct {
	Store     *Store
	Index     storage.Index
	Directory Directory
	Journal   *journal.Journal // nil: not journaled (tests)
	Logger    *slog.Logger
	Clock     func() time.Time
	// Buffer is the capacity of the OnInstance hand-off (default 4096);
	// beyond it instances are dropped and the next sweep, asked for at
	// once, finds their studies in the index.
	Buffer int
	// OnChange, if set, is told of every change after it is durable (kind
	// is the journal kind). It must not block.
	OnChange func(kind string, r *Request)
}

// Actor is who asks: the token's user and role.
type Actor struct {
	User string
	Role auth.Role
}

// Service is the request workflow.
type Service struct {
	d       Deps
	mu      sync.Mutex // serializes changes
	inbox   chan incoming
	kick    chan struct{}
	dropped atomic.Uint64
	// matching counts the changes searching the index for their study
	// (create, new keys): while one runs, OnInstance hands every instance
	// over, so that one indexed after the search is not missed.
	matching atomic.Int32
}

// New returns the service.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Buffer <= 0 {
		d.Buffer = 4096
	}
	return &Service{d: d, inbox: make(chan incoming, d.Buffer), kick: make(chan struct{}, 1)}
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "rq-" + hex.EncodeToString(b[:])
}

// scope returns the site an actor is confined to ("" for every site).
func (s *Service) scope(a Actor) (string, error) {
	switch a.Role {
	case auth.RoleAdmin, auth.RoleRadiologist:
		return "", nil
	case auth.RoleRequester:
		if s.d.Directory != nil {
			if id, _, ok := s.d.Directory.SiteFor("", a.User); ok && a.User != "" {
				return id, nil
			}
		}
		return "", fmt.Errorf("%w: user %q is not listed in the users of any site: a requester records requests for its site", ErrForbidden, a.User)
	}
	return "", fmt.Errorf("%w: role %q does not handle telemedicine requests", ErrForbidden, a.Role)
}

// mayWrite: requesters and admins record and change requests;
// radiologists may link studies (reconciliation), not record requests.
func mayWrite(a Actor, op string) error {
	switch a.Role {
	case auth.RoleAdmin, auth.RoleRequester:
		return nil
	case auth.RoleRadiologist:
		if op == "link" || op == "unlink" {
			return nil
		}
	}
	return fmt.Errorf("%w: a %s may not %s a request (requesters and admins do)", ErrForbidden, a.Role, op)
}

// NewRequest is what a user sends to record a request.
type NewRequest struct {
	// Site is the requesting site (a directory site id); a requester's is
	// its own (the site listing its user) and may be left out.
	Site                string        `json:"site,omitempty"`
	Requester           Physician     `json:"requester"`
	Patient             PatientInput  `json:"patient"`
	ClinicalInformation string        `json:"clinical_information,omitempty"`
	Question            string        `json:"question"`
	Urgency             string        `json:"urgency,omitempty"`
	AccessionNumber     string        `json:"accession_number,omitempty"`
	StudyUID            string        `json:"study_instance_uid,omitempty"`
	Consent             *ConsentInput `json:"consent,omitempty"`
}

// PatientInput is the patient as sent: the fields, the identity status
// the requester declares (default PROV) and its evidence.
type PatientInput struct {
	PatientFields
	INSStatus   *identity.Status `json:"ins_status,omitempty"`
	INSEvidence string           `json:"ins_status_evidence,omitempty"`
}

// Create records a request. Images already stored with its accession
// number or Study Instance UID are linked at once (or flagged for
// reconciliation).
func (s *Service) Create(ctx context.Context, a Actor, in NewRequest) (*Request, error) {
	if err := mayWrite(a, "create"); err != nil {
		return nil, err
	}
	scope, err := s.scope(a)
	if err != nil {
		return nil, err
	}
	site := strings.TrimSpace(in.Site)
	switch {
	case scope != "" && site == "":
		site = scope
	case scope != "" && site != scope:
		return nil, fmt.Errorf("%w: user %q records requests for site %s, not %s", ErrForbidden, a.User, scope, site)
	case site == "":
		return nil, &InputError{Field: "site", Reason: "required (a site id of the directory)"}
	}
	if s.d.Directory != nil {
		if _, ok := s.d.Directory.Site(site); !ok {
			return nil, &InputError{Field: "site", Reason: fmt.Sprintf("no site %q in the directory", site)}
		}
	}
	r := &Request{ID: newID(), Site: site, CreatedBy: a.User}
	if err := s.fill(r, in); err != nil {
		return nil, err
	}
	now := s.d.Clock().UTC()
	r.Created, r.Updated, r.Revision = now, now, 1
	r.Requester.User = a.User
	r.Patient.INSHistory = []StatusChange{{To: r.Patient.INSStatus.String(), User: a.User, At: now, Evidence: declared(in.Patient.INSEvidence)}}
	r.History = append(r.History, Change{At: now, User: a.User, Kind: KindCreated, Reason: fmt.Sprintf("recorded (%s, identity %s)", r.Urgency, r.Patient.INSStatus)})
	if in.Consent != nil {
		c, err := in.Consent.check()
		if err != nil {
			return nil, err
		}
		r.Consent = &Consent{Status: c.Status, Method: c.Method, Text: c.Text, RecordedBy: a.User, RecordedAt: now}
		r.History = append(r.History, Change{At: now, User: a.User, Kind: KindConsent, Reason: "consent " + c.Status + " (" + c.Method + ")"})
	}
	s.matching.Add(1)
	defer s.matching.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.matchIndex(ctx, r, now)
	r.derive()
	if err := s.d.Store.Put(r, -1); err != nil {
		return nil, err
	}
	s.emit(r, 0)
	return r.clone(), nil
}

func declared(evidence string) string {
	if e := strings.TrimSpace(evidence); e != "" {
		return "declared by the requester: " + e
	}
	return "declared by the requester"
}

// fill checks the new request's fields and sets them on r.
func (s *Service) fill(r *Request, in NewRequest) error {
	in.Requester.Name = strings.TrimSpace(in.Requester.Name)
	in.Requester.RPPS = strings.TrimSpace(in.Requester.RPPS)
	if in.Requester.Name == "" {
		return &InputError{Field: "requester.name", Reason: "required: the requesting physician"}
	}
	if err := checkText("requester.name", in.Requester.Name, maxShort); err != nil {
		return err
	}
	if err := checkRPPS(in.Requester.RPPS); err != nil {
		return err
	}
	p, err := in.Patient.PatientFields.normalize()
	if err != nil {
		return err
	}
	if p.Name == "" && p.BirthName == "" {
		return &InputError{Field: "patient.name", Reason: "required: the patient's name or birth name"}
	}
	r.Patient = Patient{PatientFields: p}
	if in.Patient.INSStatus != nil {
		r.Patient.INSStatus = *in.Patient.INSStatus
	}
	if err := checkDeclared(r.Patient, in.Patient.INSEvidence); err != nil {
		return err
	}
	if err := checkText("clinical_information", in.ClinicalInformation, maxLong); err != nil {
		return err
	}
	if strings.TrimSpace(in.Question) == "" {
		return &InputError{Field: "question", Reason: "required: what the requester asks"}
	}
	if err := checkText("question", in.Question, maxLong); err != nil {
		return err
	}
	u, err := parseUrgency(in.Urgency)
	if err != nil {
		return err
	}
	in.AccessionNumber, in.StudyUID = strings.TrimSpace(in.AccessionNumber), strings.TrimSpace(in.StudyUID)
	if err := checkAccession("accession_number", in.AccessionNumber); err != nil {
		return err
	}
	if err := checkUID("study_instance_uid", in.StudyUID); err != nil {
		return err
	}
	r.Requester = Physician{Name: in.Requester.Name, RPPS: in.Requester.RPPS}
	r.ClinicalInformation, r.Question, r.Urgency = in.ClinicalInformation, in.Question, u
	r.AccessionNumber, r.StudyUID = in.AccessionNumber, in.StudyUID
	return nil
}

// Filter selects requests.
type Filter struct {
	Study, Accession, Site string
	State                  State
}

// Get returns a request the actor may see.
func (s *Service) Get(a Actor, id string) (*Request, error) {
	scope, err := s.scope(a)
	if err != nil {
		return nil, err
	}
	r, err := s.d.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if scope != "" && r.Site != scope {
		return nil, fmt.Errorf("%w: request %q", ErrNotFound, id) // another site's: not even its existence
	}
	return r, nil
}

// List returns the requests the actor may see that match f, newest
// first.
func (s *Service) List(a Actor, f Filter) ([]*Request, error) {
	scope, err := s.scope(a)
	if err != nil {
		return nil, err
	}
	if scope != "" {
		if f.Site != "" && f.Site != scope {
			return nil, fmt.Errorf("%w: user %q sees the requests of site %s only", ErrForbidden, a.User, scope)
		}
		f.Site = scope
	}
	return s.d.Store.All(func(r *Request) bool {
		return (f.Site == "" || r.Site == f.Site) && (f.Study == "" || r.StudyUID == f.Study) &&
			(f.Accession == "" || r.AccessionNumber == f.Accession) && (f.State == "" || r.State == f.State)
	}), nil
}

// ForStudy returns the requests linked to a study (for the worklist and
// the viewer; no access check).
func (s *Service) ForStudy(study string) []*Request {
	return s.d.Store.All(func(r *Request) bool { return r.StudyLinked && r.StudyUID == study })
}

// ReadingAllowed tells the worklist whether a study may be sent for
// reading: known is false when no request is linked to it (no
// telemedicine request: the caller's policy decides); otherwise it is
// allowed when one of its requests has the patient's consent given, and
// why says what is missing.
func (s *Service) ReadingAllowed(study string) (allowed, known bool, why string) {
	rs := s.d.Store.All(func(r *Request) bool { return r.StudyLinked && r.StudyUID == study && !r.Cancelled })
	if len(rs) == 0 {
		return false, false, "no request is linked to the study"
	}
	for _, r := range rs {
		if r.Consent != nil && r.Consent.Status == ConsentGiven {
			return true, true, ""
		}
	}
	if c := rs[0].Consent; c != nil && c.Status == ConsentRefused {
		return false, true, "request " + rs[0].ID + ": the patient refused consent"
	}
	return false, true, "request " + rs[0].ID + ": awaiting the patient's consent"
}

// change applies fn to a copy of request id under the service lock: fn
// appends History entries (each becomes a journal event); an error or no
// entry writes nothing.
func (s *Service) change(ctx context.Context, a *Actor, id string, rev int, fn func(r *Request, now time.Time) error) (*Request, error) {
	scope := ""
	if a != nil {
		var err error
		if scope, err = s.scope(*a); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.d.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if scope != "" && r.Site != scope {
		return nil, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	if r.final() {
		return nil, fmt.Errorf("%w: request %s is cancelled: a cancelled request does not change", ErrState, id)
	}
	if rev > 0 && rev != r.Revision {
		return nil, fmt.Errorf("%w: request %s is at revision %d, you changed %d", ErrConflict, id, r.Revision, rev)
	}
	prev, n := r.Revision, len(r.History)
	now := s.d.Clock().UTC()
	if err := fn(r, now); err != nil {
		return nil, err
	}
	if len(r.History) == n {
		return r, nil // nothing changed
	}
	r.Revision++
	r.Updated = now
	r.derive()
	if err := s.d.Store.Put(r, prev); err != nil {
		return nil, err
	}
	s.emit(r, n)
	return r.clone(), nil
}

// emit journals the history entries from index n on and tells OnChange.
func (s *Service) emit(r *Request, n int) {
	for _, h := range r.History[n:] {
		if s.d.Journal != nil {
			data, _ := json.Marshal(map[string]any{"request": r.ID, "site": r.Site, "state": r.State, "urgency": r.Urgency,
				"accession_number": r.AccessionNumber, "revision": r.Revision})
			study := ""
			if r.StudyLinked || h.Kind == KindReconciliation {
				study = r.StudyUID
				if h.Kind == KindReconciliation && r.Reconciliation != nil {
					study = r.Reconciliation.StudyUID
				}
			}
			s.d.Journal.AppendAsync(&journal.Event{Kind: h.Kind, User: h.User, StudyUID: study,
				Reason: "request " + r.ID + ": " + h.Reason, Data: data})
		}
		if s.d.OnChange != nil {
			s.d.OnChange(h.Kind, r.clone())
		}
	}
}

// KindViewed is journaled when a user opens a request (who, which, from
// where): it carries the patient's identity and clinical information.
const KindViewed = "request.viewed"

func (s *Service) viewed(a Actor, r *Request, addr string) {
	if s.d.Journal == nil {
		return
	}
	study := ""
	if r.StudyLinked {
		study = r.StudyUID
	}
	s.d.Journal.AppendAsync(&journal.Event{Kind: KindViewed, User: a.User, Addr: addr, StudyUID: study, Reason: "request " + r.ID + " viewed"})
}

// Patch changes fields of a request; nil fields are left as they are.
type Patch struct {
	Requester           *Physician    `json:"requester,omitempty"`
	Patient             *PatientPatch `json:"patient,omitempty"`
	ClinicalInformation *string       `json:"clinical_information,omitempty"`
	Question            *string       `json:"question,omitempty"`
	Urgency             *string       `json:"urgency,omitempty"`
	AccessionNumber     *string       `json:"accession_number,omitempty"`
	StudyUID            *string       `json:"study_instance_uid,omitempty"`
}

// PatientPatch changes patient fields. Changing the identity (INS or a
// trait) of a patient whose status is above PROV needs the status again
// (ins_status) with evidence: nothing keeps a status that was not checked
// for the new identity.
type PatientPatch struct {
	Name        *string          `json:"name,omitempty"`
	BirthName   *string          `json:"birth_name,omitempty"`
	FirstNames  *string          `json:"first_names,omitempty"`
	Sex         *string          `json:"sex,omitempty"`
	BirthDate   *string          `json:"birth_date,omitempty"`
	BirthPlace  *string          `json:"birth_place,omitempty"`
	LocalID     *string          `json:"local_id,omitempty"`
	INS         *string          `json:"ins,omitempty"`
	INSStatus   *identity.Status `json:"ins_status,omitempty"`
	INSEvidence string           `json:"ins_status_evidence,omitempty"`
}

// Update applies a patch. rev, when > 0, is the revision the caller
// changed.
func (s *Service) Update(ctx context.Context, a Actor, id string, p Patch, rev int) (*Request, error) {
	if err := mayWrite(a, "change"); err != nil {
		return nil, err
	}
	if p.AccessionNumber != nil || p.StudyUID != nil {
		s.matching.Add(1)
		defer s.matching.Add(-1)
	}
	return s.change(ctx, &a, id, rev, func(r *Request, now time.Time) error {
		prev := map[string]string{}
		set := func(field string, dst *string, v string) {
			if *dst != v {
				prev[field] = *dst
				*dst = v
			}
		}
		if q := p.Requester; q != nil {
			name, rpps := strings.TrimSpace(q.Name), strings.TrimSpace(q.RPPS)
			if name == "" {
				return &InputError{Field: "requester.name", Reason: "required: the requesting physician"}
			}
			if err := checkText("requester.name", name, maxShort); err != nil {
				return err
			}
			if err := checkRPPS(rpps); err != nil {
				return err
			}
			set("requester.name", &r.Requester.Name, name)
			set("requester.rpps", &r.Requester.RPPS, rpps)
		}
		if p.ClinicalInformation != nil {
			if err := checkText("clinical_information", *p.ClinicalInformation, maxLong); err != nil {
				return err
			}
			set("clinical_information", &r.ClinicalInformation, *p.ClinicalInformation)
		}
		if p.Question != nil {
			if strings.TrimSpace(*p.Question) == "" {
				return &InputError{Field: "question", Reason: "required: what the requester asks"}
			}
			if err := checkText("question", *p.Question, maxLong); err != nil {
				return err
			}
			set("question", &r.Question, *p.Question)
		}
		if p.Urgency != nil {
			u, err := parseUrgency(*p.Urgency)
			if err != nil {
				return err
			}
			if u != r.Urgency {
				prev["urgency"] = string(r.Urgency)
				r.Urgency = u
			}
		}
		if p.AccessionNumber != nil || p.StudyUID != nil {
			acc, study := r.AccessionNumber, r.StudyUID
			if p.AccessionNumber != nil {
				acc = strings.TrimSpace(*p.AccessionNumber)
			}
			if p.StudyUID != nil {
				study = strings.TrimSpace(*p.StudyUID)
			}
			if err := checkAccession("accession_number", acc); err != nil {
				return err
			}
			if err := checkUID("study_instance_uid", study); err != nil {
				return err
			}
			if (acc != r.AccessionNumber || study != r.StudyUID) && r.StudyLinked {
				return fmt.Errorf("%w: request %s is linked to study %s: unlink it (with a reason) before changing the accession number or study", ErrState, r.ID, r.StudyUID)
			}
			set("accession_number", &r.AccessionNumber, acc)
			set("study_instance_uid", &r.StudyUID, study)
		}
		if p.Patient != nil {
			if err := patchPatient(r, p.Patient, a.User, now, prev); err != nil {
				return err
			}
		}
		if len(prev) == 0 {
			return nil
		}
		fields := make([]string, 0, len(prev))
		for k := range prev {
			fields = append(fields, k)
		}
		slices.Sort(fields)
		r.History = append(r.History, Change{At: now, User: a.User, Kind: KindUpdated, Reason: "changed " + strings.Join(fields, ", "), Previous: prev})
		if hasKey(prev, "accession_number") || hasKey(prev, "study_instance_uid") {
			r.Reconciliation = nil // a candidate of the old keys; the new ones are matched now
			s.matchIndex(ctx, r, now)
		}
		return nil
	})
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// patchPatient applies a patient patch with the identity status rules.
func patchPatient(r *Request, pp *PatientPatch, user string, now time.Time, prev map[string]string) error {
	f := r.Patient.PatientFields
	for _, x := range []struct {
		dst *string
		v   *string
	}{{&f.Name, pp.Name}, {&f.BirthName, pp.BirthName}, {&f.FirstNames, pp.FirstNames}, {&f.Sex, pp.Sex},
		{&f.BirthDate, pp.BirthDate}, {&f.BirthPlace, pp.BirthPlace}, {&f.LocalID, pp.LocalID}, {&f.INS, pp.INS}} {
		if x.v != nil {
			*x.dst = *x.v
		}
	}
	f, err := f.normalize()
	if err != nil {
		return err
	}
	if f.Name == "" && f.BirthName == "" {
		return &InputError{Field: "patient.name", Reason: "required: the patient's name or birth name"}
	}
	old := r.Patient.PatientFields
	identityChanged := f.INS != old.INS || f.BirthName != old.BirthName || f.FirstNames != old.FirstNames ||
		f.Sex != old.Sex || f.BirthDate != old.BirthDate || f.BirthPlace != old.BirthPlace
	cur := r.Patient.INSStatus
	if identityChanged && cur > identity.PROV && pp.INSStatus == nil {
		return fmt.Errorf("%w: the patient's identity is %s: changing the INS or a trait needs the identity status declared again (ins_status, with ins_status_evidence)", ErrState, cur)
	}
	if err := checkText("patient.ins_status_evidence", pp.INSEvidence, maxShort); err != nil {
		return err
	}
	for _, x := range []struct{ name, o, n string }{{"patient.name", old.Name, f.Name}, {"patient.birth_name", old.BirthName, f.BirthName},
		{"patient.first_names", old.FirstNames, f.FirstNames}, {"patient.sex", old.Sex, f.Sex}, {"patient.birth_date", old.BirthDate, f.BirthDate},
		{"patient.birth_place", old.BirthPlace, f.BirthPlace}, {"patient.local_id", old.LocalID, f.LocalID}, {"patient.ins", old.INS, f.INS}} {
		if x.o != x.n {
			prev[x.name] = x.o
		}
	}
	if pp.INSStatus != nil {
		to := *pp.INSStatus
		ev := strings.TrimSpace(pp.INSEvidence)
		np := r.Patient
		np.PatientFields = f
		np.INSStatus = to
		switch {
		case identityChanged:
			// A changed identity is declared afresh, as at creation.
			if err := checkDeclared(np, ev); err != nil {
				return err
			}
		case to == cur:
			if ev == "" {
				r.Patient.PatientFields = f
				return nil // the same status, nothing to record
			}
		default:
			// Upgrades follow the Référentiel INS (identity.Upgrade):
			// evidence, no skipped step, the INS for RECUP and QUAL.
			if to > cur && ev == "" {
				return &InputError{Field: "patient.ins_status_evidence", Reason: fmt.Sprintf("%s → %s needs evidence (INSi call, identity document checked)", cur, to)}
			}
			id := identityOf(r.Patient)
			if err := id.Upgrade(to, ev); err != nil {
				return &InputError{Field: "patient.ins_status", Reason: err.Error()}
			}
		}
		prev["patient.ins_status"] = cur.String()
		r.Patient.INSStatus = to
		r.Patient.INSHistory = append(r.Patient.INSHistory, StatusChange{From: cur.String(), To: to.String(), User: user, At: now, Evidence: ev})
	}
	r.Patient.PatientFields = f
	return nil
}

// RecordConsent records the patient's consent (given or refused, how).
// A request without consent given is awaiting consent: it is not sent for
// reading.
func (s *Service) RecordConsent(ctx context.Context, a Actor, id string, in ConsentInput) (*Request, error) {
	if err := mayWrite(a, "record the consent of"); err != nil {
		return nil, err
	}
	c, err := in.check()
	if err != nil {
		return nil, err
	}
	return s.change(ctx, &a, id, 0, func(r *Request, now time.Time) error {
		prev := map[string]string{}
		if o := r.Consent; o != nil {
			if o.Status == c.Status && o.Method == c.Method && o.Text == c.Text {
				return nil
			}
			prev["consent.status"], prev["consent.method"] = o.Status, o.Method
			if o.Text != "" {
				prev["consent.text"] = o.Text
			}
		}
		r.Consent = &Consent{Status: c.Status, Method: c.Method, Text: c.Text, RecordedBy: a.User, RecordedAt: now}
		r.History = append(r.History, Change{At: now, User: a.User, Kind: KindConsent, Reason: "consent " + c.Status + " (" + c.Method + ")", Previous: prev})
		return nil
	})
}

// LinkInput names the study to link by hand, with why.
type LinkInput struct {
	StudyUID  string `json:"study_instance_uid,omitempty"`
	Accession string `json:"accession_number,omitempty"`
	Reason    string `json:"reason"`
}

// Link binds a stored study to the request by hand (after a
// reconciliation, or when the keys did not match), with a reason. A
// requester may link only a study its site sent.
func (s *Service) Link(ctx context.Context, a Actor, id string, in LinkInput) (*Request, error) {
	if err := mayWrite(a, "link"); err != nil {
		return nil, err
	}
	in.StudyUID, in.Accession, in.Reason = strings.TrimSpace(in.StudyUID), strings.TrimSpace(in.Accession), strings.TrimSpace(in.Reason)
	if in.Reason == "" {
		return nil, &InputError{Field: "reason", Reason: "required: why this study belongs to the request"}
	}
	if err := checkText("reason", in.Reason, maxShort); err != nil {
		return nil, err
	}
	if (in.StudyUID == "") == (in.Accession == "") {
		return nil, &InputError{Field: "study_instance_uid", Reason: "give the study_instance_uid or the accession_number of the study (one of them)"}
	}
	if err := checkUID("study_instance_uid", in.StudyUID); err != nil {
		return nil, err
	}
	if err := checkAccession("accession_number", in.Accession); err != nil {
		return nil, err
	}
	scope, err := s.scope(a)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, &a, id, 0, func(r *Request, now time.Time) error {
		var c *candidate
		if in.StudyUID != "" {
			st, err := s.d.Index.GetStudy(ctx, in.StudyUID)
			if err != nil {
				return fmt.Errorf("%w: no study %s is stored here", ErrNotFound, in.StudyUID)
			}
			c = s.candidateOfStudy(ctx, st)
		} else {
			cs := s.studiesByAccession(ctx, in.Accession)
			switch len(cs) {
			case 0:
				return fmt.Errorf("%w: no stored study has accession number %s", ErrNotFound, in.Accession)
			case 1:
				c = cs[0]
			default:
				return fmt.Errorf("%w: %d stored studies have accession number %s: link by study_instance_uid", ErrConflict, len(cs), in.Accession)
			}
		}
		if scope != "" && c.SiteKnown && c.Site != scope {
			return fmt.Errorf("%w: study %s was sent by another site: a requester links its site's studies only", ErrForbidden, c.Study)
		}
		if r.StudyLinked {
			if r.StudyUID == c.Study {
				return nil
			}
			return fmt.Errorf("%w: request %s is linked to study %s: unlink it first", ErrState, r.ID, r.StudyUID)
		}
		prev := map[string]string{"study_instance_uid": r.StudyUID, "accession_number": r.AccessionNumber}
		s.link(r, c, a.User, now)
		r.RejectedStudies = slices.DeleteFunc(r.RejectedStudies, func(x string) bool { return x == c.Study })
		r.History = append(r.History, Change{At: now, User: a.User, Kind: KindLinked, Reason: "study " + c.Study + " linked by hand", Note: in.Reason, Previous: prev})
		return nil
	})
}

// Unlink detaches the linked study, or rejects the candidate of a
// pending reconciliation, with a reason: the study is never linked
// automatically again.
func (s *Service) Unlink(ctx context.Context, a Actor, id, reason string) (*Request, error) {
	if err := mayWrite(a, "unlink"); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, &InputError{Field: "reason", Reason: "required: why the study does not belong to the request"}
	}
	if err := checkText("reason", reason, maxShort); err != nil {
		return nil, err
	}
	return s.change(ctx, &a, id, 0, func(r *Request, now time.Time) error {
		var study string
		switch {
		case r.StudyLinked:
			study = r.StudyUID
			prev := map[string]string{"study_instance_uid": r.StudyUID, "linked_by": r.LinkedBy}
			r.StudyLinked, r.LinkedBy, r.LinkedAt, r.StudyUID = false, "", nil, ""
			r.History = append(r.History, Change{At: now, User: a.User, Kind: KindReconciliation, Reason: "study " + study + " unlinked by hand", Note: reason, Previous: prev})
		case r.Reconciliation != nil:
			study = r.Reconciliation.StudyUID
			r.History = append(r.History, Change{At: now, User: a.User, Kind: KindReconciliation, Reason: "candidate study " + study + " rejected by hand", Note: reason})
			r.Reconciliation = nil
		default:
			return fmt.Errorf("%w: request %s has no linked study and no reconciliation pending", ErrState, r.ID)
		}
		if !slices.Contains(r.RejectedStudies, study) {
			r.RejectedStudies = append(r.RejectedStudies, study)
		}
		return nil
	})
}

// Cancel cancels a request with a reason. Cancelled is final; the request
// is kept.
func (s *Service) Cancel(ctx context.Context, a Actor, id, reason string) (*Request, error) {
	if err := mayWrite(a, "cancel"); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, &InputError{Field: "reason", Reason: "required: a request is cancelled with a reason"}
	}
	if err := checkText("reason", reason, maxLong); err != nil {
		return nil, err
	}
	return s.change(ctx, &a, id, 0, func(r *Request, now time.Time) error {
		prev := map[string]string{"state": string(r.State)}
		r.Cancelled, r.CancelReason = true, reason
		r.History = append(r.History, Change{At: now, User: a.User, Kind: KindCancelled, Reason: "cancelled (was " + string(r.State) + ")", Note: reason, Previous: prev})
		return nil
	})
}

// MarkReported marks the requests linked to study as reported (the report
// workflow calls it when the study's report is signed). It returns how
// many changed.
func (s *Service) MarkReported(ctx context.Context, study, user string) (int, error) {
	n := 0
	for _, r := range s.ForStudy(study) {
		if r.Cancelled || r.Reported {
			continue
		}
		_, err := s.change(ctx, nil, r.ID, 0, func(r *Request, now time.Time) error {
			if r.Reported || !r.StudyLinked || r.StudyUID != study {
				return nil
			}
			r.Reported = true
			t := now
			r.ReportedAt = &t
			r.History = append(r.History, Change{At: now, User: or(user, SystemUser), Kind: KindUpdated, Reason: "study " + study + " reported"})
			return nil
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
