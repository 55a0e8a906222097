// Package memindex is an in-memory storage.Index for unit tests of other
// packages. It shares its data model and aggregation rules with badgerindex
// (both are built on storage/internal/kvindex), so it behaves the same, but
// it keeps nothing across restarts.
package memindex

import (
	"sort"
	"strings"
	"sync"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/internal/kvindex"
)

// Index is an in-memory storage.Index. It is safe for concurrent use.
type Index struct {
	*kvindex.Index
}

var _ storage.Index = (*Index)(nil)

// New returns an empty in-memory index.
func New() *Index {
	return &Index{kvindex.New(&memDB{m: map[string][]byte{}})}
}

type memDB struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func (db *memDB) Update(fn func(kvindex.Txn) error) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	tx := &memTxn{db: db, writes: map[string][]byte{}, deletes: map[string]bool{}}
	if err := fn(tx); err != nil {
		return err // discard
	}
	for k := range tx.deletes {
		delete(db.m, k)
	}
	for k, v := range tx.writes {
		db.m[k] = v
	}
	return nil
}

func (db *memDB) View(fn func(kvindex.Txn) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return fn(&memTxn{db: db, readOnly: true})
}

func (db *memDB) Close() error { return nil }

type memTxn struct {
	db       *memDB
	readOnly bool
	writes   map[string][]byte
	deletes  map[string]bool
}

func (tx *memTxn) Get(key string) ([]byte, error) {
	if v, ok := tx.writes[key]; ok {
		return append([]byte(nil), v...), nil
	}
	if tx.deletes[key] {
		return nil, storage.ErrNotFound
	}
	v, ok := tx.db.m[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (tx *memTxn) Set(key string, val []byte) error {
	delete(tx.deletes, key)
	tx.writes[key] = append([]byte{}, val...)
	return nil
}

func (tx *memTxn) Delete(key string) error {
	delete(tx.writes, key)
	tx.deletes[key] = true
	return nil
}

func (tx *memTxn) Iterate(prefix, after string, limit int, keysOnly bool, fn func(key string, val []byte) error) error {
	var keys []string
	seen := map[string]bool{}
	consider := func(k string) {
		if strings.HasPrefix(k, prefix) && (after == "" || k > after) && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for k := range tx.db.m {
		if !tx.deletes[k] {
			consider(k)
		}
	}
	for k := range tx.writes {
		consider(k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if limit > 0 && i >= limit {
			break
		}
		var v []byte
		if !keysOnly {
			v, _ = tx.Get(k)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}
