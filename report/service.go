package report

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/cda"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/identity"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
)

// Directory tells who is who (package directory implements it).
type Directory interface {
	Organisation(id string) (config.Organisation, bool)
	ProfessionalByUser(user string) (id string, p config.Professional, ok bool)
	SiteFor(callingAE, user string) (id string, s config.Site, ok bool)
	Site(id string) (config.Site, bool)
}

// Deps are what the service works with.
type Deps struct {
	Store     *Store
	Index     storage.Index
	Directory Directory
	// Settings returns the current reports configuration.
	Settings func() config.Reports
	// WADOBase is the DICOMweb base URL (…/dicom-web) the documents
	// reference instances under ("" for none).
	WADOBase string
	// StoreInstance stores a Part 10 file Relais built as an instance of
	// its study (node.StoreGenerated); storing the same SOP Instance UID
	// twice must be harmless.
	StoreInstance func(ctx context.Context, file []byte, user string) error
	// Deliver queues the instance for the destinations, durably and
	// idempotently (the same call twice queues it once). Nil: reports are
	// kept and served, not sent.
	Deliver func(ctx context.Context, study, series, sop string, dests []string) error
	// Render makes the PDF of a report; Level1 wraps a PDF in a CDA level 1
	// document. Nil: level 1 and PDF are not available.
	Render func(*cda.Report) ([]byte, error)
	Level1 func(*cda.Report, []byte) ([]byte, error)
	// SiteOfUser returns the site a requester acts for (directory sites'
	// users): requesters see the reports of their site's studies only.
	// Nil: requesters see none.
	SiteOfUser func(user string) (string, bool)
	// OnChange, if set, is told of every change of a report after it is
	// durable: kind is the journal kind (report.created, report.edited,
	// report.signed, report.corrected, report.published). It must not
	// block (the worklist uses it).
	OnChange func(kind string, r *Report)
	Journal  *journal.Journal
	Logger   *slog.Logger
	Clock    func() time.Time
}

// Service is the report workflow.
type Service struct {
	d     Deps
	locks sync.Map // report id → *sync.Mutex
}

// New returns the service.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Settings == nil {
		d.Settings = func() config.Reports { return config.Reports{} }
	}
	return &Service{d: d}
}

func (s *Service) lock(id string) func() {
	m, _ := s.locks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Get returns a report.
func (s *Service) Get(id string) (*Report, error) { return s.d.Store.Get(id) }

// List returns the reports of a study ("" for all), newest first.
func (s *Service) List(study string) []*Report { return s.d.Store.List(study) }

// Document returns a document of a version (0: the last one).
func (s *Service) Document(id string, version int, name string) ([]byte, *Version, error) {
	r, err := s.d.Store.Get(id)
	if err != nil {
		return nil, nil, err
	}
	if version == 0 {
		if v := r.Last(); v != nil {
			version = v.Number
		}
	}
	v := r.Version(version)
	if v == nil {
		if len(r.Versions) == 0 {
			return nil, nil, fmt.Errorf("%w: report %s is a draft: it has no document until it is signed", ErrNotFound, id)
		}
		return nil, nil, fmt.Errorf("%w: report %s has no version %d", ErrNotFound, id, version)
	}
	b, err := s.d.Store.Document(id, version, name)
	return b, v, err
}

func newReportID() string {
	var b [10]byte
	rand.Read(b[:])
	return "r-" + hex.EncodeToString(b[:])
}

// Create starts a draft report for a study.
func (s *Service) Create(ctx context.Context, user, study string, c Content) (*Report, error) {
	if study == "" {
		return nil, &InputError{Field: "study_instance_uid", Reason: "required"}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	st, err := s.d.Index.GetStudy(ctx, study)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no study %s is stored here", ErrNotFound, study)
	}
	if err != nil {
		return nil, err
	}
	now := s.d.Clock().UTC()
	r := &Report{ID: newReportID(), StudyUID: study, Accession: st.Attrs[tagAccession], State: Draft, Content: c,
		CreatedBy: user, Created: now, Updated: now, Revision: 1}
	if first, err := s.firstInstance(ctx, study); err == nil {
		if id, _, ok := s.d.Directory.SiteFor(first.Source.CallingAE, first.Source.User); ok {
			r.Site = id
		}
	}
	if err := s.d.Store.Put(r, -1); err != nil {
		return nil, err
	}
	s.journal("report.created", r, user, "draft created")
	return r, nil
}

// Update edits a draft. rev, when > 0, is the revision the caller edited.
func (s *Service) Update(ctx context.Context, user, id string, p Patch, rev int) (*Report, error) {
	defer s.lock(id)()
	r, err := s.d.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if r.State != Draft {
		return nil, fmt.Errorf("%w: report %s is %s (version %d): a signed report is not edited; send a correction", ErrState, id, r.State, r.Last().Number)
	}
	if rev > 0 && rev != r.Revision {
		return nil, fmt.Errorf("%w: report %s is at revision %d, you edited %d", ErrConflict, id, r.Revision, rev)
	}
	c := p.Apply(r.Content)
	if err := c.check(); err != nil {
		return nil, err
	}
	prev := r.Revision
	r.Content = c
	r.Revision++
	r.Updated = s.d.Clock().UTC()
	if err := s.d.Store.Put(r, prev); err != nil {
		return nil, err
	}
	s.journal("report.edited", r, user, "draft edited")
	return r, nil
}

// Sign signs a draft as version 1 and publishes it. user must be a
// professional of the directory (the caller checked the radiologist role).
func (s *Service) Sign(ctx context.Context, user, id string, rev int) (*Report, error) {
	defer s.lock(id)()
	r, err := s.d.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if r.State != Draft {
		return nil, fmt.Errorf("%w: report %s is already %s (version %d): send a correction", ErrState, id, r.State, r.Last().Number)
	}
	if rev > 0 && rev != r.Revision {
		return nil, fmt.Errorf("%w: report %s is at revision %d, you signed %d", ErrConflict, id, r.Revision, rev)
	}
	return s.signVersion(ctx, user, r, r.Content, Signed)
}

// Correct signs a new version replacing the last signed one: same setId,
// next versionNumber, relatedDocument RPLC. The patch applies to the last
// signed content.
func (s *Service) Correct(ctx context.Context, user, id string, p Patch, rev int) (*Report, error) {
	defer s.lock(id)()
	r, err := s.d.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if r.State == Draft {
		return nil, fmt.Errorf("%w: report %s is a draft: edit it and sign it, there is nothing to correct yet", ErrState, id)
	}
	if rev > 0 && rev != r.Revision {
		return nil, fmt.Errorf("%w: report %s is at revision %d, you corrected %d", ErrConflict, id, r.Revision, rev)
	}
	c := p.Apply(r.Last().Content)
	if err := c.check(); err != nil {
		return nil, err
	}
	if reflect.DeepEqual(c, r.Last().Content) {
		return nil, &InputError{Field: "content", Reason: "a correction must change something"}
	}
	return s.signVersion(ctx, user, r, c, Corrected)
}

// signVersion builds, stores and publishes the next version of r.
func (s *Service) signVersion(ctx context.Context, user string, r *Report, c Content, state State) (*Report, error) {
	profID, prof, ok := s.d.Directory.ProfessionalByUser(user)
	if !ok {
		return nil, fmt.Errorf("%w: user %q is not in the directory of professionals (no RPPS): only a radiologist listed there signs", ErrForbidden, user)
	}
	if strings.TrimSpace(c.Conclusion) == "" {
		return nil, &InputError{Field: "conclusion", Reason: "required to sign"}
	}
	now := s.d.Clock()
	v := Version{Number: 1, SignedBy: profID, RPPS: prof.RPPS, User: user, SignedAt: now.UTC(), Content: c, files: map[string][]byte{}}
	var prev *Version
	if last := r.Last(); last != nil {
		prev = last
		v.Number = last.Number + 1
		v.SetID = last.SetID
		v.SeriesInstanceUID = last.SeriesInstanceUID
		v.Replaces = last.DocumentID
	}
	settings := s.d.Settings()
	v.DocumentID = newDocumentID(settings.DocumentOID)
	if v.SetID == "" {
		v.SetID = newDocumentID(settings.DocumentOID)
	}
	if v.SeriesInstanceUID == "" {
		v.SeriesInstanceUID = derivedUID("series", v.SetID)
	}
	doc, site, notices, err := s.document(ctx, r, prof, c, v, prev, now)
	if err != nil {
		return nil, err
	}
	v.UsesINS = doc.Patient.UsesINS()
	v.Notices = notices
	format := site.ReportFormat
	if format == "" {
		format = config.ReportLevel3
	}
	dests := append([]string(nil), site.ReportDestinations...)
	xml3, err := cda.Level3(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIncomplete, err)
	}
	v.files[DocLevel3] = xml3
	if s.d.Render != nil {
		pdf, err := s.d.Render(doc)
		if err != nil {
			return nil, fmt.Errorf("report: rendering the PDF: %w", err)
		}
		v.files[DocPDF] = pdf
		if format != config.ReportLevel3 && s.d.Level1 != nil {
			d1 := *doc
			d1.ID = v.DocumentID + ".1"
			if prev != nil {
				rp := *doc.Replaces
				rp.ID = prev.DocumentID + ".1"
				d1.Replaces = &rp
			}
			xml1, err := s.d.Level1(&d1, pdf)
			if err != nil {
				return nil, fmt.Errorf("%w: level 1: %v", ErrIncomplete, err)
			}
			v.files[DocLevel1] = xml1
		}
	} else if format != config.ReportLevel3 {
		return nil, fmt.Errorf("%w: site %s takes level 1 documents and this node cannot render PDF", ErrIncomplete, r.Site)
	}
	inst := instanceOptions(v)
	if format != config.ReportLevel1 {
		_, file, sop, err := cda.EncapsulatedCDA(doc, xml3, inst(config.ReportLevel3, v.DocumentID))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrIncomplete, err)
		}
		v.files[DocLevel3DICOM] = file
		v.Documents = append(v.Documents, Document{Format: config.ReportLevel3, DocumentID: v.DocumentID, SOPInstanceUID: sop, Destinations: dests})
	}
	if xml1 := v.files[DocLevel1]; xml1 != nil {
		_, file, sop, err := cda.EncapsulatedCDA(doc, xml1, inst(config.ReportLevel1, v.DocumentID+".1"))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrIncomplete, err)
		}
		v.files[DocLevel1DICOM] = file
		v.Documents = append(v.Documents, Document{Format: config.ReportLevel1, DocumentID: v.DocumentID + ".1", SOPInstanceUID: sop, Destinations: dests})
	}
	if len(dests) == 0 {
		v.Notices = append(v.Notices, "the study's site has no report destination: the report is kept here (WADO-RS, /reports) and not sent")
	}
	prevRev := r.Revision
	r.Versions = append(r.Versions, v)
	r.State = state
	r.Content = c
	r.Revision++
	r.Updated = now.UTC()
	if err := s.d.Store.Put(r, prevRev); err != nil {
		return nil, err
	}
	kind, what := "report.signed", "signed version 1"
	if state == Corrected {
		kind, what = "report.corrected", fmt.Sprintf("signed version %d replacing %s", v.Number, v.Replaces)
	}
	s.journal(kind, r, user, fmt.Sprintf("%s by %s (RPPS %s); patient identified by %s", what, profID, prof.RPPS, map[bool]string{true: "the INS", false: "the local id only"}[v.UsesINS]))
	if err := s.publish(ctx, r, v.Number); err != nil {
		s.d.Logger.Error("report signed but not published yet (retried)", "report", r.ID, "version", v.Number, "err", err)
	}
	return s.d.Store.Get(r.ID)
}

// instanceOptions returns the Encapsulated CDA options of a version's
// documents: deterministic UIDs (a retry after a crash makes the same
// instance), one series per report.
func instanceOptions(v Version) func(format, docID string) cda.EncapsulateOptions {
	return func(format, docID string) cda.EncapsulateOptions {
		n := v.Number
		if format == config.ReportLevel1 {
			n += 100
		}
		return cda.EncapsulateOptions{SeriesInstanceUID: v.SeriesInstanceUID, SOPInstanceUID: derivedUID("sop", docID),
			SeriesNumber: 9000, InstanceNumber: n, Now: v.SignedAt}
	}
}

// publish stores the version's instances in the study and queues them to
// their destinations, then marks the version published. Idempotent.
func (s *Service) publish(ctx context.Context, r *Report, number int) error {
	v := r.Version(number)
	if v == nil || v.Published {
		return nil
	}
	for _, d := range v.Documents {
		name := DocLevel3DICOM
		if d.Format == config.ReportLevel1 {
			name = DocLevel1DICOM
		}
		file, err := s.d.Store.Document(r.ID, number, name)
		if err != nil {
			return s.publishFailed(r.ID, number, err)
		}
		if err := s.d.StoreInstance(ctx, file, v.User); err != nil {
			return s.publishFailed(r.ID, number, fmt.Errorf("storing the document in the study: %w", err))
		}
		if len(d.Destinations) > 0 {
			if s.d.Deliver == nil {
				return s.publishFailed(r.ID, number, errors.New("no delivery queue on this node (configure destinations)"))
			}
			if err := s.d.Deliver(ctx, r.StudyUID, v.SeriesInstanceUID, d.SOPInstanceUID, d.Destinations); err != nil {
				return s.publishFailed(r.ID, number, fmt.Errorf("queueing: %w", err))
			}
		}
	}
	for {
		cur, err := s.d.Store.Get(r.ID)
		if err != nil {
			return err
		}
		cv := cur.Version(number)
		cv.Published, cv.PublishedAt, cv.PublishErr = true, s.d.Clock().UTC(), ""
		prev := cur.Revision
		cur.Revision++
		if err := s.d.Store.Put(cur, prev); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		var dests []string
		for _, d := range v.Documents {
			dests = append(dests, d.Destinations...)
		}
		s.journal("report.published", cur, v.User, fmt.Sprintf("version %d stored in the study (%d instance(s)), queued to %s", number, len(v.Documents), orNone(dests)))
		return nil
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no destination"
	}
	return strings.Join(dedup(s), ", ")
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func (s *Service) publishFailed(id string, number int, err error) error {
	if cur, gerr := s.d.Store.Get(id); gerr == nil {
		if cv := cur.Version(number); cv != nil && cv.PublishErr != err.Error() {
			cv.PublishErr = err.Error()
			prev := cur.Revision
			cur.Revision++
			s.d.Store.Put(cur, prev)
		}
	}
	return err
}

// Run publishes the signed versions that are not published yet (a crash
// or a full disk between signing and publishing), at start and then every
// interval, until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	for {
		for _, u := range s.d.Store.unpublished() {
			unlock := s.lock(u.id)
			cur, err := s.d.Store.Get(u.id)
			if err == nil {
				if err := s.publish(ctx, cur, u.version); err != nil {
					s.d.Logger.Warn("report not published yet (retrying)", "report", u.id, "version", u.version, "err", err)
				}
			}
			unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (s *Service) journal(kind string, r *Report, user, reason string) {
	if s.d.OnChange != nil {
		s.d.OnChange(kind, clone(r))
	}
	if s.d.Journal == nil {
		return
	}
	data, _ := json.Marshal(map[string]any{"report": r.ID, "state": r.State, "versions": len(r.Versions), "site": r.Site})
	s.d.Journal.AppendAsync(&journal.Event{Kind: kind, User: user, StudyUID: r.StudyUID, Reason: "report " + r.ID + ": " + reason, Data: data})
}

// newDocumentID returns a document id: under root when configured
// (root.time.random), else a 2.25 UUID-derived OID.
func newDocumentID(root string) string {
	var b [16]byte
	rand.Read(b[:])
	if root != "" {
		n := new(big.Int).SetBytes(b[:6])
		id := root + "." + strconv.FormatInt(time.Now().UTC().Unix(), 10) + "." + n.String()
		if len(id) <= 62 { // room for the ".1" of a level 1 document
			return id
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}

// derivedUID derives a UID from a document id (deterministic).
func derivedUID(kind, of string) string {
	h := sha256.Sum256([]byte("relais/report/" + kind + "\x00" + of))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(h[:16]).String()
}

// Index attribute keys.
const (
	tagAccession        = "00080050"
	tagAccessionIssuer  = "00080051"
	tagStudyDate        = "00080020"
	tagStudyTime        = "00080030"
	tagModality         = "00080060"
	tagSeriesNumber     = "00200011"
	tagInstanceNumber   = "00200013"
	tagUniversalEntity  = "00400032"
	tagStudyDescription = "00081030"
)

// document classes a report's catalog does not list (it lists images).
var documentClasses = map[string]bool{
	"1.2.840.10008.5.1.4.1.1.88.59": true, // KOS
	"1.2.840.10008.5.1.4.1.1.104.1": true, // Encapsulated PDF
	"1.2.840.10008.5.1.4.1.1.104.2": true, // Encapsulated CDA
	"1.2.840.10008.5.1.4.1.1.88.11": true, // Basic Text SR
	"1.2.840.10008.5.1.4.1.1.88.22": true, // Enhanced SR
	"1.2.840.10008.5.1.4.1.1.88.33": true, // Comprehensive SR
	"1.2.840.10008.5.1.4.1.1.88.67": true, // X-Ray Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.68": true, // Radiopharmaceutical Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.34": true, // Comprehensive 3D SR
	"1.2.840.10008.5.1.4.1.1.11.1":  true, // Grayscale Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.88.71": true, // Acquisition Context SR
	"1.2.840.10008.5.1.4.1.1.104.3": true, // Encapsulated STL
}

// studyImages returns the study's instances other than documents and
// what Relais generated, ordered by receipt.
func (s *Service) studyImages(ctx context.Context, study string) ([]*storage.Instance, error) {
	var out []*storage.Instance
	err := s.d.Index.StudyInstances(ctx, study, func(in *storage.Instance) error {
		if in.Source.Channel != storage.ChannelGenerated && !documentClasses[in.SOPClassUID] {
			out = append(out, in)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].ReceivedAt.Before(out[j].ReceivedAt) })
	return out, err
}

func (s *Service) firstInstance(ctx context.Context, study string) (*storage.Instance, error) {
	ins, err := s.studyImages(ctx, study)
	if err != nil {
		return nil, err
	}
	if len(ins) == 0 {
		return nil, fmt.Errorf("%w: study %s has no image", ErrNotFound, study)
	}
	return ins[0], nil
}

// document builds the CDA model of a version.
func (s *Service) document(ctx context.Context, r *Report, prof config.Professional, c Content, v Version, prev *Version, now time.Time) (*cda.Report, config.Site, []string, error) {
	var missing []string
	var notices []string
	ins, err := s.studyImages(ctx, r.StudyUID)
	if err != nil {
		return nil, config.Site{}, nil, err
	}
	if len(ins) == 0 {
		return nil, config.Site{}, nil, fmt.Errorf("%w: study %s has no image stored here any more", ErrNotFound, r.StudyUID)
	}
	first := ins[0]
	attrs := first.Attrs
	siteID, site, ok := s.d.Directory.SiteFor(first.Source.CallingAE, first.Source.User)
	if !ok && r.Site != "" {
		site, ok = s.d.Directory.Site(r.Site)
		siteID = r.Site
	}
	var facility config.Organisation
	if ok {
		facility, _ = s.d.Directory.Organisation(site.Organisation)
	} else {
		missing = append(missing, fmt.Sprintf("the study's origin (calling AE %q, user %q) is no configured site: add it to sites (it says the facility and where the report goes)", first.Source.CallingAE, first.Source.User))
	}
	settings := s.d.Settings()
	custodian, cok := s.d.Directory.Organisation(settings.Custodian)
	if !cok {
		missing = append(missing, "reports.custodian names no organisation")
	}
	profOrg, pok := s.d.Directory.Organisation(prof.Organisation)
	if !pok {
		missing = append(missing, fmt.Sprintf("the signer's organisation %q is not in the directory", prof.Organisation))
	}

	// Patient identity: the site vouches for the status of its INS.
	opts := []identity.Option{identity.WithLocalIssuer(facility.PatientIDOID)}
	status := identity.PROV
	if site.INSStatus != "" {
		status, _ = identity.ParseStatus(site.INSStatus)
	}
	opts = append(opts, identity.WithStatus(status))
	id, _ := identity.FromAttrs(attrs, opts...)
	if status == identity.QUAL && id.Status != identity.QUAL {
		if err := id.Upgrade(identity.QUAL, "sites."+siteID+".ins_status: QUAL (the site's identity vigilance qualified it)"); err != nil {
			notices = append(notices, "identity not qualified: "+err.Error())
		}
	}
	if c.PatientBirthPlace != "" {
		id.BirthPlace = c.PatientBirthPlace
	}
	patient, reason := id.CDAPatient()
	if reason != "" {
		notices = append(notices, "patient identified by the local id only, not the INS: "+reason)
	}
	if patient.LocalID != "" && patient.LocalIDRoot == "" {
		if facility.PatientIDOID != "" {
			patient.LocalIDRoot = facility.PatientIDOID
		} else if ok {
			missing = append(missing, fmt.Sprintf("the local patient id has no issuer OID: set organisations.%s.patient_id_oid", site.Organisation))
		}
	}

	// Order: the accession number and its issuer.
	var order cda.Order
	if acc := attrs[tagAccession]; acc != "" {
		issuer := universalEntity(attrs[tagAccessionIssuer])
		if issuer == "" {
			issuer = facility.AccessionOID
		}
		placer := facility.PlacerOrderOID
		if placer == "" {
			placer = issuer
		}
		if issuer == "" {
			notices = append(notices, fmt.Sprintf("accession number without issuer OID (set organisations.%s.accession_oid): no order in the document", site.Organisation))
		} else {
			order = cda.Order{PlacerOrderNumber: acc, PlacerOrderIssuer: placer, AccessionNumber: acc, AccessionIssuer: issuer}
		}
	} else {
		notices = append(notices, "the study has no accession number: no order in the document")
	}

	study := cda.Study{StudyInstanceUID: r.StudyUID, WADOBaseURL: s.d.WADOBase}
	start := dicomTime(attrs[tagStudyDate], attrs[tagStudyTime], now.Location())
	if start.IsZero() {
		start = first.ReceivedAt
	}
	study.Start = start
	bySeries := map[string]*cda.Series{}
	var order2 []string
	for _, in := range ins {
		se := bySeries[in.SeriesInstanceUID]
		if se == nil {
			se = &cda.Series{UID: in.SeriesInstanceUID, Modality: in.Attrs[tagModality], Number: atoi(in.Attrs[tagSeriesNumber])}
			if se.Modality == "" {
				se.Modality = "OT"
			}
			bySeries[in.SeriesInstanceUID] = se
			order2 = append(order2, in.SeriesInstanceUID)
		}
		se.Instances = append(se.Instances, cda.Instance{SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID, Number: atoi(in.Attrs[tagInstanceNumber])})
	}
	for _, uid := range order2 {
		se := bySeries[uid]
		sort.SliceStable(se.Instances, func(i, j int) bool { return se.Instances[i].Number < se.Instances[j].Number })
		study.Series = append(study.Series, *se)
	}
	sort.SliceStable(study.Series, func(i, j int) bool { return study.Series[i].Number < study.Series[j].Number })
	study.Modality = study.Series[0].Modality
	study.ProcedureCode = procedureFor(study.Modality, attrs[tagStudyDescription])

	author := cda.Professional{RPPS: prof.RPPS, Prefix: prof.Prefix, Given: prof.Given, Family: prof.Family,
		Specialty:    cda.Code{Code: or(prof.Specialty, config.DefaultSpecialty), DisplayName: or(prof.SpecialtyName, specialtyName(prof.Specialty))},
		Organisation: cda.Organisation{FINESS: profOrg.FINESS, Name: profOrg.Name}}
	if len(missing) > 0 {
		return nil, site, nil, fmt.Errorf("%w: %s", ErrIncomplete, strings.Join(missing, "; "))
	}
	doc := &cda.Report{
		ID: v.DocumentID, SetID: v.SetID, Version: v.Number, Effective: now,
		Patient: patient, Author: author, LegalAuthenticator: author,
		Custodian: cda.Organisation{FINESS: custodian.FINESS, Name: custodian.Name},
		Order:     order, Study: study,
		Encounter:           cda.Encounter{Facility: cda.Organisation{FINESS: facility.FINESS, Name: facility.Name}, Start: start},
		ClinicalInformation: c.ClinicalInformation, RequestReason: c.RequestReason, Technique: c.Technique,
		Findings: c.Findings, Conclusion: c.Conclusion, Comparison: c.Comparison,
	}
	if x := c.RadiationExposure; x != nil {
		doc.RadiationExposure = &cda.Exposure{Text: x.Text, DLP: x.DLP}
	}
	if prev != nil {
		doc.Replaces = &cda.Replaced{ID: prev.DocumentID, SetID: prev.SetID, Version: prev.Number}
	}
	if err := doc.Validate(); err != nil {
		return nil, site, nil, fmt.Errorf("%w: %s", ErrIncomplete, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return doc, site, notices, nil
}

// universalEntity reads the Universal Entity ID of an issuer sequence
// kept as JSON items.
func universalEntity(seq string) string {
	if seq == "" {
		return ""
	}
	items, err := storage.DecodeItems(seq)
	if err != nil || len(items) == 0 {
		return ""
	}
	return items[0][tagUniversalEntity]
}

func dicomTime(da, tm string, loc *time.Location) time.Time {
	if len(da) != 8 {
		return time.Time{}
	}
	tm = strings.TrimSpace(tm)
	if i := strings.IndexByte(tm, '.'); i >= 0 {
		tm = tm[:i]
	}
	for len(tm) < 6 {
		tm += "0"
	}
	t, err := time.ParseInLocation("20060102150405", da+tm[:6], loc)
	if err != nil {
		t, err = time.ParseInLocation("20060102", da, loc)
		if err != nil {
			return time.Time{}
		}
	}
	return t
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func specialtyName(code string) string {
	if code == "" || code == config.DefaultSpecialty {
		return cda.SpecialtyRadiologist.DisplayName
	}
	return ""
}

// procedureFor is the serviceEvent code of a study: the LOINC "unspecified
// body region" code of its modality.
func procedureFor(modality, description string) cda.Code {
	code, display := "18726-0", "Radiologie"
	switch modality {
	case "CT":
		code, display = "25045-6", "CT"
	case "MR":
		code, display = "25056-3", "IRM"
	case "US":
		code, display = "25061-3", "Échographie"
	case "CR", "DX", "DR":
		code, display = "43468-8", "Radiographie"
	case "MG":
		code, display = "24606-6", "Mammographie"
	case "PT":
		code, display = "44136-0", "TEP"
	case "NM":
		code, display = "49118-3", "Scintigraphie"
	}
	if d := strings.TrimSpace(description); d != "" {
		display = d
	}
	return cda.Code{Code: code, DisplayName: display}
}
