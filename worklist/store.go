package worklist

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// store keeps the items in Badger (synced writes): "i/<id>" → Item JSON,
// "rr/<pool>" → round-robin counter, "wm" → journal watermark.
type store struct{ db *badger.DB }

func openStore(dir string) (*store, error) {
	if dir == "" {
		return nil, errors.New("worklist: no store directory")
	}
	opts := badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil).
		WithMemTableSize(8 << 20).WithValueLogFileSize(64 << 20).WithNumVersionsToKeep(1)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("worklist: opening %s: %w", dir, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func (s *store) load(item func(*Item), rr func(string, uint64)) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			switch {
			case strings.HasPrefix(k, "i/"):
				var x Item
				if err := json.Unmarshal(v, &x); err != nil {
					return fmt.Errorf("worklist: item %s: %w", k, err)
				}
				if x.Escalated == nil {
					x.Escalated = []string{}
				}
				item(&x)
			case strings.HasPrefix(k, "rr/") && len(v) == 8:
				rr(k[3:], binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
}

// put writes items (and a pool's round-robin counter) atomically.
func (s *store) put(items []*Item, pool string, rr uint64) error {
	return s.db.Update(func(txn *badger.Txn) error {
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return err
			}
			if err := txn.Set([]byte("i/"+it.ID), b); err != nil {
				return err
			}
		}
		if pool != "" {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], rr)
			return txn.Set([]byte("rr/"+pool), v[:])
		}
		return nil
	})
}

func (s *store) watermark() uint64 {
	var wm uint64
	s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("wm"))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) == 8 {
				wm = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return wm
}

func (s *store) setWatermark(seq uint64) {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], seq)
	s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("wm"), v[:]) })
}

func (s *store) hasWatermark() bool {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte("wm"))
		return err
	})
	return err == nil
}
