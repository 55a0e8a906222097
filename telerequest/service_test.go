package telerequest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/identity"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/memindex"
)

const testINS = "184127645108946" // well-formed (key 46)

var (
	admin      = Actor{User: "root", Role: auth.RoleAdmin}
	nordReq    = Actor{User: "urg-nord", Role: auth.RoleRequester}
	sudReq     = Actor{User: "urg-sud", Role: auth.RoleRequester}
	homeless   = Actor{User: "nobody", Role: auth.RoleRequester}
	radiologue = Actor{User: "cmartin", Role: auth.RoleRadiologist}
	modality   = Actor{User: "ct", Role: auth.RoleModality}
)

type fakeDirectory struct{ cfg *config.Config }

func (d fakeDirectory) SiteFor(ae, u string) (string, config.Site, bool) { return d.cfg.SiteFor(ae, u) }
func (d fakeDirectory) Site(id string) (config.Site, bool) {
	s, ok := d.cfg.Sites[id]
	return s, ok
}

type env struct {
	s   *Service
	ix  storage.Index
	dir string
	seq uint64
	mu  sync.Mutex
	evs []string // OnChange kinds
	now time.Time
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{ix: memindex.New(), dir: t.TempDir(), now: time.Date(2026, 11, 23, 3, 10, 0, 0, time.UTC)}
	e.s = e.open(t)
	return e
}

func (e *env) open(t testing.TB) *Service {
	t.Helper()
	st, err := OpenStore(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Sites: map[string]config.Site{
		"nord": {Organisation: "chn", CallingAEs: []string{"CT_NORD"}, Users: []string{"urg-nord"}},
		"sud":  {Organisation: "chs", CallingAEs: []string{"CT_SUD"}, Users: []string{"urg-sud"}},
	}}
	return New(Deps{Store: st, Index: e.ix, Directory: fakeDirectory{cfg}, Logger: slog.New(slog.NewTextHandler(ioDiscard{}, nil)),
		Clock: func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); e.now = e.now.Add(time.Second); return e.now }, Buffer: 4,
		OnChange: func(kind string, r *Request) { e.mu.Lock(); e.evs = append(e.evs, kind); e.mu.Unlock() }})
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

// store indexes one instance of a study as sent by ae.
func (e *env) store(t testing.TB, study, acc, pid, name, birth, ae string) *storage.Instance {
	t.Helper()
	e.seq++
	in := &storage.Instance{SOPInstanceUID: fmt.Sprintf("1.2.3.9.%d", e.seq), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SeriesInstanceUID: study + ".1",
		StudyInstanceUID: study, PatientID: pid, ReceivedAt: e.now, Source: storage.Source{Channel: "dimse", CallingAE: ae},
		Attrs: map[string]string{"00080050": acc, "00100010": name, "00100020": pid, "00100030": birth, "00100040": "F", "00080060": "CT", "0020000D": study}}
	if err := e.ix.PutInstance(context.Background(), in, e.seq); err != nil {
		t.Fatal(err)
	}
	return in
}

func newRequest(acc string) NewRequest {
	return NewRequest{
		Requester: Physician{Name: "Dr Jean URGENTISTE", RPPS: "10009876543"},
		Patient: PatientInput{PatientFields: PatientFields{Name: "Dupont", BirthName: "Dupont", FirstNames: "Jeanne Marie", Sex: "F",
			BirthDate: "1980-01-15", BirthPlace: "75056", LocalID: "IPP123"}},
		ClinicalInformation: "Déficit brachio-facial gauche depuis 1 h.", Question: "AVC ischémique ? Thrombolyse ?",
		Urgency: "STAT", AccessionNumber: acc,
	}
}

func given() *ConsentInput { return &ConsentInput{Status: "given", Method: "oral"} }

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

func wantInput(t *testing.T, err error, field, what string) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) || ie.Field != field {
		t.Fatalf("%s: got %v, want a 400 on %s", what, err, field)
	}
}

func TestStateMachine(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	r, err := e.s.Create(ctx, nordReq, newRequest("ACC-1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.State != AwaitingConsent || !r.AwaitingConsent || r.ReadyForReading || r.Site != "nord" || r.Requester.User != "urg-nord" || r.Patient.BirthDate != "19800115" {
		t.Fatalf("created: %+v", r)
	}
	r, err = e.s.RecordConsent(ctx, nordReq, r.ID, ConsentInput{Status: "given", Method: "written"})
	if err != nil || r.State != Open || r.Consent.RecordedBy != "urg-nord" || r.Consent.RecordedAt.IsZero() || r.ReadyForReading {
		t.Fatalf("consent given: %v %+v", err, r)
	}
	e.s.Match(ctx, e.store(t, "1.2.3.1", "ACC-1", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_NORD"))
	r, _ = e.s.Get(nordReq, r.ID)
	if r.State != Linked || !r.StudyLinked || r.StudyUID != "1.2.3.1" || r.LinkedBy != "auto" || !r.ReadyForReading {
		t.Fatalf("after the images: %+v", r)
	}
	if n, err := e.s.MarkReported(ctx, "1.2.3.1", "cmartin"); n != 1 || err != nil {
		t.Fatalf("MarkReported: %d %v", n, err)
	}
	r, _ = e.s.Get(nordReq, r.ID)
	if r.State != Reported || r.ReadyForReading {
		t.Fatalf("reported: %+v", r)
	}
	// Cancel: reason required; final.
	_, err = e.s.Cancel(ctx, nordReq, r.ID, "  ")
	wantInput(t, err, "reason", "cancel without reason")
	r, err = e.s.Cancel(ctx, nordReq, r.ID, "patient transféré")
	if err != nil || r.State != Cancelled || r.CancelReason != "patient transféré" || r.AwaitingConsent {
		t.Fatalf("cancel: %v %+v", err, r)
	}
	file := filepath.Join(e.dir, r.ID+".json")
	before, _ := os.ReadFile(file)
	q := "autre"
	for what, err := range map[string]error{
		"cancel again": func() error { _, err := e.s.Cancel(ctx, nordReq, r.ID, "x"); return err }(),
		"patch":        func() error { _, err := e.s.Update(ctx, nordReq, r.ID, Patch{Question: &q}, 0); return err }(),
		"consent": func() error {
			_, err := e.s.RecordConsent(ctx, nordReq, r.ID, ConsentInput{Status: "refused", Method: "oral"})
			return err
		}(),
		"unlink": func() error { _, err := e.s.Unlink(ctx, admin, r.ID, "x"); return err }(),
	} {
		wantErr(t, err, ErrState, what+" after cancel")
	}
	after, _ := os.ReadFile(file)
	if string(before) != string(after) {
		t.Fatal("a refused change rewrote the record")
	}
	kinds := []string{}
	for _, h := range r.History {
		kinds = append(kinds, h.Kind)
	}
	if got := strings.Join(kinds, " "); got != "request.created request.consent request.linked request.updated request.cancelled" {
		t.Fatalf("history: %s", got)
	}
	if got := strings.Join(e.evs, " "); got != "request.created request.consent request.linked request.updated request.cancelled" {
		t.Fatalf("OnChange: %s", got)
	}
	// Survives a restart.
	s2 := e.open(t)
	r2, err := s2.Get(admin, r.ID)
	if err != nil || r2.State != Cancelled || len(r2.History) != 5 || r2.Revision != r.Revision {
		t.Fatalf("after reopening: %v %+v", err, r2)
	}
}

func TestConsentRules(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	in := newRequest("")
	in.Consent = &ConsentInput{Status: "given", Method: "other"}
	_, err := e.s.Create(ctx, nordReq, in)
	wantInput(t, err, "consent.text", "consent other without text")
	in.Consent = &ConsentInput{Status: "maybe", Method: "oral"}
	_, err = e.s.Create(ctx, nordReq, in)
	wantInput(t, err, "consent.status", "consent maybe")
	in.Consent = &ConsentInput{Status: "given"}
	_, err = e.s.Create(ctx, nordReq, in)
	wantInput(t, err, "consent.method", "consent without method")
	if n := e.s.d.Store.Len(); n != 0 {
		t.Fatalf("%d requests after refused creations", n)
	}
	in.Consent = &ConsentInput{Status: "given", Method: "other", Text: "par la personne de confiance (patient aphasique)"}
	r, err := e.s.Create(ctx, nordReq, in)
	if err != nil || r.State != Open || r.Consent.Text == "" {
		t.Fatalf("consent other with text: %v %+v", err, r)
	}
	rev := r.Revision
	if r, err = e.s.RecordConsent(ctx, nordReq, r.ID, ConsentInput{Status: "given", Method: "other", Text: "par la personne de confiance (patient aphasique)"}); err != nil || r.Revision != rev {
		t.Fatalf("the same consent again: %v, revision %d → %d", err, rev, r.Revision)
	}
	r, err = e.s.RecordConsent(ctx, nordReq, r.ID, ConsentInput{Status: "refused", Method: "oral"})
	if err != nil || r.State != AwaitingConsent || !r.AwaitingConsent || r.History[len(r.History)-1].Previous["consent.status"] != "given" {
		t.Fatalf("consent withdrawn: %v %+v", err, r)
	}
	_, err = e.s.RecordConsent(ctx, radiologue, r.ID, ConsentInput{Status: "given", Method: "oral"})
	wantErr(t, err, ErrForbidden, "a radiologist recording consent")
}

func TestINSStatus(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	qual := identity.QUAL
	recup := identity.RECUP
	prov := identity.PROV
	in := newRequest("")
	in.Patient.INS = "184127645108947"
	_, err := e.s.Create(ctx, nordReq, in)
	wantInput(t, err, "patient.ins", "a wrong INS key")
	in.Patient.INS = ""
	in.Patient.INSStatus = &qual
	in.Patient.INSEvidence = "INSi + CNI"
	_, err = e.s.Create(ctx, nordReq, in)
	wantInput(t, err, "patient.ins", "QUAL without an INS")
	in.Patient.INS = testINS
	in.Patient.INSEvidence = ""
	_, err = e.s.Create(ctx, nordReq, in)
	wantInput(t, err, "patient.ins_status_evidence", "QUAL without evidence")

	in.Patient.INSStatus = nil
	r, err := e.s.Create(ctx, nordReq, in)
	if err != nil || r.Patient.INSStatus != identity.PROV || len(r.Patient.INSHistory) != 1 {
		t.Fatalf("PROV with an INS: %v %+v", err, r.Patient)
	}
	// No step skipped, no upgrade without evidence.
	_, err = e.s.Update(ctx, nordReq, r.ID, Patch{Patient: &PatientPatch{INSStatus: &qual, INSEvidence: "INSi"}}, 0)
	wantInput(t, err, "patient.ins_status", "PROV → QUAL")
	_, err = e.s.Update(ctx, nordReq, r.ID, Patch{Patient: &PatientPatch{INSStatus: &recup}}, 0)
	wantInput(t, err, "patient.ins_status_evidence", "PROV → RECUP without evidence")
	r, err = e.s.Update(ctx, nordReq, r.ID, Patch{Patient: &PatientPatch{INSStatus: &recup, INSEvidence: "INSi call 42"}}, 0)
	if err != nil || r.Patient.INSStatus != identity.RECUP {
		t.Fatalf("PROV → RECUP: %v", err)
	}
	r, err = e.s.Update(ctx, nordReq, r.ID, Patch{Patient: &PatientPatch{INSStatus: &qual, INSEvidence: "CNI checked"}}, 0)
	if err != nil || r.Patient.INSStatus != identity.QUAL {
		t.Fatalf("RECUP → QUAL: %v", err)
	}
	h := r.Patient.INSHistory[len(r.Patient.INSHistory)-1]
	if h.From != "RECUP" || h.To != "QUAL" || h.User != "urg-nord" || h.Evidence != "CNI checked" {
		t.Fatalf("status history: %+v", h)
	}
	// A qualified identity's traits do not change silently.
	bd := "19800116"
	_, err = e.s.Update(ctx, nordReq, r.ID, Patch{Patient: &PatientPatch{BirthDate: &bd}}, 0)
	wantErr(t, err, ErrState, "a trait of a QUAL identity changed without the status")
	r, err = e.s.Update(ctx, nordReq, r.ID, Patch{Patient: &PatientPatch{BirthDate: &bd, INSStatus: &prov, INSEvidence: "date corrigée, identité à revérifier"}}, 0)
	if err != nil || r.Patient.INSStatus != identity.PROV || r.Patient.BirthDate != bd {
		t.Fatalf("trait changed with a downgrade: %v %+v", err, r.Patient)
	}
	last := r.History[len(r.History)-1]
	if last.Kind != KindUpdated || last.Previous["patient.birth_date"] != "19800115" || last.Previous["patient.ins_status"] != "QUAL" {
		t.Fatalf("update history: %+v", last)
	}
	bad := "1841276451089"
	_, err = e.s.Update(ctx, nordReq, r.ID, Patch{Patient: &PatientPatch{INS: &bad}}, 0)
	wantInput(t, err, "patient.ins", "a malformed INS in a patch")
}

func TestSiteScoping(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	rn, err := e.s.Create(ctx, nordReq, newRequest("N1"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := e.s.Create(ctx, sudReq, newRequest("S1"))
	if err != nil || rs.Site != "sud" {
		t.Fatal(err)
	}
	in := newRequest("X")
	in.Site = "sud"
	_, err = e.s.Create(ctx, nordReq, in)
	wantErr(t, err, ErrForbidden, "a requester creating for another site")
	_, err = e.s.Create(ctx, homeless, newRequest("X"))
	wantErr(t, err, ErrForbidden, "a requester of no site")
	_, err = e.s.Create(ctx, radiologue, newRequest("X"))
	wantErr(t, err, ErrForbidden, "a radiologist creating")
	_, err = e.s.Create(ctx, modality, newRequest("X"))
	wantErr(t, err, ErrForbidden, "a modality creating")
	_, err = e.s.Create(ctx, admin, newRequest("X"))
	wantInput(t, err, "site", "an admin without a site")
	in.Site = "ouest"
	_, err = e.s.Create(ctx, admin, in)
	wantInput(t, err, "site", "an unknown site")

	_, err = e.s.Get(sudReq, rn.ID)
	wantErr(t, err, ErrNotFound, "another site's request")
	_, err = e.s.Cancel(ctx, sudReq, rn.ID, "pas à nous")
	wantErr(t, err, ErrNotFound, "cancelling another site's request")
	_, err = e.s.RecordConsent(ctx, sudReq, rn.ID, *given())
	wantErr(t, err, ErrNotFound, "consent on another site's request")
	list, err := e.s.List(nordReq, Filter{})
	if err != nil || len(list) != 1 || list[0].ID != rn.ID {
		t.Fatalf("the nord requester's list: %v %d", err, len(list))
	}
	_, err = e.s.List(nordReq, Filter{Site: "sud"})
	wantErr(t, err, ErrForbidden, "listing another site")
	for _, a := range []Actor{admin, radiologue} {
		if list, err := e.s.List(a, Filter{}); err != nil || len(list) != 2 {
			t.Fatalf("%s sees %d requests (%v), want 2", a.Role, len(list), err)
		}
	}
	if list, _ := e.s.List(admin, Filter{Site: "sud", State: AwaitingConsent}); len(list) != 1 || list[0].ID != rs.ID {
		t.Fatalf("filter by site and state: %d", len(list))
	}
	if list, _ := e.s.List(admin, Filter{Accession: "N1"}); len(list) != 1 || list[0].ID != rn.ID {
		t.Fatalf("filter by accession: %d", len(list))
	}
}

func TestRequestFirstThenImages(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	in := newRequest("ACC-7")
	in.Consent = given()
	r, err := e.s.Create(ctx, nordReq, in)
	if err != nil || r.State != Open {
		t.Fatal(err)
	}
	// Another site's study with the same accession is not linked.
	e.s.Match(ctx, e.store(t, "1.2.3.70", "ACC-7", "IPP123", "DUPONT^Jeanne", "19800115", "CT_SUD"))
	r, _ = e.s.Get(admin, r.ID)
	if r.StudyLinked || !r.ReconciliationNeeded || r.Reconciliation.StudyUID != "1.2.3.70" || !strings.Contains(strings.Join(r.Reconciliation.Reasons, ";"), "site sud") {
		t.Fatalf("another site's accession: %+v", r)
	}
	// The right one is, and the reconciliation is cleared.
	e.s.Match(ctx, e.store(t, "1.2.3.71", "ACC-7", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_NORD"))
	r, _ = e.s.Get(admin, r.ID)
	if !r.StudyLinked || r.StudyUID != "1.2.3.71" || r.ReconciliationNeeded || r.State != Linked {
		t.Fatalf("the site's study: %+v", r)
	}
	rev := r.Revision
	e.s.Match(ctx, e.store(t, "1.2.3.71", "ACC-7", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_NORD"))
	if r, _ = e.s.Get(admin, r.ID); r.Revision != rev {
		t.Fatal("a second instance of the linked study changed the request")
	}
	if got := e.s.ForStudy("1.2.3.71"); len(got) != 1 {
		t.Fatalf("ForStudy: %d", len(got))
	}
}

func TestImagesFirstThenRequest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.store(t, "1.2.3.80", "ACC-8", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_NORD")
	r, err := e.s.Create(ctx, nordReq, newRequest("ACC-8"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.StudyLinked || r.StudyUID != "1.2.3.80" || r.State != AwaitingConsent || r.ReadyForReading {
		t.Fatalf("images first: %+v", r)
	}
	if ok, known, why := e.s.ReadingAllowed("1.2.3.80"); ok || !known || !strings.Contains(why, "awaiting") {
		t.Fatalf("reading allowed without consent: %v %v %q", ok, known, why)
	}
	if _, known, _ := e.s.ReadingAllowed("1.2.3.404"); known {
		t.Fatal("a study without request is known")
	}
	if r, _ = e.s.RecordConsent(ctx, nordReq, r.ID, *given()); r.State != Linked || !r.ReadyForReading {
		t.Fatalf("consent after the link: %+v", r)
	}
	if ok, _, _ := e.s.ReadingAllowed("1.2.3.80"); !ok {
		t.Fatalf("consent after the link: %+v", r)
	}
	// By Study Instance UID too, learning the accession number.
	e.store(t, "1.2.3.81", "ACC-81", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_NORD")
	in := newRequest("")
	in.StudyUID = "1.2.3.81"
	r, err = e.s.Create(ctx, nordReq, in)
	if err != nil || !r.StudyLinked || r.AccessionNumber != "ACC-81" {
		t.Fatalf("by study UID: %v %+v", err, r)
	}
}

func TestDifferentPatientNeedsReconciliation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	in := newRequest("ACC-9")
	in.Consent = given()
	r, err := e.s.Create(ctx, nordReq, in)
	if err != nil {
		t.Fatal(err)
	}
	e.s.Match(ctx, e.store(t, "1.2.3.90", "ACC-9", "IPP555", "MARTIN^Paul", "19500303", "CT_NORD"))
	r, _ = e.s.Get(admin, r.ID)
	if r.StudyLinked || r.State != Open || !r.ReconciliationNeeded {
		t.Fatalf("a different patient: %+v", r)
	}
	why := strings.Join(r.Reconciliation.Reasons, "; ")
	for _, w := range []string{"patient id differs", "name differs", "birth date differs"} {
		if !strings.Contains(why, w) {
			t.Errorf("reasons %q lack %q", why, w)
		}
	}
	if strings.Contains(r.History[len(r.History)-1].Reason, "MARTIN") || strings.Contains(why, "IPP555") {
		t.Fatalf("the reconciliation reason carries patient data: %q", why)
	}
	rev := r.Revision
	e.s.Sweep(ctx) // the same flag is not raised twice
	if r, _ = e.s.Get(admin, r.ID); r.Revision != rev {
		t.Fatalf("the sweep raised the flag again (revision %d → %d)", rev, r.Revision)
	}
	// A human rejects it: never proposed again.
	_, err = e.s.Unlink(ctx, nordReq, r.ID, "")
	wantInput(t, err, "reason", "unlink without reason")
	r, err = e.s.Unlink(ctx, nordReq, r.ID, "autre patient (homonymie d'accession)")
	if err != nil || r.ReconciliationNeeded || len(r.RejectedStudies) != 1 {
		t.Fatalf("rejected: %v %+v", err, r)
	}
	e.s.Sweep(ctx)
	if r, _ = e.s.Get(admin, r.ID); r.ReconciliationNeeded || r.StudyLinked {
		t.Fatalf("a rejected study came back: %+v", r)
	}
	// A human links it (the images were sent under a temporary identity).
	_, err = e.s.Link(ctx, nordReq, r.ID, LinkInput{StudyUID: "1.2.3.90"})
	wantInput(t, err, "reason", "link without reason")
	_, err = e.s.Link(ctx, nordReq, r.ID, LinkInput{StudyUID: "1.2.3.404", Reason: "x"})
	wantErr(t, err, ErrNotFound, "linking a study not stored")
	r, err = e.s.Link(ctx, radiologue, r.ID, LinkInput{Accession: "ACC-9", Reason: "identité provisoire aux urgences, vérifiée par téléphone"})
	if err != nil || !r.StudyLinked || r.LinkedBy != "cmartin" || r.State != Linked || len(r.RejectedStudies) != 0 {
		t.Fatalf("linked by hand: %v %+v", err, r)
	}
	// A requester may not link another site's study.
	e.store(t, "1.2.3.91", "ACC-91", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_SUD")
	r, _ = e.s.Unlink(ctx, nordReq, r.ID, "erreur")
	_, err = e.s.Link(ctx, nordReq, r.ID, LinkInput{StudyUID: "1.2.3.91", Reason: "x"})
	wantErr(t, err, ErrForbidden, "a requester linking another site's study")
}

func TestAccessionKeyChangeMatches(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.store(t, "1.2.3.100", "ACC-10", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_NORD")
	r, err := e.s.Create(ctx, nordReq, newRequest("ACC-1O")) // a typo
	if err != nil || r.StudyLinked {
		t.Fatal(err)
	}
	acc := "ACC-10"
	r, err = e.s.Update(ctx, nordReq, r.ID, Patch{AccessionNumber: &acc}, r.Revision)
	if err != nil || !r.StudyLinked || r.StudyUID != "1.2.3.100" {
		t.Fatalf("corrected accession: %v %+v", err, r)
	}
	other := "ACC-11"
	_, err = e.s.Update(ctx, nordReq, r.ID, Patch{AccessionNumber: &other}, 0)
	wantErr(t, err, ErrState, "changing the accession of a linked request")
	_, err = e.s.Update(ctx, nordReq, r.ID, Patch{AccessionNumber: &other}, 1)
	wantErr(t, err, ErrConflict, "a stale revision")
}

func TestOnInstanceNeverBlocksAndSweepCatchesUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t)
	var ids []string
	for i := 0; i < 10; i++ {
		in := newRequest(fmt.Sprintf("B%d", i))
		in.Consent = given()
		r, err := e.s.Create(ctx, nordReq, in)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	// Nothing reads the hand-off yet (buffer 4): OnInstance must not block.
	start := time.Now()
	for i := 0; i < 10; i++ {
		e.s.OnInstance(e.store(t, fmt.Sprintf("1.2.3.5%d", i), fmt.Sprintf("B%d", i), "IPP123", "DUPONT^Jeanne", "19800115", "CT_NORD"))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("OnInstance took %s", d)
	}
	if e.s.Dropped() == 0 {
		t.Fatal("10 instances in a buffer of 4 and nothing dropped")
	}
	done := make(chan struct{})
	go func() { defer close(done); e.s.Run(ctx, time.Hour) }()
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			r, _ := e.s.Get(admin, id)
			if r.StudyLinked {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %s (%s) never linked", id, r.AccessionNumber)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	<-done
}

// FuzzHandler sends arbitrary bodies to every writing route as a
// requester of the request's site: the answer is never a 5xx, and a
// refused request changes nothing.
func FuzzHandler(f *testing.F) {
	f.Add(0, `{"requester":{"name":"Dr X"},"patient":{"name":"Dupont","ins":"184127645108946","ins_status":"QUAL","ins_status_evidence":"INSi"},"question":"AVC ?","urgency":"STAT","consent":{"status":"given","method":"oral"}}`)
	f.Add(1, `{"question":"", "revision": 1}`)
	f.Add(1, `{"patient":{"ins_status":"QUAL"}}`)
	f.Add(1, `{"patient":{"birth_date":"1980-02-30"}}`)
	f.Add(2, `{"status":"given","method":"other"}`)
	f.Add(3, `{"study_instance_uid":"1.2..3","reason":"x"}`)
	f.Add(3, `{"accession_number":"ACC-F","reason":"x"}`)
	f.Add(4, `{"reason":""}`)
	f.Add(5, `{"reason":"\u0000"}`)
	f.Add(0, "{\"site\": \"\x00\"}")
	f.Add(1, `{"urgency":"later"} {}`)
	e := newEnv(f)
	e.store(f, "1.2.3.200", "ACC-F", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_SUD")
	r, err := e.s.Create(context.Background(), nordReq, newRequest("ACC-F"))
	if err != nil {
		f.Fatal(err)
	}
	h := e.s.Handler(func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
		return auth.Principal{User: nordReq.User, Role: nordReq.Role}, true
	})
	routes := []struct{ method, suffix string }{
		{"POST", ""}, {"PATCH", ""}, {"POST", "/consent"}, {"POST", "/link"}, {"POST", "/unlink"}, {"POST", "/cancel"},
	}
	f.Fuzz(func(t *testing.T, route int, body string) {
		if cur, _ := e.s.Get(admin, r.ID); len(cur.History) > 50 || cur.Cancelled {
			// A fresh request now and then: the record's history grows
			// with every accepted change.
			if r, err = e.s.Create(context.Background(), nordReq, newRequest("ACC-F")); err != nil {
				t.Fatal(err)
			}
		}
		rt := routes[uint(route)%uint(len(routes))]
		path := "/api/requests"
		if uint(route)%uint(len(routes)) != 0 {
			path += "/" + r.ID + rt.suffix
		}
		file := filepath.Join(e.dir, r.ID+".json")
		before, _ := os.ReadFile(file)
		n := e.s.d.Store.Len()
		rq := httptest.NewRequest(rt.method, path, strings.NewReader(body))
		rq.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, rq)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, path, body, w.Code, w.Body)
		}
		if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: answer is %s", rt.method, path, w.Header().Get("Content-Type"))
		}
		if w.Code >= 400 {
			after, _ := os.ReadFile(file)
			if string(after) != string(before) || e.s.d.Store.Len() != n {
				t.Fatalf("refused (%d %s) but something changed", w.Code, w.Body)
			}
		}
	})
}

func TestHandlerStatuses(t *testing.T) {
	e := newEnv(t)
	r, err := e.s.Create(context.Background(), nordReq, newRequest("ACC-H"))
	if err != nil {
		t.Fatal(err)
	}
	as := func(a Actor) http.Handler {
		return e.s.Handler(func(w http.ResponseWriter, rq *http.Request, perm auth.Permission) (auth.Principal, bool) {
			return auth.Principal{User: a.User, Role: a.Role}, true
		})
	}
	for _, tc := range []struct {
		who          Actor
		method, path string
		ctype, body  string
		want         int
	}{
		{nordReq, "GET", "/api/requests/" + r.ID, "", "", 200},
		{sudReq, "GET", "/api/requests/" + r.ID, "", "", 404},
		{radiologue, "GET", "/api/requests/" + r.ID, "", "", 200},
		{nordReq, "GET", "/api/requests/rq-nope", "", "", 404},
		{nordReq, "GET", "/api/requests/..%2F..%2Fetc%2Fpasswd", "", "", 404},
		{nordReq, "GET", "/api/requests?state=later", "", "", 400},
		{sudReq, "GET", "/api/requests?site=nord", "", "", 403},
		{homeless, "GET", "/api/requests", "", "", 403},
		{nordReq, "POST", "/api/requests/" + r.ID + "/cancel", "application/json", `{}`, 400},
		{nordReq, "POST", "/api/requests/" + r.ID + "/cancel", "text/plain", `{"reason":"x"}`, 415},
		{nordReq, "POST", "/api/requests/" + r.ID + "/consent", "application/json", `{"status":"given","method":"oral","extra":1}`, 400},
		{radiologue, "POST", "/api/requests", "application/json", `{}`, 403},
		{nordReq, "POST", "/api/requests", "application/json", `{"requester":{"name":"Dr X"},"patient":{"name":"Y"}}`, 400},
		{nordReq, "DELETE", "/api/requests/" + r.ID, "", "", 405},
		{nordReq, "POST", "/api/requests/" + r.ID + "/unlink", "application/json", `{"reason":"x"}`, 409},
		{nordReq, "POST", "/api/requests/" + r.ID + "/link", "application/json", `{"accession_number":"ACC-H","reason":"x"}`, 404},
		{nordReq, "PATCH", "/api/requests/" + r.ID, "application/json", `{"revision": 99, "question": "?"}`, 409},
		{nordReq, "POST", "/api/requests/" + r.ID + "/cancel", "application/json", `{"reason":"doublon"}`, 200},
		{nordReq, "PATCH", "/api/requests/" + r.ID, "application/json", `{"question": "?"}`, 409},
	} {
		rq := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			rq.Header.Set("Content-Type", tc.ctype)
		}
		w := httptest.NewRecorder()
		as(tc.who).ServeHTTP(w, rq)
		if w.Code != tc.want || !strings.Contains(w.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s %s %s as %s: %d %s, want %d", tc.method, tc.path, tc.body, tc.who.User, w.Code, w.Body, tc.want)
		} else if w.Code >= 400 && !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("%s %s: %d without an error: %s", tc.method, tc.path, w.Code, w.Body)
		}
	}
}

// hookIndex runs a hook (once) inside StudiesBy: an instance indexed
// while a request is being recorded.
type hookIndex struct {
	storage.Index
	once sync.Once
	hook func()
}

func (h *hookIndex) StudiesBy(ctx context.Context, key storage.StudyKey, r storage.ValueRange, fn func(*storage.Study) error) error {
	err := h.Index.StudiesBy(ctx, key, r, fn)
	h.once.Do(h.hook)
	return err
}

func TestInstanceDuringCreateIsNotMissed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t)
	hi := &hookIndex{Index: e.ix}
	e.s.d.Index = hi
	hi.hook = func() {
		// The index search is done (it found nothing); the instance is
		// indexed now and handed over before the request is stored.
		e.s.OnInstance(e.store(t, "1.2.3.300", "ACC-R", "IPP123", "DUPONT^Jeanne Marie", "19800115", "CT_NORD"))
	}
	done := make(chan struct{})
	go func() { defer close(done); e.s.Run(ctx, time.Hour) }()
	time.Sleep(20 * time.Millisecond) // the start sweep is over
	r, err := e.s.Create(ctx, nordReq, newRequest("ACC-R"))
	if err != nil || r.StudyLinked {
		t.Fatalf("create: %v, linked %v (the hook stores the study after the search)", err, r != nil && r.StudyLinked)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if got, _ := e.s.Get(admin, r.ID); got.StudyLinked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the instance stored while the request was recorded was missed (the sweep is an hour away)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestNamesCompareFolded(t *testing.T) {
	for _, tc := range []struct {
		req, img []string
		same     bool
	}{
		{[]string{"Lefèvre-Dupré"}, []string{"LEFEVRE DUPRE"}, true},
		{[]string{"MARTIN"}, []string{"MARTIN DUPONT"}, true}, // composite name
		{[]string{"Œuvray"}, []string{"OEUVRAY"}, true},
		{[]string{"DUPONT", "DURAND"}, []string{"DURAND"}, true}, // used name vs birth name
		{[]string{"DUPONT"}, []string{"MARTIN"}, false},
		{[]string{"DUPONT"}, []string{""}, true}, // unknown: not clearly different
	} {
		if got := sameName(tc.req, tc.img); got != tc.same {
			t.Errorf("sameName(%q, %q) = %v", tc.req, tc.img, got)
		}
	}
	if !shareWord("Jeanne Marie", "MARIE") || shareWord("Jeanne", "Paul") || !shareWord("Hélène", "HELENE") {
		t.Error("first names")
	}
}
