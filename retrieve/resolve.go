package retrieve

import (
	"context"
	"errors"
	"fmt"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/storage"
)

// Resolve returns the stored instances an identifier designates, in the
// order of the keys and then of the index (series UID, SOP instance UID).
// Unknown UIDs match nothing; an instance named twice is returned once.
// Only index records are held, never instance data. An index failure is
// wrapped with status A701 (unable to calculate number of matches).
// The PATIENT level finds the patient's studies through the index's
// patient ID secondary index (the one the query engine uses).
func Resolve(ctx context.Context, ix storage.Index, k Keys) ([]*storage.Instance, error) {
	var out []*storage.Instance
	seen := make(map[string]bool)
	add := func(inst *storage.Instance) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !seen[inst.SOPInstanceUID] {
			seen[inst.SOPInstanceUID] = true
			out = append(out, inst)
		}
		return nil
	}
	var err error
	switch k.Level {
	case LevelPatient:
		var studies []string
		err = ix.StudiesBy(ctx, storage.StudyByPatientID, storage.ValueRange{Value: k.PatientID, Exact: true}, func(s *storage.Study) error {
			studies = append(studies, s.StudyInstanceUID)
			return nil
		})
		for _, s := range studies {
			if err != nil {
				break
			}
			err = ix.StudyInstances(ctx, s, add)
		}
	case LevelStudy:
		for _, s := range k.Studies {
			if err = ix.StudyInstances(ctx, s, add); err != nil {
				break
			}
		}
	case LevelSeries:
		for _, s := range k.Series {
			if err = ix.SeriesInstances(ctx, s, add); err != nil {
				break
			}
		}
	case LevelImage:
		for _, uid := range k.Instances {
			inst, gerr := ix.GetInstance(ctx, uid)
			if errors.Is(gerr, storage.ErrNotFound) {
				continue
			}
			if gerr != nil {
				err = gerr
				break
			}
			if err = add(inst); err != nil {
				break
			}
		}
	default:
		return nil, identifierError("unknown QueryRetrieveLevel %q", k.Level)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("retrieve: resolving matches: %w: %w", err,
			dimse.Status{Code: dimse.StatusOutOfResourcesMatches, Comment: "index lookup failed"})
	}
	return out, nil
}
