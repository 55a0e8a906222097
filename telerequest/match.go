package telerequest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/relais-health/relais/identity"
	"github.com/relais-health/relais/storage"
)

// DICOM attributes the matching reads (storage.Instance.Attrs keys).
const (
	tagAccession   = "00080050"
	tagPatientName = "00100010"
)

// candidate is a stored study (or an instance of one) that may belong to
// a request.
type candidate struct {
	Study, Accession string
	Patient          identity.Identity
	Family           string // of Patient's Name
	Site             string
	SiteKnown        bool
}

func (s *Service) candidateOf(study string, attrs map[string]string, src storage.Source) *candidate {
	c := &candidate{Study: study, Accession: strings.TrimSpace(attrs[tagAccession])}
	c.Patient, _ = identity.FromAttrs(attrs)
	c.Family, _, _ = strings.Cut(attrs[tagPatientName], "^")
	if i := strings.IndexByte(c.Family, '='); i >= 0 {
		c.Family = c.Family[:i]
	}
	if s.d.Directory != nil && (src.CallingAE != "" || src.User != "") {
		c.Site, _, c.SiteKnown = s.d.Directory.SiteFor(src.CallingAE, src.User)
	}
	return c
}

var errStop = errors.New("stop")

func (s *Service) candidateOfStudy(ctx context.Context, st *storage.Study) *candidate {
	var src storage.Source
	s.d.Index.StudyInstances(ctx, st.StudyInstanceUID, func(in *storage.Instance) error {
		if in.Source.Channel == storage.ChannelGenerated {
			return nil
		}
		src = in.Source
		return errStop
	})
	return s.candidateOf(st.StudyInstanceUID, st.Attrs, src)
}

func (s *Service) studiesByAccession(ctx context.Context, acc string) []*candidate {
	var out []*candidate
	if acc == "" || s.d.Index == nil {
		return nil
	}
	var studies []*storage.Study
	s.d.Index.StudiesBy(ctx, storage.StudyByAccession, storage.ValueRange{Value: acc, Exact: true}, func(st *storage.Study) error {
		studies = append(studies, st)
		return nil
	})
	for _, st := range studies {
		out = append(out, s.candidateOfStudy(ctx, st))
	}
	return out
}

// candidates returns the stored studies carrying the request's keys.
func (s *Service) candidates(ctx context.Context, r *Request) []*candidate {
	if s.d.Index == nil {
		return nil
	}
	var out []*candidate
	if r.StudyUID != "" {
		if st, err := s.d.Index.GetStudy(ctx, r.StudyUID); err == nil {
			out = append(out, s.candidateOfStudy(ctx, st))
		}
	}
	for _, c := range s.studiesByAccession(ctx, r.AccessionNumber) {
		if c.Study != r.StudyUID {
			out = append(out, c)
		}
	}
	return out
}

// concerns reports whether the candidate carries one of the request's
// keys (and was not rejected by a human).
func concerns(r *Request, c *candidate) bool {
	if slices.Contains(r.RejectedStudies, c.Study) {
		return false
	}
	return (r.StudyUID != "" && c.Study == r.StudyUID) || (r.AccessionNumber != "" && c.Accession == r.AccessionNumber)
}

// mismatch says why a candidate clearly is not the request's study. The
// reasons name no patient data (they are journaled).
func mismatch(r *Request, c *candidate) []string {
	var why []string
	if r.StudyUID != "" && c.Study != r.StudyUID {
		why = append(why, "its Study Instance UID is not the request's")
	}
	if r.AccessionNumber != "" && c.Accession != "" && c.Accession != r.AccessionNumber {
		why = append(why, "its accession number is not the request's")
	}
	if c.SiteKnown && c.Site != r.Site {
		why = append(why, "sent by site "+c.Site+", not "+r.Site)
	}
	p, img := r.Patient, c.Patient
	ids := []string{img.Local.Value}
	if img.INS != nil {
		ids = append(ids, img.INS.Value)
	}
	for _, o := range img.Others {
		ids = append(ids, o.Value)
	}
	has := func(v string) bool {
		for _, x := range ids {
			if x != "" && strings.EqualFold(strings.TrimSpace(x), v) {
				return true
			}
		}
		return false
	}
	if p.LocalID != "" && img.Local.Value != "" && !has(p.LocalID) && (p.INS == "" || !has(p.INS)) {
		why = append(why, "the patient id differs")
	}
	if p.INS != "" && img.INS != nil && !strings.EqualFold(img.INS.Value, p.INS) {
		why = append(why, "the INS differs")
	}
	if !sameName([]string{p.Name, p.BirthName}, []string{c.Family, img.BirthName}) {
		why = append(why, "the patient's name differs")
	}
	if !shareWord(p.FirstNames, img.FirstNames) {
		why = append(why, "the patient's first names differ")
	}
	if p.BirthDate != "" && img.BirthDate != "" && p.BirthDate != img.BirthDate {
		why = append(why, "the birth date differs")
	}
	if (p.Sex == "M" || p.Sex == "F") && (img.Sex == "M" || img.Sex == "F") && p.Sex != img.Sex {
		why = append(why, "the sex differs")
	}
	return why
}

// fold upper-cases and drops accents and everything but letters and
// spaces ("Lefèvre-Dupré" → "LEFEVRE DUPRE").
func fold(s string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(s) {
		if r, ok := unaccent[c]; ok {
			c = r
		}
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteRune(c)
		case c == ' ' || c == '-' || c == '\'' || c == '^':
			b.WriteByte(' ')
		case c > 0x7f && c != 'Œ' && c != 'Æ':
			b.WriteRune(c)
		case c == 'Œ':
			b.WriteString("OE")
		case c == 'Æ':
			b.WriteString("AE")
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

var unaccent = map[rune]rune{
	'À': 'A', 'Â': 'A', 'Ä': 'A', 'Á': 'A', 'Ã': 'A', 'Å': 'A', 'Ç': 'C', 'È': 'E', 'É': 'E', 'Ê': 'E', 'Ë': 'E',
	'Î': 'I', 'Ï': 'I', 'Í': 'I', 'Ì': 'I', 'Ô': 'O', 'Ö': 'O', 'Ó': 'O', 'Ò': 'O', 'Õ': 'O', 'Ù': 'U', 'Û': 'U',
	'Ü': 'U', 'Ú': 'U', 'Ÿ': 'Y', 'Ý': 'Y', 'Ñ': 'N',
}

// sameName: unknown on either side, or one of the request's names equals
// or contains one of the image's (composite names), or the reverse.
func sameName(req, img []string) bool {
	var a, b []string
	for _, x := range req {
		if f := fold(x); f != "" {
			a = append(a, f)
		}
	}
	for _, x := range img {
		if f := fold(x); f != "" {
			b = append(b, f)
		}
	}
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if x == y || strings.Contains(" "+x+" ", " "+y+" ") || strings.Contains(" "+y+" ", " "+x+" ") {
				return true
			}
		}
	}
	return false
}

// shareWord: unknown on either side, or a first name in common.
func shareWord(a, b string) bool {
	fa, fb := strings.Fields(fold(a)), strings.Fields(fold(b))
	if len(fa) == 0 || len(fb) == 0 {
		return true
	}
	for _, x := range fa {
		if slices.Contains(fb, x) {
			return true
		}
	}
	return false
}

// link binds the candidate's study to r.
func (s *Service) link(r *Request, c *candidate, by string, now time.Time) {
	r.StudyUID = c.Study
	if r.AccessionNumber == "" {
		r.AccessionNumber = c.Accession
	}
	r.StudyLinked, r.LinkedBy = true, by
	t := now
	r.LinkedAt = &t
	r.Reconciliation = nil
}

// consider applies the candidates to a request waiting for its study: a
// single clean candidate is linked; otherwise the first concerned one is
// flagged for reconciliation (once: the same flag is not raised again).
func (s *Service) consider(r *Request, cs []*candidate, now time.Time) {
	if !waitingForStudy(r) {
		return
	}
	var clean, dirty []*candidate
	var why [][]string
	for _, c := range cs {
		if !concerns(r, c) {
			continue
		}
		if m := mismatch(r, c); len(m) > 0 {
			dirty, why = append(dirty, c), append(why, m)
		} else {
			clean = append(clean, c)
		}
	}
	switch {
	case len(clean) == 1:
		c := clean[0]
		s.link(r, c, "auto", now)
		key := "Study Instance UID"
		if c.Accession != "" && c.Accession == r.AccessionNumber {
			key = "accession number " + c.Accession
		}
		r.History = append(r.History, Change{At: now, User: SystemUser, Kind: KindLinked, Reason: "study " + c.Study + " linked automatically by " + key})
	case len(clean) > 1:
		studies := make([]string, len(clean))
		for i, c := range clean {
			studies[i] = c.Study
		}
		s.flag(r, clean[0], []string{fmt.Sprintf("%d stored studies match (%s): choose one", len(clean), strings.Join(studies, ", "))}, now)
	case len(dirty) > 0:
		s.flag(r, dirty[0], why[0], now)
	}
}

func (s *Service) flag(r *Request, c *candidate, why []string, now time.Time) {
	if x := r.Reconciliation; x != nil && x.StudyUID == c.Study && slices.Equal(x.Reasons, why) {
		return
	}
	r.Reconciliation = &Reconciliation{StudyUID: c.Study, Accession: c.Accession, Reasons: why, Since: now}
	r.History = append(r.History, Change{At: now, User: SystemUser, Kind: KindReconciliation,
		Reason: "reconciliation needed: study " + c.Study + " matches the request's keys but " + strings.Join(why, "; ")})
}

// matchIndex looks in the index for the request's study (at creation, or
// when its keys change).
func (s *Service) matchIndex(ctx context.Context, r *Request, now time.Time) {
	if waitingForStudy(r) && (r.AccessionNumber != "" || r.StudyUID != "") {
		s.consider(r, s.candidates(ctx, r), now)
	}
}

// incoming is what OnInstance hands to the matcher.
type incoming struct {
	study  string
	attrs  map[string]string
	source storage.Source
}

// OnInstance is told of every durable instance (chain it to
// ingest.Pipeline.OnDurable). It never blocks: the instance goes to a
// buffered channel read by Run; when the buffer is full it is dropped and
// a sweep is asked for, which finds the study in the index.
func (s *Service) OnInstance(inst *storage.Instance) {
	if inst == nil || inst.Source.Channel == storage.ChannelGenerated {
		return
	}
	if s.matching.Load() == 0 && len(s.d.Store.Waiting(strings.TrimSpace(inst.Attrs[tagAccession]), inst.StudyInstanceUID)) == 0 {
		return // no request waits for it (and none is being recorded)
	}
	select {
	case s.inbox <- incoming{study: inst.StudyInstanceUID, attrs: maps.Clone(inst.Attrs), source: inst.Source}:
	default:
		s.dropped.Add(1)
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Dropped counts the instances the hand-off dropped (buffer full).
func (s *Service) Dropped() uint64 { return s.dropped.Load() }

// Match links (or flags) the requests waiting for inst's study, at once.
func (s *Service) Match(ctx context.Context, inst *storage.Instance) {
	s.handle(ctx, incoming{study: inst.StudyInstanceUID, attrs: inst.Attrs, source: inst.Source})
}

func (s *Service) handle(ctx context.Context, in incoming) {
	// Under the lock: a request being recorded (or given new keys) is
	// either in the store already or has searched the index after this
	// instance was indexed.
	s.mu.Lock()
	ids := s.d.Store.Waiting(strings.TrimSpace(in.attrs[tagAccession]), in.study)
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	c := s.candidateOf(in.study, in.attrs, in.source)
	for _, id := range ids {
		if _, err := s.change(ctx, nil, id, 0, func(r *Request, now time.Time) error {
			s.consider(r, []*candidate{c}, now)
			return nil
		}); err != nil && !errors.Is(err, ErrState) {
			s.d.Logger.Error("request: matching a stored instance failed", "request", id, "study", in.study, "err", err)
		}
	}
}

// Sweep matches every request waiting for its study against the index:
// what the hand-off dropped, and what arrived while Relais was down.
func (s *Service) Sweep(ctx context.Context) {
	for _, r := range s.d.Store.All(waitingForStudy) {
		if ctx.Err() != nil {
			return
		}
		if r.AccessionNumber == "" && r.StudyUID == "" {
			continue
		}
		cs := s.candidates(ctx, r)
		if len(cs) == 0 {
			continue
		}
		if _, err := s.change(ctx, nil, r.ID, 0, func(r *Request, now time.Time) error {
			s.consider(r, cs, now)
			return nil
		}); err != nil && !errors.Is(err, ErrState) {
			s.d.Logger.Error("request: sweep failed", "request", r.ID, "err", err)
		}
	}
}

// Run matches handed-off instances as they come and sweeps at start and
// every interval (and at once after a drop), until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	s.Sweep(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-s.inbox:
			s.handle(ctx, in)
		case <-s.kick:
			s.Sweep(ctx)
		case <-t.C:
			s.Sweep(ctx)
		}
	}
}
