// Package kvindex implements storage.Index over an ordered key-value store,
// so that the Badger index and the in-memory index share one data model and
// one set of aggregation rules.
//
// Key layout (prefixes leave room for secondary indices added by query work):
//
//	i/<sop>                          instance record (JSON storage.Instance)
//	s/<study>                        study aggregate
//	r/<series>                       series aggregate
//	p/<patient id>                   patient aggregate
//	si/<study>/<series>/<sop>        membership (empty value)
//	ps/<patient id>\x00<study>       membership (empty value)
//	meta/applied                     last journal seq applied (8 bytes BE)
//	meta/stats                       row counts (JSON storage.Stats)
//	meta/xver                        version of the secondary indices built
//	x/<key>/<value>\x00<study>       secondary index over studies (empty
//	                                 value): key is a storage.StudyKey
//
// The secondary indices are written in the same transaction as the rows
// they point to: a study's attribute keys when the study row is created
// and deleted, a modality key when the study's count of that modality goes
// from 0 to 1 and back. An index that predates them is rebuilt on the first
// StudiesBy (meta/xver records that it was).
//
// UIDs cannot contain '/', Patient IDs can, hence the NUL separator.
package kvindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/storage"
)

// Txn is a read or read-write transaction. Writes made in a transaction are
// visible to its own reads.
type Txn interface {
	// Get returns a copy of the value; storage.ErrNotFound if missing.
	Get(key string) ([]byte, error)
	Set(key string, val []byte) error
	Delete(key string) error
	// Iterate calls fn in key order for at most limit keys with the prefix
	// that sort strictly after `after` (if non-empty). val is nil when
	// keysOnly; otherwise it is only valid during the call.
	Iterate(prefix, after string, limit int, keysOnly bool, fn func(key string, val []byte) error) error
}

// DB is an ordered key-value store with transactions.
type DB interface {
	Update(fn func(Txn) error) error
	View(fn func(Txn) error) error
	Close() error
}

// Index implements storage.Index over a DB. Writes are serialized by a
// mutex (the ingest is the single writer; this avoids transaction conflicts
// on the shared counters).
type Index struct {
	db     DB
	mu     sync.Mutex // serializes writers; guards c and xBuilt
	c      rowCache
	xBuilt bool
	xmu    sync.Mutex // serializes secondary index builds
	sc     studyCache
}

var _ storage.Index = (*Index)(nil)

// New returns an Index over db.
func New(db DB) *Index { return &Index{db: db} }

const (
	pInstance = "i/"
	pStudy    = "s/"
	pSeries   = "r/"
	pPatient  = "p/"
	pStudyMem = "si/"
	pPatMem   = "ps/"
	kApplied  = "meta/applied"
	kStats    = "meta/stats"
	kXVer     = "meta/xver"
	pX        = "x/"
	xVersion  = "1"
	pageSize  = 256
)

// studyRec is the stored form of a study: the per-value counts make
// Modalities and SOPClasses exact under deletion.
type studyRec struct {
	storage.Study
	ModalityCount map[string]int `json:"mc,omitempty"`
	SOPClassCount map[string]int `json:"cc,omitempty"`
}

func (r *studyRec) export() *storage.Study {
	s := r.Study
	s.Modalities = sortedKeys(r.ModalityCount)
	s.SOPClasses = sortedKeys(r.SOPClassCount)
	return &s
}

func sortedKeys(m map[string]int) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k, n := range m {
		if n > 0 {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func getJSON(tx Txn, key string, v any) error {
	b, err := tx.Get(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("index: decode %q: %w", key, err)
	}
	return nil
}

func setJSON(tx Txn, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("index: encode %q: %w", key, err)
	}
	return tx.Set(key, b)
}

// optional maps ErrNotFound to (false, nil).
func optional(err error) (bool, error) {
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func studyMemKey(study, series, sop string) string {
	return pStudyMem + study + "/" + series + "/" + sop
}

func patMemKey(patient, study string) string { return pPatMem + patient + "\x00" + study }

func validUID(kind, uid string) error {
	if uid == "" || strings.ContainsAny(uid, "/\x00") {
		return fmt.Errorf("index: invalid %s UID %q", kind, uid)
	}
	return nil
}

// PutInstance implements storage.Index.
func (ix *Index) PutInstance(ctx context.Context, inst *storage.Instance, journalSeq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, c := range [][2]string{{"SOP instance", inst.SOPInstanceUID}, {"series", inst.SeriesInstanceUID}, {"study", inst.StudyInstanceUID}} {
		if err := validUID(c[0], c[1]); err != nil {
			return err
		}
	}
	enc, err := json.Marshal(inst)
	if err != nil {
		return fmt.Errorf("index: encode instance: %w", err)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	err = ix.db.Update(func(tx Txn) error {
		old, err := tx.Get(pInstance + inst.SOPInstanceUID)
		exists, err := optional(err)
		if err != nil {
			return err
		}
		st, err := ix.c.stats(tx)
		if err != nil {
			return err
		}
		if st.Studies == 0 && !ix.xBuilt {
			// An empty index has complete secondary indices: no build
			// will be needed.
			if err := tx.Set(kXVer, []byte(xVersion)); err != nil {
				return err
			}
		}
		if exists {
			if bytes.Equal(old, enc) {
				return setApplied(tx, journalSeq) // idempotent replay
			}
			var prev storage.Instance
			if err := json.Unmarshal(old, &prev); err != nil {
				return fmt.Errorf("index: decode instance %s: %w", inst.SOPInstanceUID, err)
			}
			if err := remove(tx, &ix.c, &prev, st); err != nil {
				return err
			}
		}
		if err := add(tx, &ix.c, inst, enc, st); err != nil {
			return err
		}
		if err := setJSON(tx, kStats, st); err != nil {
			return err
		}
		return setApplied(tx, journalSeq)
	})
	if err != nil {
		ix.c.reset() // the cache may hold rows of the failed transaction
		return fmt.Errorf("index: put instance %s: %w", inst.SOPInstanceUID, err)
	}
	return nil
}

func getStats(tx Txn, st *storage.Stats) error {
	_, err := optional(getJSON(tx, kStats, st))
	return err
}

func setApplied(tx Txn, seq uint64) error {
	if seq == 0 {
		return nil
	}
	b, err := tx.Get(kApplied)
	if ok, err := optional(err); err != nil {
		return err
	} else if ok && len(b) == 8 && binary.BigEndian.Uint64(b) >= seq {
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], seq)
	return tx.Set(kApplied, v[:])
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// add inserts inst (encoded as enc), which must not be present.
func add(tx Txn, c *rowCache, inst *storage.Instance, enc []byte, st *storage.Stats) error {
	if err := tx.Set(pInstance+inst.SOPInstanceUID, enc); err != nil {
		return err
	}
	if err := tx.Set(studyMemKey(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID), nil); err != nil {
		return err
	}
	st.Instances++
	st.Bytes += inst.Size

	// Study (loaded first: a new series increments its Series count).
	sr, studyExists, err := c.study(tx, inst.StudyInstanceUID)
	if err != nil {
		return err
	}
	if !studyExists {
		sr = &studyRec{Study: storage.Study{
			StudyInstanceUID: inst.StudyInstanceUID,
			PatientID:        inst.PatientID,
			Attrs:            storage.PickAttrs(inst.Attrs, storage.PatientLevelTags, storage.StudyLevelTags),
			CharacterSet:     inst.CharacterSet,
		}}
		for _, k := range studyXKeys(&sr.Study) {
			if err := tx.Set(k, nil); err != nil {
				return err
			}
		}
		st.Studies++
		var p storage.Patient
		pExists, err := optional(getJSON(tx, pPatient+sr.PatientID, &p))
		if err != nil {
			return err
		}
		if !pExists {
			p = storage.Patient{PatientID: sr.PatientID, Attrs: storage.PickAttrs(inst.Attrs, storage.PatientLevelTags), CharacterSet: inst.CharacterSet}
			st.Patients++
		}
		p.Studies++
		if err := setJSON(tx, pPatient+sr.PatientID, &p); err != nil {
			return err
		}
		if err := tx.Set(patMemKey(sr.PatientID, sr.StudyInstanceUID), nil); err != nil {
			return err
		}
	}

	// Series.
	se, seriesExists, err := c.series(tx, inst.SeriesInstanceUID)
	if err != nil {
		return err
	}
	if !seriesExists {
		se = &storage.Series{
			SeriesInstanceUID: inst.SeriesInstanceUID,
			StudyInstanceUID:  inst.StudyInstanceUID,
			Attrs:             storage.PickAttrs(inst.Attrs, storage.SeriesLevelTags),
		}
		st.Series++
		if se.StudyInstanceUID == inst.StudyInstanceUID {
			sr.Series++
		}
	}
	se.Instances++
	se.Size += inst.Size
	se.LastReceived = maxTime(se.LastReceived, inst.ReceivedAt)
	if err := c.putSeries(tx, se); err != nil {
		return err
	}

	sr.Instances++
	sr.Size += inst.Size
	sr.FirstReceived = minTime(sr.FirstReceived, inst.ReceivedAt)
	sr.LastReceived = maxTime(sr.LastReceived, inst.ReceivedAt)
	if m := inst.Attrs[storage.ModalityTag]; m != "" {
		if sr.ModalityCount == nil {
			sr.ModalityCount = map[string]int{}
		}
		if sr.ModalityCount[m] == 0 {
			if err := tx.Set(xKey(storage.StudyByModality, m, sr.StudyInstanceUID), nil); err != nil {
				return err
			}
		}
		sr.ModalityCount[m]++
	}
	if inst.SOPClassUID != "" {
		if sr.SOPClassCount == nil {
			sr.SOPClassCount = map[string]int{}
		}
		sr.SOPClassCount[inst.SOPClassUID]++
	}
	return c.putStudy(tx, sr)
}

func decCount(m map[string]int, k string) {
	if k == "" || m == nil {
		return
	}
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// remove deletes inst, which must be present, and fixes the aggregates.
func remove(tx Txn, c *rowCache, inst *storage.Instance, st *storage.Stats) error {
	if err := tx.Delete(pInstance + inst.SOPInstanceUID); err != nil {
		return err
	}
	if err := tx.Delete(studyMemKey(inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID)); err != nil {
		return err
	}
	st.Instances--
	st.Bytes -= inst.Size

	sr, studyExists, err := c.study(tx, inst.StudyInstanceUID)
	if err != nil {
		return err
	}

	se, seriesExists, err := c.series(tx, inst.SeriesInstanceUID)
	if err != nil {
		return err
	}
	if seriesExists {
		se.Instances--
		se.Size -= inst.Size
		if se.Instances <= 0 {
			if err := c.deleteSeries(tx, inst.SeriesInstanceUID); err != nil {
				return err
			}
			st.Series--
			if studyExists && se.StudyInstanceUID == inst.StudyInstanceUID {
				sr.Series--
			}
		} else if err := c.putSeries(tx, se); err != nil {
			return err
		}
	}

	if !studyExists {
		return nil
	}
	sr.Instances--
	sr.Size -= inst.Size
	if m := inst.Attrs[storage.ModalityTag]; m != "" && sr.ModalityCount[m] == 1 {
		if err := tx.Delete(xKey(storage.StudyByModality, m, sr.StudyInstanceUID)); err != nil {
			return err
		}
	}
	decCount(sr.ModalityCount, inst.Attrs[storage.ModalityTag])
	decCount(sr.SOPClassCount, inst.SOPClassUID)
	if sr.Instances > 0 {
		return c.putStudy(tx, sr)
	}
	if err := c.deleteStudy(tx, inst.StudyInstanceUID); err != nil {
		return err
	}
	for _, k := range studyXKeys(&sr.Study) {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	for m := range sr.ModalityCount {
		if err := tx.Delete(xKey(storage.StudyByModality, m, sr.StudyInstanceUID)); err != nil {
			return err
		}
	}
	st.Studies--
	if err := tx.Delete(patMemKey(sr.PatientID, sr.StudyInstanceUID)); err != nil {
		return err
	}
	var p storage.Patient
	pExists, err := optional(getJSON(tx, pPatient+sr.PatientID, &p))
	if err != nil || !pExists {
		return err
	}
	p.Studies--
	if p.Studies > 0 {
		return setJSON(tx, pPatient+sr.PatientID, &p)
	}
	st.Patients--
	return tx.Delete(pPatient + sr.PatientID)
}

// DeleteInstance implements storage.Index.
func (ix *Index) DeleteInstance(ctx context.Context, sopInstanceUID string, journalSeq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	found := false
	err := ix.db.Update(func(tx Txn) error {
		var inst storage.Instance
		ok, err := optional(getJSON(tx, pInstance+sopInstanceUID, &inst))
		if err != nil {
			return err
		}
		found = ok
		if ok {
			st, err := ix.c.stats(tx)
			if err != nil {
				return err
			}
			if err := remove(tx, &ix.c, &inst, st); err != nil {
				return err
			}
			if err := setJSON(tx, kStats, st); err != nil {
				return err
			}
		}
		return setApplied(tx, journalSeq)
	})
	if err != nil {
		ix.c.reset()
		return fmt.Errorf("index: delete instance %s: %w", sopInstanceUID, err)
	}
	if !found {
		return fmt.Errorf("index: delete instance %s: %w", sopInstanceUID, storage.ErrNotFound)
	}
	return nil
}

func (ix *Index) get(ctx context.Context, what, key string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := ix.db.View(func(tx Txn) error { return getJSON(tx, key, v) })
	if err != nil {
		return fmt.Errorf("index: get %s %s: %w", what, strings.TrimPrefix(key, key[:strings.IndexByte(key, '/')+1]), err)
	}
	return nil
}

// GetInstance implements storage.Index.
func (ix *Index) GetInstance(ctx context.Context, sopInstanceUID string) (*storage.Instance, error) {
	inst := new(storage.Instance)
	if err := ix.get(ctx, "instance", pInstance+sopInstanceUID, inst); err != nil {
		return nil, err
	}
	return inst, nil
}

// GetStudy implements storage.Index.
func (ix *Index) GetStudy(ctx context.Context, uid string) (*storage.Study, error) {
	var r studyRec
	if err := ix.get(ctx, "study", pStudy+uid, &r); err != nil {
		return nil, err
	}
	return r.export(), nil
}

// GetSeries implements storage.Index.
func (ix *Index) GetSeries(ctx context.Context, uid string) (*storage.Series, error) {
	se := new(storage.Series)
	if err := ix.get(ctx, "series", pSeries+uid, se); err != nil {
		return nil, err
	}
	return se, nil
}

// GetPatient implements storage.Index.
func (ix *Index) GetPatient(ctx context.Context, id string) (*storage.Patient, error) {
	p := new(storage.Patient)
	if err := ix.get(ctx, "patient", pPatient+id, p); err != nil {
		return nil, err
	}
	return p, nil
}

// instancesUnder pages through membership keys under prefix, loading the
// instances in the same read transaction and calling fn outside of it.
func (ix *Index) instancesUnder(ctx context.Context, prefix string, fn func(*storage.Instance) error) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var page []*storage.Instance
		var last string
		n := 0
		err := ix.db.View(func(tx Txn) error {
			return tx.Iterate(prefix, after, pageSize, true, func(key string, _ []byte) error {
				n++
				last = key
				sop := key[strings.LastIndexByte(key, '/')+1:]
				inst := new(storage.Instance)
				ok, err := optional(getJSON(tx, pInstance+sop, inst))
				if err != nil {
					return err
				}
				if ok {
					page = append(page, inst)
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("index: list instances: %w", err)
		}
		for _, inst := range page {
			if err := fn(inst); err != nil {
				return err
			}
		}
		if n < pageSize {
			return nil
		}
		after = last
	}
}

// StudyInstances implements storage.Index.
func (ix *Index) StudyInstances(ctx context.Context, studyUID string, fn func(*storage.Instance) error) error {
	if validUID("study", studyUID) != nil {
		return nil
	}
	return ix.instancesUnder(ctx, pStudyMem+studyUID+"/", fn)
}

// SeriesInstances implements storage.Index.
func (ix *Index) SeriesInstances(ctx context.Context, seriesUID string, fn func(*storage.Instance) error) error {
	if validUID("series", seriesUID) != nil {
		return nil
	}
	se, err := ix.GetSeries(ctx, seriesUID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return ix.instancesUnder(ctx, pStudyMem+se.StudyInstanceUID+"/"+seriesUID+"/", fn)
}

// Studies implements storage.Index.
func (ix *Index) Studies(ctx context.Context, fn func(*storage.Study) error) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var page []*storage.Study
		var last string
		n := 0
		err := ix.db.View(func(tx Txn) error {
			return tx.Iterate(pStudy, after, pageSize, false, func(key string, val []byte) error {
				n++
				last = key
				var r studyRec
				if err := json.Unmarshal(val, &r); err != nil {
					return fmt.Errorf("decode %q: %w", key, err)
				}
				page = append(page, r.export())
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("index: list studies: %w", err)
		}
		for _, s := range page {
			if err := fn(s); err != nil {
				return err
			}
		}
		if n < pageSize {
			return nil
		}
		after = last
	}
}

// AppliedSeq implements storage.Index.
func (ix *Index) AppliedSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	err := ix.db.View(func(tx Txn) error {
		b, err := tx.Get(kApplied)
		if ok, err := optional(err); !ok {
			return err
		}
		if len(b) != 8 {
			return fmt.Errorf("index: corrupt %s", kApplied)
		}
		seq = binary.BigEndian.Uint64(b)
		return nil
	})
	return seq, err
}

// Stats implements storage.Index.
func (ix *Index) Stats(ctx context.Context) (storage.Stats, error) {
	var st storage.Stats
	err := ix.db.View(func(tx Txn) error { return getStats(tx, &st) })
	if err != nil {
		return st, fmt.Errorf("index: stats: %w", err)
	}
	return st, nil
}

// Close implements storage.Index.
func (ix *Index) Close() error { return ix.db.Close() }

// rowCache keeps recently written study and series rows and the stats
// decoded in memory, so that the common PutInstance (another instance of
// the study being received) does not decode them again. It is only used by
// writers, under Index.mu; the Index is the only writer of these rows, so
// the cache is coherent. After a failed transaction it is reset.
type rowCache struct {
	studies    map[string]*studyRec
	seriesRows map[string]*storage.Series
	st         *storage.Stats
}

const maxCachedRows = 256

func (c *rowCache) reset() { *c = rowCache{} }

func (c *rowCache) stats(tx Txn) (*storage.Stats, error) {
	if c.st == nil {
		st := new(storage.Stats)
		if err := getStats(tx, st); err != nil {
			return nil, err
		}
		c.st = st
	}
	return c.st, nil
}

func (c *rowCache) study(tx Txn, uid string) (*studyRec, bool, error) {
	if r, ok := c.studies[uid]; ok {
		return r, true, nil
	}
	r := new(studyRec)
	ok, err := optional(getJSON(tx, pStudy+uid, r))
	if !ok {
		return nil, false, err
	}
	return r, true, nil
}

func (c *rowCache) putStudy(tx Txn, r *studyRec) error {
	if err := setJSON(tx, pStudy+r.StudyInstanceUID, r); err != nil {
		return err
	}
	if c.studies == nil || len(c.studies) >= maxCachedRows {
		c.studies = make(map[string]*studyRec)
	}
	c.studies[r.StudyInstanceUID] = r
	return nil
}

func (c *rowCache) deleteStudy(tx Txn, uid string) error {
	delete(c.studies, uid)
	return tx.Delete(pStudy + uid)
}

func (c *rowCache) series(tx Txn, uid string) (*storage.Series, bool, error) {
	if r, ok := c.seriesRows[uid]; ok {
		return r, true, nil
	}
	r := new(storage.Series)
	ok, err := optional(getJSON(tx, pSeries+uid, r))
	if !ok {
		return nil, false, err
	}
	return r, true, nil
}

func (c *rowCache) putSeries(tx Txn, r *storage.Series) error {
	if err := setJSON(tx, pSeries+r.SeriesInstanceUID, r); err != nil {
		return err
	}
	if c.seriesRows == nil || len(c.seriesRows) >= maxCachedRows {
		c.seriesRows = make(map[string]*storage.Series)
	}
	c.seriesRows[r.SeriesInstanceUID] = r
	return nil
}

func (c *rowCache) deleteSeries(tx Txn, uid string) error {
	delete(c.seriesRows, uid)
	return tx.Delete(pSeries + uid)
}
