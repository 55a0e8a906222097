package query

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/storage"
)

// Row is one result: the entity's attributes and those of the entities
// above it (8 hex digit tags, UTF-8 values, multiple values joined by
// '\'), including the computed ones.
type Row struct {
	Level Level
	Attrs map[string]string
	// Charset is the Specific Character Set the attributes were stored in
	// ("" for the default repertoire or when unknown).
	Charset string
}

// Engine answers queries from an index.
type Engine struct {
	Index storage.Index
}

// ErrStop may be returned by a Find callback to end the search early; Find
// then returns nil.
var ErrStop = errors.New("query: stop")

// Unsupported reports whether q has matching keys the engine does not use
// (answered with status FF01 by C-FIND).
func (q *Query) Unsupported() bool {
	_, u := compile(q)
	return u
}

// Find calls fn for every entity matching q, as they are found. An error
// from fn (other than ErrStop) stops the search and is returned.
func (e *Engine) Find(ctx context.Context, q *Query, fn func(*Row) error) error {
	ms, _ := compile(q)
	emit := func(r *Row) error {
		if !matches(ms, r.Attrs) {
			return nil
		}
		return fn(r)
	}
	var err error
	switch q.Level {
	case Patient:
		err = e.findPatients(ctx, q, emit)
	case Study:
		err = e.studyCandidates(ctx, q, func(s *storage.Study) error { return emit(studyRow(s)) })
	case Series:
		err = e.findSeries(ctx, q, emit)
	case Image:
		err = e.findInstances(ctx, q, emit)
	default:
		err = fmt.Errorf("%w: level %q", ErrBadQuery, q.Level)
	}
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

func copyAttrs(dst, src map[string]string) {
	for k, v := range src {
		dst[k] = v
	}
}

var (
	hStudyUID  = hexTag(dicom.TagStudyInstanceUID)
	hSeriesUID = hexTag(dicom.TagSeriesInstanceUID)
	hSOPUID    = hexTag(dicom.TagSOPInstanceUID)
	hSOPClass  = hexTag(dicom.TagSOPClassUID)
	hPatientID = hexTag(dicom.TagPatientID)
)

func studyRow(s *storage.Study) *Row {
	a := make(map[string]string, len(s.Attrs)+8)
	copyAttrs(a, s.Attrs)
	a[hStudyUID] = s.StudyInstanceUID
	if s.PatientID != "" {
		a[hPatientID] = s.PatientID
	}
	a[hexTag(dicom.TagModalitiesInStudy)] = strings.Join(s.Modalities, `\`)
	a[hexTag(tagSOPClassesInStudy)] = strings.Join(s.SOPClasses, `\`)
	a[hexTag(dicom.TagNumberOfStudyRelatedSeries)] = strconv.Itoa(s.Series)
	a[hexTag(dicom.TagNumberOfStudyRelatedInstances)] = strconv.Itoa(s.Instances)
	return &Row{Level: Study, Attrs: a, Charset: s.CharacterSet}
}

func seriesRow(study *Row, se *storage.Series) *Row {
	a := make(map[string]string, len(study.Attrs)+len(se.Attrs)+2)
	copyAttrs(a, study.Attrs)
	copyAttrs(a, se.Attrs)
	a[hSeriesUID] = se.SeriesInstanceUID
	a[hexTag(dicom.TagNumberOfSeriesRelatedInstances)] = strconv.Itoa(se.Instances)
	return &Row{Level: Series, Attrs: a, Charset: study.Charset}
}

func instanceRow(in *storage.Instance) *Row {
	a := make(map[string]string, len(in.Attrs)+5)
	copyAttrs(a, in.Attrs)
	a[hSOPUID] = in.SOPInstanceUID
	a[hSeriesUID] = in.SeriesInstanceUID
	a[hStudyUID] = in.StudyInstanceUID
	if in.SOPClassUID != "" {
		a[hSOPClass] = in.SOPClassUID
	}
	if in.PatientID != "" {
		a[hPatientID] = in.PatientID
	}
	return &Row{Level: Image, Attrs: a, Charset: in.CharacterSet}
}

// uidList returns the UIDs of a UID list key without wildcards (nil if the
// key is absent, universal or a pattern).
func uidList(q *Query, t dicom.Tag) []string {
	v := q.value(t)
	if v == "" || strings.ContainsAny(v, "*?") {
		return nil
	}
	var out []string
	for _, u := range splitValues(v) {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// exactValue returns the value of a single-valued key without wildcards.
func exactValue(q *Query, t dicom.Tag) string {
	v := q.value(t)
	if v == "" || strings.ContainsAny(v, `*?\`) {
		return ""
	}
	return v
}

// namePrefix is the index prefix of a PN key: its upper-cased literal
// start, up to the first wildcard or group delimiter.
func namePrefix(v string) string {
	if strings.Contains(v, `\`) {
		return ""
	}
	if i := strings.IndexAny(v, "*?="); i >= 0 {
		v = v[:i]
	}
	// Trailing empty components are not compared (normName), so they
	// cannot be required of the index either.
	return strings.TrimRight(strings.ToUpper(strings.TrimLeft(v, " ")), "^ ")
}

// plan is the way candidate studies are found.
type plan struct {
	name string
	run  func(ctx context.Context, ix storage.Index, fn func(*storage.Study) error) error
}

// studyPlan picks the most selective way to find the studies q may match.
func studyPlan(q *Query) plan {
	by := func(name string, k storage.StudyKey, rs ...storage.ValueRange) plan {
		return plan{name, func(ctx context.Context, ix storage.Index, fn func(*storage.Study) error) error {
			seen := map[string]bool{}
			for _, r := range rs {
				err := ix.StudiesBy(ctx, k, r, func(s *storage.Study) error {
					if seen[s.StudyInstanceUID] {
						return nil
					}
					seen[s.StudyInstanceUID] = true
					return fn(s)
				})
				if err != nil {
					return err
				}
			}
			return nil
		}}
	}
	if uids := uidList(q, dicom.TagStudyInstanceUID); uids != nil {
		return plan{"study-uid", func(ctx context.Context, ix storage.Index, fn func(*storage.Study) error) error {
			for _, u := range uids {
				s, err := ix.GetStudy(ctx, u)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := fn(s); err != nil {
					return err
				}
			}
			return nil
		}}
	}
	if v := exactValue(q, dicom.TagPatientID); v != "" {
		return by("patient-id", storage.StudyByPatientID, storage.ValueRange{Value: v, Exact: true})
	}
	if v := exactValue(q, dicom.TagAccessionNumber); v != "" {
		return by("accession", storage.StudyByAccession, storage.ValueRange{Value: v, Exact: true})
	}
	if p := namePrefix(q.value(dicom.TagPatientName)); p != "" {
		return by("patient-name", storage.StudyByPatientName, storage.ValueRange{Value: p})
	}
	if d := q.value(dicom.TagStudyDate); d != "" && !strings.ContainsAny(d, `*?\`) {
		if lo, hi, ok := splitRange(dicom.VRDA, d); ok {
			return by("study-date-range", storage.StudyByDate, storage.ValueRange{From: lo, To: hi})
		}
		return by("study-date", storage.StudyByDate, storage.ValueRange{Value: normTemporal(dicom.VRDA, d), Exact: true})
	}
	if m := q.value(dicom.TagModalitiesInStudy); m != "" && !strings.ContainsAny(m, "*?") {
		var rs []storage.ValueRange
		for _, v := range splitValues(m) {
			rs = append(rs, storage.ValueRange{Value: strings.TrimSpace(v), Exact: true})
		}
		return by("modality", storage.StudyByModality, rs...)
	}
	return plan{"scan", func(ctx context.Context, ix storage.Index, fn func(*storage.Study) error) error {
		return ix.Studies(ctx, fn)
	}}
}

// Plan names the strategy Find uses for q's candidate studies (for logs
// and tests): "study-uid", "patient-id", "accession", "patient-name",
// "study-date", "study-date-range", "modality" or "scan".
func Plan(q *Query) string { return studyPlan(q).name }

func (e *Engine) studyCandidates(ctx context.Context, q *Query, fn func(*storage.Study) error) error {
	return studyPlan(q).run(ctx, e.Index, fn)
}

func (e *Engine) findSeries(ctx context.Context, q *Query, emit func(*Row) error) error {
	if uids := uidList(q, dicom.TagSeriesInstanceUID); uids != nil && uidList(q, dicom.TagStudyInstanceUID) == nil {
		studies := map[string]*Row{}
		for _, u := range uids {
			se, err := e.Index.GetSeries(ctx, u)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			sr, ok := studies[se.StudyInstanceUID]
			if !ok {
				st, err := e.Index.GetStudy(ctx, se.StudyInstanceUID)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				sr = studyRow(st)
				studies[se.StudyInstanceUID] = sr
			}
			if err := emit(seriesRow(sr, se)); err != nil {
				return err
			}
		}
		return nil
	}
	return e.studyCandidates(ctx, q, func(s *storage.Study) error {
		sr := studyRow(s)
		return e.Index.StudySeries(ctx, s.StudyInstanceUID, func(se *storage.Series) error {
			return emit(seriesRow(sr, se))
		})
	})
}

func (e *Engine) findInstances(ctx context.Context, q *Query, emit func(*Row) error) error {
	each := func(in *storage.Instance) error { return emit(instanceRow(in)) }
	if uids := uidList(q, dicom.TagSOPInstanceUID); uids != nil {
		for _, u := range uids {
			in, err := e.Index.GetInstance(ctx, u)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := each(in); err != nil {
				return err
			}
		}
		return nil
	}
	if uids := uidList(q, dicom.TagSeriesInstanceUID); uids != nil {
		for _, u := range uids {
			if err := e.Index.SeriesInstances(ctx, u, each); err != nil {
				return err
			}
		}
		return nil
	}
	return e.studyCandidates(ctx, q, func(s *storage.Study) error {
		return e.Index.StudyInstances(ctx, s.StudyInstanceUID, each)
	})
}

// patientRow builds a patient's row; with counts, it sums the patient's
// studies (one index scan per patient, so only when the query asks).
func (e *Engine) patientRow(ctx context.Context, p *storage.Patient, counts bool) (*Row, error) {
	a := make(map[string]string, len(p.Attrs)+4)
	copyAttrs(a, p.Attrs)
	a[hPatientID] = p.PatientID
	if counts {
		var studies, series, inst int
		err := e.Index.StudiesBy(ctx, storage.StudyByPatientID, storage.ValueRange{Value: p.PatientID, Exact: true}, func(s *storage.Study) error {
			studies++
			series += s.Series
			inst += s.Instances
			return nil
		})
		if err != nil {
			return nil, err
		}
		a[hexTag(tagPatientRelatedStudies)] = strconv.Itoa(studies)
		a[hexTag(tagPatientRelatedSeries)] = strconv.Itoa(series)
		a[hexTag(tagPatientRelatedInstances)] = strconv.Itoa(inst)
	}
	return &Row{Level: Patient, Attrs: a, Charset: p.CharacterSet}, nil
}

func (e *Engine) findPatients(ctx context.Context, q *Query, emit func(*Row) error) error {
	counts := false
	for _, t := range []dicom.Tag{tagPatientRelatedStudies, tagPatientRelatedSeries, tagPatientRelatedInstances} {
		if _, ok := q.Get(t); ok {
			counts = true
		}
	}
	one := func(p *storage.Patient) error {
		r, err := e.patientRow(ctx, p, counts)
		if err != nil {
			return err
		}
		return emit(r)
	}
	byID := func(id string) error {
		p, err := e.Index.GetPatient(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return one(p)
	}
	if id := exactValue(q, dicom.TagPatientID); id != "" {
		return byID(id)
	}
	if pfx := namePrefix(q.value(dicom.TagPatientName)); pfx != "" {
		seen := map[string]bool{}
		return e.Index.StudiesBy(ctx, storage.StudyByPatientName, storage.ValueRange{Value: pfx}, func(s *storage.Study) error {
			if seen[s.PatientID] {
				return nil
			}
			seen[s.PatientID] = true
			return byID(s.PatientID)
		})
	}
	return e.Index.Patients(ctx, one)
}
