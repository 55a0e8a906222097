package telerequest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/relais-health/relais/internal/atomicfile"
)

// Store keeps requests in a directory, one JSON file per request
// (<id>.json). A change replaces the file atomically (write a temporary
// file, fsync, rename, fsync the directory): a crash leaves the previous
// record or the new one. Records are held in memory too, with the keys
// (accession number, Study Instance UID) of the requests still waiting
// for their study.
type Store struct {
	dir string

	mu      sync.RWMutex
	records map[string]*Request
	waiting map[string]map[string]bool // "acc:"+accession | "study:"+uid → ids
}

// OpenStore opens (creating) the store in dir and loads the records.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("telerequest: %w", err)
	}
	s := &Store{dir: dir, records: map[string]*Request{}, waiting: map[string]map[string]bool{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("telerequest: %w", err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if e.IsDir() || !ok || !validID(id) {
			continue // temporary files of an interrupted write, anything else
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("telerequest: %w", err)
		}
		var r Request
		if err := json.Unmarshal(b, &r); err != nil || r.ID != id {
			return nil, fmt.Errorf("telerequest: %s is corrupt (%v): move it away to start", filepath.Join(dir, e.Name()), err)
		}
		s.index(&r)
	}
	return s, nil
}

func keys(r *Request) []string {
	var k []string
	if r.AccessionNumber != "" {
		k = append(k, "acc:"+r.AccessionNumber)
	}
	if r.StudyUID != "" {
		k = append(k, "study:"+r.StudyUID)
	}
	return k
}

// waitingForStudy: the request may still be linked automatically.
func waitingForStudy(r *Request) bool { return !r.Cancelled && !r.Reported && !r.StudyLinked }

func (s *Store) index(r *Request) {
	if old, ok := s.records[r.ID]; ok {
		for _, k := range keys(old) {
			delete(s.waiting[k], r.ID)
			if len(s.waiting[k]) == 0 {
				delete(s.waiting, k)
			}
		}
	}
	s.records[r.ID] = r
	if waitingForStudy(r) {
		for _, k := range keys(r) {
			if s.waiting[k] == nil {
				s.waiting[k] = map[string]bool{}
			}
			s.waiting[k][r.ID] = true
		}
	}
}

// validID: request ids are generated (lower-case letters, digits, '-');
// anything else from a URL is not one and never reaches the file system.
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

// Get returns a copy of a record.
func (s *Store) Get(id string) (*Request, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.records[id]
	if !ok {
		return nil, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	return r.clone(), nil
}

// All returns copies of the records matching keep (nil: all), newest
// first.
func (s *Store) All(keep func(*Request) bool) []*Request {
	s.mu.RLock()
	var out []*Request
	for _, r := range s.records {
		if keep == nil || keep(r) {
			out = append(out, r.clone())
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// Len returns the number of requests.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.records)
}

// Waiting returns the ids of the requests waiting for a study with this
// accession number or Study Instance UID.
func (s *Store) Waiting(accession, study string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	seen := map[string]bool{}
	for _, k := range []string{"acc:" + accession, "study:" + study} {
		if k == "acc:" || k == "study:" {
			continue
		}
		for id := range s.waiting[k] {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// Put writes r. prevRevision is the revision the change was made on (-1
// for a new request): a record changed meanwhile is ErrConflict.
func (s *Store) Put(r *Request, prevRevision int) error {
	if !validID(r.ID) {
		return fmt.Errorf("telerequest: invalid id %q", r.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.records[r.ID]
	switch {
	case prevRevision < 0 && exists:
		return fmt.Errorf("%w: request %s exists", ErrConflict, r.ID)
	case prevRevision >= 0 && !exists:
		return fmt.Errorf("%w: request %q", ErrNotFound, r.ID)
	case exists && cur.Revision != prevRevision:
		return fmt.Errorf("%w: request %s is at revision %d, not %d", ErrConflict, r.ID, cur.Revision, prevRevision)
	}
	rec := r.clone()
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("telerequest: %w", err)
	}
	if err := atomicfile.Write(s.dir, r.ID+".json", b, 0o640); err != nil {
		return err
	}
	s.index(rec)
	return nil
}
