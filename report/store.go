package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/relais-health/relais/internal/atomicfile"
)

// Store keeps reports in a directory: one sub-directory per report with
// its record (report.json) and the documents of each signed version
// (v1.level3.xml, v1.level1.xml, v1.pdf). A change writes the new
// documents first, then replaces the record atomically (write, fsync,
// rename, fsync the directory): a crash leaves the previous record or the
// new one, never a record naming documents that are not on disk.
type Store struct {
	dir string

	mu      sync.RWMutex
	byStudy map[string][]string // study UID → report ids
	records map[string]*Report  // id → record (without documents)
}

// OpenStore opens (creating) the store in dir and loads the records.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	s := &Store{dir: dir, byStudy: map[string][]string{}, records: map[string]*Report{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "report.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // created, crashed before the first record: nothing was acknowledged
		}
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil || r.ID != e.Name() {
			return nil, fmt.Errorf("report: %s is corrupt (%v): move it away to start", filepath.Join(dir, e.Name(), "report.json"), err)
		}
		s.index(&r)
	}
	return s, nil
}

func (s *Store) index(r *Report) {
	if _, ok := s.records[r.ID]; !ok {
		s.byStudy[r.StudyUID] = append(s.byStudy[r.StudyUID], r.ID)
	}
	s.records[r.ID] = r
}

// validID: report ids are generated (letters, digits, '-'); anything else
// from a URL is not one and never reaches the file system.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Get returns a copy of the record (documents not loaded).
func (s *Store) Get(id string) (*Report, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.records[id]
	if !ok {
		return nil, fmt.Errorf("%w: report %q", ErrNotFound, id)
	}
	return clone(r), nil
}

func clone(r *Report) *Report {
	c := *r
	c.Versions = append([]Version(nil), r.Versions...)
	for i := range c.Versions {
		c.Versions[i].Documents = append([]Document(nil), r.Versions[i].Documents...)
		c.Versions[i].Notices = append([]string(nil), r.Versions[i].Notices...)
	}
	return &c
}

// List returns the reports of a study ("" for every report), newest first.
func (s *Store) List(study string) []*Report {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Report
	if study != "" {
		for _, id := range s.byStudy[study] {
			out = append(out, clone(s.records[id]))
		}
	} else {
		for _, r := range s.records {
			out = append(out, clone(r))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// unpublished is a signed version whose publication is not done.
type unpublished struct {
	id      string
	version int
}

// unpublished lists the signed versions not published yet (without
// copying every record: the publisher asks every 30 s).
func (s *Store) unpublished() []unpublished {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []unpublished
	for id, r := range s.records {
		for _, v := range r.Versions {
			if !v.Published {
				out = append(out, unpublished{id, v.Number})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].id < out[j].id || out[i].id == out[j].id && out[i].version < out[j].version
	})
	return out
}

// Put writes r: first the documents of its versions that carry bytes,
// then the record. prevRevision is the revision the change was made on
// (-1 for a new report): a record changed meanwhile is ErrConflict.
func (s *Store) Put(r *Report, prevRevision int) error {
	if !validID(r.ID) {
		return fmt.Errorf("report: invalid id %q", r.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.records[r.ID]
	switch {
	case prevRevision < 0 && exists:
		return fmt.Errorf("%w: report %s exists", ErrConflict, r.ID)
	case prevRevision >= 0 && !exists:
		return fmt.Errorf("%w: report %q", ErrNotFound, r.ID)
	case exists && cur.Revision != prevRevision:
		return fmt.Errorf("%w: report %s is at revision %d, not %d", ErrConflict, r.ID, cur.Revision, prevRevision)
	}
	dir := filepath.Join(s.dir, r.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for _, v := range r.Versions {
		for name, b := range v.files {
			if err := atomicfile.Write(dir, docName(v.Number, name), b, 0o640); err != nil {
				return err
			}
		}
	}
	rec := clone(r)
	for i := range rec.Versions {
		rec.Versions[i].files = nil
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := atomicfile.Write(dir, "report.json", b, 0o640); err != nil {
		return err
	}
	if !exists {
		if err := atomicfile.SyncDir(s.dir); err != nil {
			return err
		}
	}
	s.index(rec)
	return nil
}

func docName(version int, ext string) string { return "v" + strconv.Itoa(version) + "." + ext }

// Document names.
const (
	DocLevel3      = "level3.xml"
	DocLevel1      = "level1.xml"
	DocPDF         = "pdf"
	DocLevel3DICOM = "level3.dcm"
	DocLevel1DICOM = "level1.dcm"
)

// Document returns a stored document of a version (a Doc* name).
func (s *Store) Document(id string, version int, name string) ([]byte, error) {
	switch name {
	case DocLevel3, DocLevel1, DocPDF, DocLevel3DICOM, DocLevel1DICOM:
	default:
		return nil, fmt.Errorf("report: unknown document %q", name)
	}
	if !validID(id) {
		return nil, fmt.Errorf("%w: report %q", ErrNotFound, id)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, id, docName(version, name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: report %s version %d has no %s document", ErrNotFound, id, version, name)
	}
	return b, err
}
