package routing

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/query/findscu"
	"github.com/relais-health/relais/retrieve"
	"github.com/relais-health/relais/storage"
)

// Defaults of config.Priors.
const (
	DefaultPriorsMax    = 3
	DefaultPriorsWithin = 5 * 365 * 24 * time.Hour
)

// DIMSEPriors fetches prior studies from a configured remote AE: a C-FIND
// (Study Root, STUDY level) by Patient ID, then a C-MOVE of each chosen
// study to this node (AETitle), whose ingest stores them; it then returns
// their instances from the index.
type DIMSEPriors struct {
	// AETitle is this node's AE title: calling AE and move destination
	// (the remote AE must know it).
	AETitle   string
	RemoteAEs []config.RemoteAE
	Index     storage.Index
	Clock     func() time.Time
	Logger    *slog.Logger
}

// FetchPriors implements PriorsFetcher.
func (p *DIMSEPriors) FetchPriors(ctx context.Context, pr config.Priors, patientID, excludeStudy string) ([]*storage.Instance, error) {
	var ra *config.RemoteAE
	for i := range p.RemoteAEs {
		if p.RemoteAEs[i].Name == pr.From {
			ra = &p.RemoteAEs[i]
		}
	}
	if ra == nil {
		return nil, fmt.Errorf("priors: unknown remote AE %q", pr.From)
	}
	max := pr.Max
	if max <= 0 {
		max = DefaultPriorsMax
	}
	within := time.Duration(pr.Within)
	if within <= 0 {
		within = DefaultPriorsWithin
	}
	now := time.Now()
	if p.Clock != nil {
		now = p.Clock()
	}
	oldest := now.Add(-within).Format("20060102")
	addr := fmt.Sprintf("%s:%d", ra.Host, ra.Port)
	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: p.AETitle, CalledAE: ra.AE, Contexts: findscu.Contexts(), Logger: p.Logger})
	if err != nil {
		return nil, fmt.Errorf("priors: associate with %s at %s: %w", ra.AE, addr, err)
	}
	type study struct{ uid, date string }
	var studies []study
	keys := []findscu.KeyValue{{Tag: dicom.TagPatientID, Value: patientID}, {Tag: dicom.TagStudyInstanceUID}, {Tag: dicom.TagStudyDate}}
	st, err := findscu.Find(ctx, a, query.StudyRoot, query.Study, keys, func(ds *dicom.Dataset) bool {
		uid, _ := ds.String(dicom.TagStudyInstanceUID)
		date, _ := ds.String(dicom.TagStudyDate)
		uid, date = strings.TrimSpace(uid), strings.TrimSpace(date)
		if uid != "" && uid != excludeStudy && (date == "" || date >= oldest) {
			studies = append(studies, study{uid, date})
		}
		return true
	})
	if rerr := a.Release(context.Background()); rerr != nil {
		a.Abort()
	}
	if err != nil {
		return nil, fmt.Errorf("priors: C-FIND on %s: %w", ra.AE, err)
	}
	if !st.OK() {
		return nil, fmt.Errorf("priors: C-FIND on %s: %w", ra.AE, st)
	}
	sort.Slice(studies, func(i, j int) bool { return studies[i].date > studies[j].date })
	if len(studies) > max {
		studies = studies[:max]
	}
	var out []*storage.Instance
	for _, s := range studies {
		res, err := retrieve.Move(ctx, addr, retrieve.ClientOptions{CallingAE: p.AETitle, CalledAE: ra.AE, Logger: p.Logger},
			p.AETitle, retrieve.Keys{Level: "STUDY", Studies: []string{s.uid}})
		if err != nil {
			return out, fmt.Errorf("priors: C-MOVE of study %s from %s: %w", s.uid, ra.AE, err)
		}
		_ = res
		err = p.Index.StudyInstances(ctx, s.uid, func(in *storage.Instance) error {
			out = append(out, in)
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
