// Package queue holds Relais's durable delivery queues: every delivery a
// route asks for is a persisted [Task] (destination list, instance,
// priority, attempts, next try, last error) in a Badger database under
// DATA/queue, and a [Dispatcher] delivers due tasks with per-destination
// workers over DIMSE (C-STORE) or DICOMweb (STOW-RS).
//
// # Durability and delivery semantics
//
// Badger writes are not synced one by one: the Store syncs every
// SyncInterval (200 ms) and on Close. Losing the last 200 ms of queue writes
// in a crash (power loss, kernel panic; a killed process loses nothing:
// the writes are in the page cache) has two effects, both bounded:
//
//   - a task created in that window is lost from the queue, but the routing
//     engine stores its journal watermark as meta in the same transaction as
//     the tasks it creates ([Store.Enqueue]), so after restart it replays the
//     journal above the (older) watermark and creates the task again
//     (Enqueue is put-if-absent on the caller's deterministic task ID);
//   - a task delivered in that window is pending again after restart and is
//     sent again: delivery is at-least-once. Every claim of a task for
//     sending is persisted (Task.Claimed) before the send starts; a task
//     found claimed at the next claim had an attempt whose outcome was never
//     recorded, and when it then succeeds it is counted as a possible
//     redelivery (metric relais_delivery_redeliveries_total and
//     "redelivery": true in the delivery.sent journal event). Duplicates are
//     thus bounded by the tasks in flight at the crash and are counted.
//
// # Key layout
//
//	t/<id>                                   the task (JSON)
//	p/<dest>\x00<prio><nexttry:8 BE><id>      pending tasks by current destination, priority, next try
//	s/<state>/<dest>\x00<created:8 BE><id>    every task by state, current destination, creation
//	m/<key>                                  meta of the caller (routing engine watermark, timers)
//	c/<state>                                number of tasks in the state (8 bytes BE)
//
// "The next due tasks of destination D" is a prefix scan of p/D\x00 per
// priority; backlog and oldest pending task are a keys-only scan of
// s/pending/D\x00. Index keys and counts are maintained in the
// transaction that writes the task.
//
// # Delivery
//
// See [Dispatcher]: per-destination workers, STAT first; exponential
// backoff with ±20 % jitter between attempts; after FailoverAfter failures
// on a destination (at once for a permanent failure: no acceptable
// transfer syntax, status 0122 or A9xx) the task moves to the next of its
// destinations; after MaxAttempts failures on the last one it is dead
// (journal delivery.dead, metric, webhook, ERROR log). Instances go as
// stored when the destination accepts the stored transfer syntax;
// uncompressed syntaxes are converted among themselves; compressed data is
// not transcoded (yet): a destination that accepts none of the stored
// syntax fails the task permanently with a reason naming the syntax and
// SOP class.
package queue

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Priority orders tasks: lower is served first.
type Priority int

// Priorities.
const (
	Stat Priority = iota
	Urgent
	Routine
)

func (p Priority) String() string {
	switch p {
	case Stat:
		return "STAT"
	case Urgent:
		return "URGENT"
	case Routine:
		return "ROUTINE"
	}
	return fmt.Sprintf("Priority(%d)", int(p))
}

// MarshalText writes the priority's name.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a priority name.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePriority parses "STAT", "URGENT", "ROUTINE" (case-insensitive); ""
// is ROUTINE.
func ParsePriority(s string) (Priority, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "STAT":
		return Stat, nil
	case "URGENT":
		return Urgent, nil
	case "ROUTINE", "":
		return Routine, nil
	}
	return Routine, fmt.Errorf("queue: unknown priority %q (STAT, URGENT or ROUTINE)", s)
}

// State is a task's state.
type State string

// Task states. Only pending tasks are delivered.
const (
	Pending   State = "pending"
	Done      State = "done"
	Dead      State = "dead"
	Cancelled State = "cancelled"
)

// States lists every state.
var States = []State{Pending, Done, Dead, Cancelled}

// Task is one delivery: one instance to one destination (with failovers).
type Task struct {
	// ID is given by the caller and deterministic (the routing engine
	// derives it from route, destinations, instance and generation), so
	// that Enqueue is put-if-absent.
	ID       string   `json:"id"`
	Route    string   `json:"route,omitempty"`
	Priority Priority `json:"priority"`
	// Destinations are the forward destination then its failovers, by
	// name (config.Destinations); Current indexes the current target.
	Destinations []string `json:"destinations"`
	Current      int      `json:"current"`

	StudyUID       string `json:"study,omitempty"`
	SeriesUID      string `json:"series,omitempty"`
	SOPInstanceUID string `json:"sop"`
	// Coerce is opaque to the queue: handed to the Dispatcher's Prepare.
	Coerce json.RawMessage `json:"coerce,omitempty"`

	State State `json:"state"`
	// Attempts counts failed attempts on the current destination,
	// TotalAttempts on all of them.
	Attempts      int       `json:"attempts"`
	TotalAttempts int       `json:"total_attempts"`
	NextTry       time.Time `json:"next_try"`
	LastError     string    `json:"last_error,omitempty"`
	// Claimed is set when a worker takes the task for sending and cleared
	// when the outcome is recorded: a task found claimed had an attempt
	// whose outcome was lost (crash) and may have been delivered.
	Claimed   time.Time `json:"claimed,omitzero"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Delivered time.Time `json:"delivered,omitzero"`
}

// Destination returns the current target ("" if the list is empty).
func (t *Task) Destination() string {
	if t.Current >= 0 && t.Current < len(t.Destinations) {
		return t.Destinations[t.Current]
	}
	return ""
}

// ErrNotFound is returned for an unknown task ID or meta key.
var ErrNotFound = errors.New("queue: not found")

// ErrState is returned when an operation does not apply to a task's state
// (cancelling a delivered task, for instance).
var ErrState = errors.New("queue: not allowed in this state")

// Options configures Open.
type Options struct {
	// SyncInterval is how often writes are synced (default 200 ms).
	SyncInterval time.Duration
	// Clock defaults to time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Store is the durable task store. Its methods are safe for concurrent
// use; writes are serialized.
type Store struct {
	db    *badger.DB
	clock func() time.Time
	log   *slog.Logger
	wmu   sync.Mutex // serializes writes
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// Open opens (creating it) the store in dir, conventionally DATA/queue.
// Only one process may open it (Badger holds a lock): see IsLocked.
func Open(dir string, opt Options) (*Store, error) {
	if opt.SyncInterval <= 0 {
		opt.SyncInterval = 200 * time.Millisecond
	}
	if opt.Clock == nil {
		opt.Clock = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithLogger(badgerLogger{opt.Logger.With("component", "queue")}).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(10).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(32 << 20).
		WithValueThreshold(64 << 10).
		WithBaseTableSize(1 << 20).
		WithCompression(options.None).
		WithNumCompactors(2).
		WithDetectConflicts(false) // writes are serialized by wmu
	db, err := badger.Open(bo)
	if err != nil {
		if IsLocked(err) {
			return nil, fmt.Errorf("queue: %s is in use by another process (is relais serve running?): %w", dir, err)
		}
		return nil, fmt.Errorf("queue: open %s: %w", dir, err)
	}
	s := &Store{db: db, clock: opt.Clock, log: opt.Logger, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.syncer(opt.SyncInterval)
	return s, nil
}

// IsLocked reports whether an Open error means another process holds the
// store (then use the running server's admin API).
func IsLocked(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "Cannot acquire directory lock") ||
		strings.Contains(err.Error(), "resource temporarily unavailable") || strings.Contains(err.Error(), "in use by another process"))
}

// DefaultDir is the store's directory under a data directory.
func DefaultDir(dataDir string) string { return filepath.Join(dataDir, "queue") }

func (s *Store) syncer(every time.Duration) {
	defer s.wg.Done()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tk.C:
			if err := s.db.Sync(); err != nil {
				s.log.Error("queue: sync failed", "err", err)
			}
		}
	}
}

// Sync makes every write so far durable.
func (s *Store) Sync() error { return s.db.Sync() }

// Close syncs and closes the store.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		if e := s.db.Sync(); e != nil {
			err = e
		}
		if e := s.db.Close(); e != nil && err == nil {
			err = e
		}
	})
	return err
}

// --- keys ---

func be64(t time.Time) []byte {
	var b [8]byte
	n := t.UnixNano()
	if t.IsZero() || n < 0 {
		n = 0
	}
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
}

func taskKey(id string) []byte { return []byte("t/" + id) }

func destPrefix(dest string) string { return "p/" + dest + "\x00" }

func pendingKey(t *Task) []byte {
	k := append([]byte(destPrefix(t.Destination())), byte('0'+t.Priority))
	k = append(k, be64(t.NextTry)...)
	return append(k, t.ID...)
}

func statePrefix(st State, dest string) string {
	p := "s/" + string(st) + "/"
	if dest != "" {
		p += dest + "\x00"
	}
	return p
}

func stateKey(t *Task) []byte {
	k := append([]byte(statePrefix(t.State, t.Destination())), be64(t.Created)...)
	return append(k, t.ID...)
}

func metaKey(k string) []byte { return []byte("m/" + k) }

func countKey(st State) []byte { return []byte("c/" + string(st)) }

// addCount adjusts the persisted number of tasks in state st.
func addCount(txn *badger.Txn, st State, delta int64) error {
	var n int64
	it, err := txn.Get(countKey(st))
	switch {
	case err == nil:
		if err := it.Value(func(v []byte) error {
			if len(v) == 8 {
				n = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		}); err != nil {
			return err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	n = max(0, n+delta)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return txn.Set(countKey(st), b[:])
}

// put writes t and its index keys, removing old's, and keeps the counts
// by state.
func put(txn *badger.Txn, old, t *Task) error {
	if old == nil {
		if err := addCount(txn, t.State, 1); err != nil {
			return err
		}
	} else if old.State != t.State {
		if err := addCount(txn, old.State, -1); err != nil {
			return err
		}
		if err := addCount(txn, t.State, 1); err != nil {
			return err
		}
	}
	if old != nil {
		if old.State == Pending {
			if err := txn.Delete(pendingKey(old)); err != nil {
				return err
			}
		}
		if err := txn.Delete(stateKey(old)); err != nil {
			return err
		}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := txn.Set(taskKey(t.ID), b); err != nil {
		return err
	}
	if t.State == Pending {
		if err := txn.Set(pendingKey(t), nil); err != nil {
			return err
		}
	}
	return txn.Set(stateKey(t), nil)
}

func get(txn *badger.Txn, id string) (*Task, error) {
	it, err := txn.Get(taskKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: task %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	t := new(Task)
	err = it.Value(func(v []byte) error { return json.Unmarshal(v, t) })
	return t, err
}

func (s *Store) update(fn func(txn *badger.Txn) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.db.Update(fn)
}

// --- creation and meta ---

// Enqueue creates the tasks whose ID does not exist yet (put-if-absent)
// and writes meta, in one transaction: the routing engine stores its
// journal watermark and stability timers as meta atomically with the
// tasks they produce. A nil meta value deletes the key. New tasks get
// State pending, Created/Updated now and NextTry now (unless set). It
// returns the number of tasks created.
func (s *Store) Enqueue(ctx context.Context, tasks []Task, meta map[string][]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := s.clock()
	for i := range tasks {
		if tasks[i].ID == "" {
			return 0, errors.New("queue: task without ID")
		}
		if len(tasks[i].Destinations) == 0 {
			return 0, fmt.Errorf("queue: task %q has no destination", tasks[i].ID)
		}
		if strings.ContainsRune(strings.Join(tasks[i].Destinations, ""), 0) {
			return 0, fmt.Errorf("queue: task %q: NUL in a destination name", tasks[i].ID)
		}
	}
	created := 0
	err := s.update(func(txn *badger.Txn) error {
		created = 0
		for i := range tasks {
			t := tasks[i] // copy
			if _, err := txn.Get(taskKey(t.ID)); err == nil {
				continue
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			t.State = Pending
			if t.Current < 0 || t.Current >= len(t.Destinations) {
				t.Current = 0
			}
			if t.Created.IsZero() {
				t.Created = now
			}
			t.Updated = now
			if t.NextTry.IsZero() {
				t.NextTry = now
			}
			t.Destinations = append([]string(nil), t.Destinations...)
			if err := put(txn, nil, &t); err != nil {
				return err
			}
			created++
		}
		return putMeta(txn, meta)
	})
	if err != nil {
		return 0, fmt.Errorf("queue: enqueue: %w", err)
	}
	return created, nil
}

func putMeta(txn *badger.Txn, meta map[string][]byte) error {
	for k, v := range meta {
		var err error
		if v == nil {
			err = txn.Delete(metaKey(k))
		} else {
			err = txn.Set(metaKey(k), v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Meta returns a meta value; ErrNotFound if missing.
func (s *Store) Meta(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(metaKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: meta %q", ErrNotFound, key)
		}
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	return out, err
}

// MetaPrefix calls fn for every meta key starting with prefix, in key
// order. An error from fn stops and is returned.
func (s *Store) MetaPrefix(prefix string, fn func(key string, val []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = metaKey(prefix)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(strings.TrimPrefix(string(it.Item().Key()), "m/"), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutMeta writes meta keys in one transaction (a nil value deletes).
func (s *Store) PutMeta(meta map[string][]byte) error {
	return s.update(func(txn *badger.Txn) error { return putMeta(txn, meta) })
}

// DeleteMeta deletes meta keys.
func (s *Store) DeleteMeta(keys ...string) error {
	return s.update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(metaKey(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// --- reading ---

// Get returns a task; ErrNotFound if missing.
func (s *Store) Get(id string) (*Task, error) {
	var t *Task
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		t, err = get(txn, id)
		return err
	})
	return t, err
}

// Filter selects tasks for List. Empty fields match everything.
type Filter struct {
	State       State
	Destination string // the current destination
	Study       string
	Route       string
	// Limit bounds the result (0: no limit).
	Limit int
}

func (f Filter) match(t *Task) bool {
	return (f.State == "" || t.State == f.State) &&
		(f.Destination == "" || t.Destination() == f.Destination) &&
		(f.Study == "" || t.StudyUID == f.Study) &&
		(f.Route == "" || t.Route == f.Route)
}

// List returns the tasks f selects: with a State, in order of current
// destination then creation (an index scan); otherwise in ID order.
func (s *Store) List(ctx context.Context, f Filter) ([]*Task, error) {
	var out []*Task
	err := s.db.View(func(txn *badger.Txn) error {
		add := func(t *Task) bool {
			if f.match(t) {
				out = append(out, t)
			}
			return f.Limit <= 0 || len(out) < f.Limit
		}
		if f.State != "" {
			o := badger.DefaultIteratorOptions
			o.PrefetchValues = false
			o.Prefix = []byte(statePrefix(f.State, f.Destination))
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				k := it.Item().Key()
				i := strings.IndexByte(string(k), 0)
				if i < 0 || len(k) < i+9 {
					continue
				}
				t, err := get(txn, string(k[i+9:]))
				if err != nil {
					return err
				}
				if !add(t) {
					return nil
				}
			}
			return nil
		}
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte("t/")
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			t := new(Task)
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, t) }); err != nil {
				return err
			}
			if !add(t) {
				return nil
			}
		}
		return nil
	})
	return out, err
}

// DestStats is the pending backlog of one destination.
type DestStats struct {
	Backlog int
	// Oldest is the creation time of the oldest pending task (zero if none).
	Oldest time.Time
}

// Stats counts tasks by state (persisted counters) and the pending
// backlog by current destination (a keys-only scan of the pending part of
// the state index).
func (s *Store) Stats() (map[State]int, map[string]DestStats, error) {
	byState := map[State]int{}
	byDest := map[string]DestStats{}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, st := range States {
			it, err := txn.Get(countKey(st))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			it.Value(func(v []byte) error {
				if len(v) == 8 {
					byState[st] = int(binary.BigEndian.Uint64(v))
				}
				return nil
			})
		}
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte(statePrefix(Pending, ""))
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())[2:]
			slash := strings.IndexByte(k, '/')
			if slash < 0 {
				continue
			}
			rest := k[slash+1:]
			nul := strings.IndexByte(rest, 0)
			if nul < 0 || len(rest) < nul+9 {
				continue
			}
			d := rest[:nul]
			ds := byDest[d]
			ds.Backlog++
			created := time.Unix(0, int64(binary.BigEndian.Uint64([]byte(rest[nul+1:nul+9]))))
			if ds.Oldest.IsZero() || created.Before(ds.Oldest) {
				ds.Oldest = created
			}
			byDest[d] = ds
		}
		return nil
	})
	return byState, byDest, err
}

// NextDue returns the earliest NextTry of dest's pending tasks whose ID
// skip does not reject (ok false when there is none).
func (s *Store) NextDue(dest string, skip func(id string) bool) (time.Time, bool, error) {
	var best time.Time
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		for p := Stat; p <= Routine; p++ {
			o.Prefix = append([]byte(destPrefix(dest)), byte('0'+p))
			it := txn.NewIterator(o)
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				at, id := parsePending(k, len(o.Prefix))
				if skip != nil && skip(id) {
					continue
				}
				if !found || at.Before(best) {
					best, found = at, true
				}
				break
			}
			it.Close()
		}
		return nil
	})
	return best, found, err
}

func parsePending(k []byte, plen int) (time.Time, string) {
	if len(k) < plen+8 {
		return time.Time{}, ""
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[plen:plen+8]))), string(k[plen+8:])
}

// PendingDestinations lists the current destinations of pending tasks.
func (s *Store) PendingDestinations() ([]string, error) {
	_, byDest, err := s.Stats()
	var out []string
	for d := range byDest {
		out = append(out, d)
	}
	return out, err
}

// --- delivery transitions ---

// Claim takes up to limit due tasks (NextTry ≤ now) of dest, STAT first,
// then by NextTry, skipping IDs skip rejects (those in flight), and marks
// them claimed (Task.Claimed = now) before returning them. prevClaimed[i]
// is tasks[i]'s previous claim: non-zero means an earlier attempt's outcome
// was never recorded (a crash) and the instance may already be delivered.
func (s *Store) Claim(dest string, now time.Time, limit int, skip func(id string) bool) (tasks []*Task, prevClaimed []time.Time, err error) {
	if limit <= 0 {
		limit = 1
	}
	err = s.update(func(txn *badger.Txn) error {
		tasks, prevClaimed = nil, nil
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		var ids []string
		for p := Stat; p <= Routine && len(ids) < limit; p++ {
			o.Prefix = append([]byte(destPrefix(dest)), byte('0'+p))
			it := txn.NewIterator(o)
			for it.Rewind(); it.Valid() && len(ids) < limit; it.Next() {
				at, id := parsePending(it.Item().KeyCopy(nil), len(o.Prefix))
				if at.After(now) {
					break
				}
				if skip != nil && skip(id) {
					continue
				}
				ids = append(ids, id)
			}
			it.Close()
		}
		for _, id := range ids {
			t, err := get(txn, id)
			if err != nil {
				return err
			}
			old := *t
			prevClaimed = append(prevClaimed, t.Claimed)
			t.Claimed = now
			if err := put(txn, &old, t); err != nil {
				return err
			}
			tasks = append(tasks, t)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("queue: claim: %w", err)
	}
	return tasks, prevClaimed, nil
}

// Policy is the retry and failover policy Complete applies.
type Policy struct {
	RetryInitial, RetryMax time.Duration
	// MaxAttempts is the failures on the last destination before the task
	// is dead (default 20).
	MaxAttempts int
	// FailoverAfter returns the failures on a destination before moving to
	// the next (default 5).
	FailoverAfter func(dest string) int
	// Jitter returns a value in [-1, 1): the backoff is scaled by
	// 1 + 0.2·Jitter(). nil: random.
	Jitter func() float64
}

// Backoff returns the delay before the next attempt after attempts
// failures: RetryInitial·2^(attempts-1) capped at RetryMax, then scaled by
// 1 + 0.2·jitter (jitter in [-1, 1]).
func (p Policy) Backoff(attempts int, jitter float64) time.Duration {
	ini, mx := p.RetryInitial, p.RetryMax
	if ini <= 0 {
		ini = 2 * time.Second
	}
	if mx <= 0 {
		mx = 10 * time.Minute
	}
	if attempts < 1 {
		attempts = 1
	}
	d := float64(ini) * math.Pow(2, float64(attempts-1))
	if d > float64(mx) {
		d = float64(mx)
	}
	jitter = max(-1, min(1, jitter))
	return time.Duration(d * (1 + 0.2*jitter))
}

// Outcome is the result of one attempt at a task.
type Outcome struct {
	ID string
	// Claimed is the claim the attempt was made under (Task.Claimed as
	// returned by Claim): if the task was changed since (retried,
	// cancelled, rerouted), the outcome is not applied to its state.
	Claimed time.Time
	// Err is nil when the destination accepted the instance.
	Err error
	// Permanent failures (the destination can never accept this instance)
	// fail over at once, or kill the task when no failover is left.
	Permanent bool
	// Fatal failures (the instance itself is gone) kill the task at once.
	Fatal bool
}

// Transition says what Complete did to a task.
type Transition string

// Transitions.
const (
	Sent     Transition = "sent"     // delivered: state done
	Retrying Transition = "retrying" // failed, retried later on the same destination
	Failover Transition = "failover" // failed, moved to the next destination
	Died     Transition = "dead"     // failed for the last time: state dead
	Stale    Transition = "stale"    // the task changed during the attempt: left as is
)

// Result is one applied outcome.
type Result struct {
	Task       *Task // after the transition
	Transition Transition
	// From is the destination of the attempt and Attempt its number there
	// (1 for the first attempt on From).
	From    string
	Attempt int
}

// Complete records attempt outcomes in one transaction and returns what
// became of each task.
func (s *Store) Complete(now time.Time, pol Policy, outs []Outcome) ([]Result, error) {
	if pol.MaxAttempts <= 0 {
		pol.MaxAttempts = 20
	}
	jit := pol.Jitter
	if jit == nil {
		jit = func() float64 { return rand.Float64()*2 - 1 }
	}
	var res []Result
	err := s.update(func(txn *badger.Txn) error {
		res = res[:0]
		for _, o := range outs {
			t, err := get(txn, o.ID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			r := Result{From: t.Destination(), Attempt: t.Attempts + 1}
			if t.State != Pending || !t.Claimed.Equal(o.Claimed) {
				r.Task, r.Transition = t, Stale
				if o.Err == nil {
					r.Transition = Sent // delivered nonetheless; the state is the admin's
				}
				res = append(res, r)
				continue
			}
			old := *t
			t.Claimed = time.Time{}
			t.Updated = now
			if o.Err == nil {
				t.State, t.Delivered, t.LastError = Done, now, ""
				r.Transition = Sent
			} else {
				t.Attempts++
				t.TotalAttempts++
				t.LastError = o.Err.Error()
				last := t.Current >= len(t.Destinations)-1
				after := 5
				if pol.FailoverAfter != nil {
					if n := pol.FailoverAfter(t.Destination()); n > 0 {
						after = n
					}
				}
				switch {
				case o.Fatal:
					t.State, r.Transition = Dead, Died
				case !last && (o.Permanent || t.Attempts >= after):
					t.Current++
					t.Attempts = 0
					t.NextTry = now
					r.Transition = Failover
				case last && (o.Permanent || t.Attempts >= pol.MaxAttempts):
					t.State, r.Transition = Dead, Died
				default:
					t.NextTry = now.Add(pol.Backoff(t.Attempts, jit()))
					r.Transition = Retrying
				}
			}
			if err := put(txn, &old, t); err != nil {
				return err
			}
			r.Task = t
			res = append(res, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: complete: %w", err)
	}
	return res, nil
}

// Release clears the claims of tasks whose attempt did not happen (the
// dispatcher stops): they stay due.
func (s *Store) Release(ids []string, claimed []time.Time) error {
	return s.update(func(txn *badger.Txn) error {
		for i, id := range ids {
			t, err := get(txn, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !t.Claimed.Equal(claimed[i]) {
				continue
			}
			old := *t
			t.Claimed = time.Time{}
			if err := put(txn, &old, t); err != nil {
				return err
			}
		}
		return nil
	})
}

// Purge deletes done and cancelled tasks last updated before before, and
// returns how many. Dead and pending tasks are never purged. A purged
// task's ID is free again: purge only what the routing engine will not
// replay (its journal watermark is far past them).
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for _, st := range []State{Done, Cancelled} {
		var after []byte
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			n, last, err := s.purgeSome(st, before, after, 500)
			total += n
			if err != nil {
				return total, fmt.Errorf("queue: purge: %w", err)
			}
			if last == nil {
				break
			}
			after = last
		}
	}
	return total, nil
}

// purgeSome examines up to limit index keys of state st after the key
// after; last is the last key examined (nil at the end).
func (s *Store) purgeSome(st State, before time.Time, after []byte, limit int) (n int, last []byte, err error) {
	err = s.update(func(txn *badger.Txn) error {
		n, last = 0, nil
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte(statePrefix(st, ""))
		it := txn.NewIterator(o)
		var ids []string
		seen := 0
		start := o.Prefix
		if after != nil {
			start = append(append([]byte(nil), after...), 0)
		}
		for it.Seek(start); it.Valid() && seen < limit; it.Next() {
			k := it.Item().KeyCopy(nil)
			seen++
			last = k
			i := strings.IndexByte(string(k), 0)
			if i < 0 || len(k) < i+9 {
				continue
			}
			ids = append(ids, string(k[i+9:]))
		}
		it.Close()
		if seen < limit {
			last = nil
		}
		for _, id := range ids {
			t, err := get(txn, id)
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if t.State != st || !t.Updated.Before(before) {
				continue
			}
			if err := txn.Delete(stateKey(t)); err != nil {
				return err
			}
			if err := txn.Delete(taskKey(t.ID)); err != nil {
				return err
			}
			if err := addCount(txn, st, -1); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, last, err
}

// --- operator actions ---

func (s *Store) modify(id string, fn func(t *Task) error) (*Task, error) {
	var out *Task
	err := s.update(func(txn *badger.Txn) error {
		t, err := get(txn, id)
		if err != nil {
			return err
		}
		old := *t
		if err := fn(t); err != nil {
			return err
		}
		t.Updated = s.clock()
		out = t
		return put(txn, &old, t)
	})
	return out, err
}

// Retry makes a dead or pending task due now with its attempts on the
// current destination reset (a dead task restarts on its last
// destination). Done and cancelled tasks are refused with ErrState.
func (s *Store) Retry(id string) error {
	_, err := s.RetryTask(id)
	return err
}

// RetryTask is Retry returning the task.
func (s *Store) RetryTask(id string) (*Task, error) {
	return s.modify(id, func(t *Task) error {
		if t.State != Dead && t.State != Pending {
			return fmt.Errorf("%w: task %s is %s", ErrState, id, t.State)
		}
		t.State, t.Attempts, t.NextTry, t.Claimed = Pending, 0, s.clock(), time.Time{}
		return nil
	})
}

// Cancel gives up a pending or dead task; reason is kept as LastError.
func (s *Store) Cancel(id, reason string) error {
	_, err := s.CancelTask(id, reason)
	return err
}

// CancelTask is Cancel returning the task.
func (s *Store) CancelTask(id, reason string) (*Task, error) {
	return s.modify(id, func(t *Task) error {
		if t.State != Dead && t.State != Pending {
			return fmt.Errorf("%w: task %s is %s", ErrState, id, t.State)
		}
		if reason == "" {
			reason = "cancelled by an operator"
		}
		t.State, t.LastError, t.Claimed = Cancelled, reason, time.Time{}
		return nil
	})
}

// Reroute replaces the task's target list by [destination] and makes it
// pending and due now, attempts reset (any state but done).
func (s *Store) Reroute(id, destination string) error {
	_, err := s.RerouteTask(id, destination)
	return err
}

// RerouteTask is Reroute returning the task.
func (s *Store) RerouteTask(id, destination string) (*Task, error) {
	if destination == "" || strings.ContainsRune(destination, 0) {
		return nil, fmt.Errorf("queue: invalid destination %q", destination)
	}
	return s.modify(id, func(t *Task) error {
		if t.State == Done {
			return fmt.Errorf("%w: task %s is already delivered", ErrState, id)
		}
		t.Destinations, t.Current = []string{destination}, 0
		t.State, t.Attempts, t.NextTry, t.Claimed = Pending, 0, s.clock(), time.Time{}
		return nil
	})
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
