// Package badgerindex is the persistent storage.Index, on Badger v4
// (embedded LSM key-value store).
//
// Writes are NOT synced (SyncWrites false): the journal is the write-ahead
// log of the index. Each PutInstance/DeleteInstance records, in the same
// Badger transaction, the journal sequence it applies; after a crash the
// ingest replays the journal from AppliedSeq. Badger's own log is
// checksummed and truncated at the first torn entry on open, so what
// survives is a prefix of the transactions, consistent with AppliedSeq.
//
// The key layout and aggregation rules are shared with memindex (see
// storage/internal/kvindex): i/<sop>, s/<study>, r/<series>, p/<patient>,
// si/<study>/<series>/<sop>, ps/<patient>\x00<study>, meta/applied,
// meta/stats. Values are JSON (measured: see BenchmarkPutInstance).
//
// Memory is tuned for a small footprint: 4 MiB memtables (at most 2), 1 MiB
// base tables, no block compression (index values are small JSON; without
// compression blocks are read from the mmap'ed tables instead of being
// decompressed into heap buffers), 16 MiB block cache, 8 MiB index cache,
// values up to 64 KiB kept in the LSM tree. Measured with 150 000
// PutInstance at ~10 000/s (14x the target rate): Go heap in use 70-100 MB,
// anonymous RSS ~130 MB (~96 MB with GOGC=50), plus file-backed RSS of the
// mmap'ed tables (page cache, reclaimable). Badger allocates its table
// buffers on the Go heap, so the process should set GOMEMLIMIT.
package badgerindex

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/internal/kvindex"
)

// Options tunes the Badger index. Zero values select the defaults.
type Options struct {
	// MemTableSize is the size of one memtable (default 4 MiB: building the
	// L0 table of a memtable takes several times its size in heap).
	MemTableSize int64
	// BlockCacheSize is the block cache size (default 16 MiB).
	BlockCacheSize int64
	// IndexCacheSize is the table index cache size (default 8 MiB).
	IndexCacheSize int64
	// Logger receives Badger's warnings and errors (default slog.Default()).
	Logger *slog.Logger
}

// Index is a storage.Index stored in Badger. It is safe for concurrent use;
// writes are serialized.
type Index struct {
	*kvindex.Index
	db *badger.DB
}

var _ storage.Index = (*Index)(nil)

// Open opens (creating if needed) the index in dir. Only one process may
// open a directory at a time (Badger holds a lock file).
func Open(dir string, opts Options) (*Index, error) {
	if opts.MemTableSize <= 0 {
		opts.MemTableSize = 4 << 20
	}
	if opts.BlockCacheSize <= 0 {
		opts.BlockCacheSize = 16 << 20
	}
	if opts.IndexCacheSize <= 0 {
		opts.IndexCacheSize = 8 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithLogger(slogLogger{opts.Logger.With("component", "badger")}).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(10).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(64 << 10).
		WithBaseTableSize(1 << 20).
		WithCompression(options.None).
		WithNumCompactors(2).
		WithDetectConflicts(false) // writes are serialized by kvindex
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("badgerindex: open %s: %w", dir, err)
	}
	return &Index{Index: kvindex.New(badgerDB{db}), db: db}, nil
}

// DB exposes the underlying Badger database (for secondary indices added by
// query work, and for backups). Writers must respect the key layout.
func (ix *Index) DB() *badger.DB { return ix.db }

type badgerDB struct{ db *badger.DB }

func (b badgerDB) Update(fn func(kvindex.Txn) error) error {
	return b.db.Update(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
}

func (b badgerDB) View(fn func(kvindex.Txn) error) error {
	return b.db.View(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
}

func (b badgerDB) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("badgerindex: close: %w", err)
	}
	return nil
}

type badgerTxn struct{ txn *badger.Txn }

func (t badgerTxn) Get(key string) ([]byte, error) {
	item, err := t.txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (t badgerTxn) Set(key string, val []byte) error {
	if val == nil {
		val = []byte{}
	}
	return t.txn.Set([]byte(key), val)
}

func (t badgerTxn) Delete(key string) error { return t.txn.Delete([]byte(key)) }

func (t badgerTxn) Iterate(prefix, after string, limit int, keysOnly bool, fn func(key string, val []byte) error) error {
	io := badger.DefaultIteratorOptions
	io.Prefix = []byte(prefix)
	io.PrefetchValues = !keysOnly
	if !keysOnly {
		io.PrefetchSize = min(limit, 100)
	}
	it := t.txn.NewIterator(io)
	defer it.Close()
	start := []byte(prefix)
	if after != "" {
		start = append([]byte(after), 0) // smallest key > after
	}
	n := 0
	for it.Seek(start); it.Valid(); it.Next() {
		if limit > 0 && n >= limit {
			break
		}
		item := it.Item()
		var val []byte
		if !keysOnly {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			val = v
		}
		if err := fn(string(item.Key()), val); err != nil {
			return err
		}
		n++
	}
	return nil
}

// slogLogger adapts Badger's logger to slog, keeping warnings and errors
// only.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Errorf(f string, a ...any)   { s.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (s slogLogger) Warningf(f string, a ...any) { s.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (s slogLogger) Infof(string, ...any)        {}
func (s slogLogger) Debugf(string, ...any)       {}
