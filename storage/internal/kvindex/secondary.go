package kvindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/relais-health/relais/storage"
)

// errStop ends an iteration early without error.
var errStop = errors.New("stop")

// xKey is the secondary index key of one value of a study.
func xKey(k storage.StudyKey, value, study string) string {
	return pX + string(k) + "/" + strings.ReplaceAll(value, "\x00", "") + "\x00" + study
}

// NormalizeName is the form of a person name component group in the
// StudyByPatientName index: upper case (Unicode simple folding), padding
// trimmed.
func NormalizeName(group string) string {
	return strings.ToUpper(strings.TrimSpace(group))
}

// studyXKeys lists the attribute keys of a study's secondary indices (the
// modality keys follow the study's modality counts and are handled apart).
func studyXKeys(s *storage.Study) []string {
	uid := s.StudyInstanceUID
	var keys []string
	if s.PatientID != "" {
		keys = append(keys, xKey(storage.StudyByPatientID, s.PatientID, uid))
	}
	seen := map[string]bool{}
	for _, v := range strings.Split(s.Attrs["00100010"], `\`) {
		for _, g := range strings.Split(v, "=") {
			g = NormalizeName(g)
			if g == "" || seen[g] {
				continue
			}
			seen[g] = true
			keys = append(keys, xKey(storage.StudyByPatientName, g, uid))
		}
	}
	// Dates are indexed as YYYYMMDD (ACR-NEMA "YYYY.MM.DD" normalized).
	if d := strings.ReplaceAll(strings.TrimSpace(s.Attrs["00080020"]), ".", ""); d != "" {
		keys = append(keys, xKey(storage.StudyByDate, d, uid))
	}
	if a := s.Attrs["00080050"]; a != "" {
		keys = append(keys, xKey(storage.StudyByAccession, a, uid))
	}
	return keys
}

// ensureSecondary builds the secondary indices of an index written before
// they existed (idempotent: keys are set, never counted). It takes the
// writers' mutex one page of studies at a time, so the ingest goes on
// while a large archive is indexed; writes meanwhile maintain the keys of
// the studies they touch.
func (ix *Index) ensureSecondary(ctx context.Context) error {
	ix.xmu.Lock()
	defer ix.xmu.Unlock()
	ix.mu.Lock()
	built := ix.xBuilt
	ix.mu.Unlock()
	if built {
		return nil
	}
	if err := ix.db.View(func(tx Txn) error {
		b, err := tx.Get(kXVer)
		ok, err := optional(err)
		built = ok && string(b) == xVersion
		return err
	}); err != nil {
		return fmt.Errorf("index: secondary version: %w", err)
	}
	after := ""
	for !built {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := 0
		ix.mu.Lock()
		err := ix.db.Update(func(tx Txn) error {
			var recs []*studyRec
			err := tx.Iterate(pStudy, after, pageSize, false, func(key string, val []byte) error {
				n++
				after = key
				r := new(studyRec)
				if err := json.Unmarshal(val, r); err != nil {
					return fmt.Errorf("decode %q: %w", key, err)
				}
				recs = append(recs, r)
				return nil
			})
			if err != nil {
				return err
			}
			for _, r := range recs {
				keys := studyXKeys(&r.Study)
				for m, c := range r.ModalityCount {
					if c > 0 {
						keys = append(keys, xKey(storage.StudyByModality, m, r.StudyInstanceUID))
					}
				}
				for _, k := range keys {
					if err := tx.Set(k, nil); err != nil {
						return err
					}
				}
			}
			if n < pageSize {
				return tx.Set(kXVer, []byte(xVersion))
			}
			return nil
		})
		ix.mu.Unlock()
		if err != nil {
			return fmt.Errorf("index: build secondary indices: %w", err)
		}
		built = n < pageSize
	}
	ix.mu.Lock()
	ix.xBuilt = true
	ix.mu.Unlock()
	return nil
}

// StudiesBy implements storage.Index.
func (ix *Index) StudiesBy(ctx context.Context, key storage.StudyKey, r storage.ValueRange, fn func(*storage.Study) error) error {
	switch key {
	case storage.StudyByPatientID, storage.StudyByPatientName, storage.StudyByDate, storage.StudyByAccession, storage.StudyByModality:
	default:
		return fmt.Errorf("index: unknown study index %q", key)
	}
	if err := ix.ensureSecondary(ctx); err != nil {
		return err
	}
	base := pX + string(key) + "/"
	prefix := base + strings.ReplaceAll(r.Value, "\x00", "")
	if r.Exact {
		prefix += "\x00"
	}
	after := ""
	if r.From != "" && base+r.From > prefix {
		after = base + r.From // keys "<from>\x00..." sort after it
	}
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var page []*storage.Study
		n := 0
		done := false
		err := ix.db.View(func(tx Txn) error {
			err := tx.Iterate(prefix, after, pageSize, true, func(k string, _ []byte) error {
				n++
				after = k
				rest := k[len(base):]
				i := strings.LastIndexByte(rest, 0)
				if i < 0 {
					return nil
				}
				val, uid := rest[:i], rest[i+1:]
				if r.To != "" && val > r.To && !strings.HasPrefix(val, r.To) {
					done = true
					return errStop
				}
				if seen[uid] {
					return nil
				}
				seen[uid] = true
				raw, err := tx.Get(pStudy + uid)
				if errors.Is(err, storage.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				st, err := ix.sc.study(pStudy+uid, raw)
				if err != nil {
					return err
				}
				page = append(page, st)
				return nil
			})
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("index: studies by %s: %w", key, err)
		}
		for _, s := range page {
			if err := fn(s); err != nil {
				return err
			}
		}
		if done || n < pageSize {
			return nil
		}
	}
}

// StudySeries implements storage.Index: one seek per series over the
// study's membership keys.
func (ix *Index) StudySeries(ctx context.Context, studyUID string, fn func(*storage.Series) error) error {
	if validUID("study", studyUID) != nil {
		return nil
	}
	prefix := pStudyMem + studyUID + "/"
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var se *storage.Series
		found := false
		err := ix.db.View(func(tx Txn) error {
			return tx.Iterate(prefix, after, 1, true, func(k string, _ []byte) error {
				found = true
				rest := k[len(prefix):]
				uid := rest[:strings.IndexByte(rest, '/')]
				after = prefix + uid + "/\xff"
				s := new(storage.Series)
				ok, err := optional(getJSON(tx, pSeries+uid, s))
				if ok {
					se = s
				}
				return err
			})
		})
		if err != nil {
			return fmt.Errorf("index: series of %s: %w", studyUID, err)
		}
		if !found {
			return nil
		}
		if se != nil {
			if err := fn(se); err != nil {
				return err
			}
		}
	}
}

// Patients implements storage.Index.
func (ix *Index) Patients(ctx context.Context, fn func(*storage.Patient) error) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var page []*storage.Patient
		n := 0
		err := ix.db.View(func(tx Txn) error {
			return tx.Iterate(pPatient, after, pageSize, false, func(k string, val []byte) error {
				n++
				after = k
				p := new(storage.Patient)
				if err := json.Unmarshal(val, p); err != nil {
					return fmt.Errorf("decode %q: %w", k, err)
				}
				page = append(page, p)
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("index: list patients: %w", err)
		}
		for _, p := range page {
			if err := fn(p); err != nil {
				return err
			}
		}
		if n < pageSize {
			return nil
		}
	}
}
