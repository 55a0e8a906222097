// Package journal is Relais' append-only, durable event log.
//
// It owns two roles at once:
//
//   - the write-ahead log of the storage index: the ingest pipeline appends an
//     "instance.stored" event carrying the full index record and waits until
//     it is durable before it acknowledges the instance; the (Badger) index is
//     then written WITHOUT sync and records the journal sequence number it has
//     applied. After a crash, events after the index's applied sequence are
//     replayed into the index. This makes one small sequential fdatasync (an
//     append to an already allocated file, ~0.25 ms) the only index cost on
//     the acknowledgement path, instead of a B-tree/LSM sync per instance;
//   - the audit trail (associations, refusals, failures), queried read-only by
//     [Query], possibly from another process while the server appends.
//
// # Durability and group commit
//
// [Journal.Append] returns only once the event is on stable storage
// (fdatasync). A single flusher goroutine writes every pending event with one
// write(2) and one fdatasync, so concurrent Appends share a sync (group
// commit): throughput scales with concurrency while the latency of a single
// writer stays one append+fdatasync. No caller is released before the sync
// covering its event has returned. A failed write or sync poisons the journal
// (every later Append fails): after a failed fsync the state of the page cache
// is unknown and retrying could acknowledge lost data.
//
// # Format
//
// Segment files are named journal-%016d.log after the sequence number of
// their first event and rotate once they reach Options.SegmentSize. Each event
// is one line: "<crc32c of the JSON, 8 lowercase hex digits> <JSON>\n".
// Sequence numbers start at 1 and continue across restarts and segments.
//
// At [Open] the last segment is verified line by line: a torn tail (a partial
// last line, or corrupt lines up to the end of file, i.e. a write that never
// completed and therefore was never acknowledged) is truncated and logged; a
// corrupt line FOLLOWED by valid lines is an error, because dropping it would
// silently lose acknowledged data. Earlier segments were fdatasync'ed before
// rotation and are not re-read at Open; Replay verifies every record it
// reads and fails with ErrCorrupt on a bad one.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Event is one journal record.
type Event struct {
	// Seq is the journal sequence number, assigned by Append (strictly
	// increasing, starting at 1, continuing across restarts).
	Seq uint64 `json:"seq"`
	// Time is assigned by Append when zero.
	Time time.Time `json:"time"`
	// Kind is the event type, e.g. "association.accepted",
	// "association.rejected", "association.released", "association.aborted",
	// "instance.stored", "instance.duplicate", "instance.refused", "failure".
	Kind string `json:"kind"`

	AE       string `json:"ae,omitempty"`
	CalledAE string `json:"called_ae,omitempty"`
	// User is the authenticated user of an HTTP request (token's user).
	User        string `json:"user,omitempty"`
	Addr        string `json:"addr,omitempty"`
	Association string `json:"association,omitempty"`

	StudyUID       string `json:"study,omitempty"`
	SeriesUID      string `json:"series,omitempty"`
	SOPInstanceUID string `json:"sop,omitempty"`

	// Status is a DICOM status, e.g. "A900".
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`

	// Data is a kind-specific payload (the index record for instance.stored).
	Data json.RawMessage `json:"data,omitempty"`
}

// Options configures Open.
type Options struct {
	// SegmentSize is the size at which the journal rotates to a new segment
	// file. Default 64 MiB.
	SegmentSize int64
	// NoSync disables fdatasync. For tests only: Append is then NOT durable.
	NoSync bool
}

// DefaultSegmentSize is the default Options.SegmentSize.
const DefaultSegmentSize = 64 << 20

// ErrClosed is returned by Append on a closed journal.
var ErrClosed = errors.New("journal: closed")

// ErrCorrupt is wrapped by errors about corrupt journal content that cannot be
// explained by a torn tail.
var ErrCorrupt = errors.New("journal: corrupt")

const (
	segPrefix = "journal-"
	segSuffix = ".log"
	lockName  = "LOCK"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// batch is a group of events written and synced together.
type batch struct {
	done chan struct{}
	err  error
}

type pendingLine struct {
	seq  uint64
	line []byte
}

// Journal is an open, exclusively owned journal. Its methods are safe for
// concurrent use.
type Journal struct {
	dir  string
	opt  Options
	lock *os.File

	mu      sync.Mutex
	cond    *sync.Cond // signals the flusher
	lastSeq uint64     // last assigned seq
	pending []pendingLine
	cur     *batch // batch collecting the pending events
	// urgent is set when a pending event has a waiter (Append) or when
	// async events have waited AsyncDelay: only then does the flusher
	// write and sync. Async events (association notices, queries,
	// deliveries) thus ride on the next synchronous append's fdatasync
	// instead of costing one each.
	urgent bool
	timer  *time.Timer
	closed bool
	err    error // sticky write/sync error

	// flusher-owned
	seg     *os.File
	segSize int64

	durableSeq atomic.Uint64
	syncs      atomic.Uint64
	appends    atomic.Uint64
	flusherWG  sync.WaitGroup
}

// Open opens (creating if needed) the journal in dir as its exclusive writer:
// a LOCK file is flock'ed, so a second Open (in this or another process)
// fails. It recovers the last sequence number and truncates a torn tail.
func Open(dir string, opt Options) (*Journal, error) {
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: create dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: open lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("journal: %s is locked by another writer: %w", dir, err)
	}
	j := &Journal{dir: dir, opt: opt, lock: lock}
	j.cond = sync.NewCond(&j.mu)
	if err := j.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	j.durableSeq.Store(j.lastSeq)
	j.flusherWG.Add(1)
	go j.flusher()
	return j, nil
}

// segment is a segment file and the seq of its first event.
type segment struct {
	first uint64
	path  string
}

func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: list %s: %w", dir, err)
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, segment{first: n, path: filepath.Join(dir, name)})
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a].first < segs[b].first })
	return segs, nil
}

func segName(first uint64) string { return fmt.Sprintf("%s%016d%s", segPrefix, first, segSuffix) }

// recover scans the last segment, truncates a torn tail and opens it for
// appending.
func (j *Journal) recover() error {
	segs, err := listSegments(j.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		j.lastSeq = 0
		return j.openSegment(1)
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: open segment: %w", err)
	}
	good, lastSeq, err := scanForRecovery(f, last)
	if err != nil {
		f.Close()
		return err
	}
	if lastSeq == 0 {
		lastSeq = last.first - 1
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("journal: stat segment: %w", err)
	}
	if st.Size() > good {
		slog.Warn("journal: truncating torn tail", "segment", last.path, "offset", good, "dropped_bytes", st.Size()-good, "last_seq", lastSeq)
		if err := f.Truncate(good); err != nil {
			f.Close()
			return fmt.Errorf("journal: truncate torn tail: %w", err)
		}
		if !j.opt.NoSync {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				f.Close()
				return fmt.Errorf("journal: sync after truncate: %w", err)
			}
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("journal: seek: %w", err)
	}
	j.seg, j.segSize, j.lastSeq = f, good, lastSeq
	return nil
}

// scanForRecovery verifies every line of a segment and returns the offset
// just after the last valid line and its seq (0 when none).
func scanForRecovery(f *os.File, seg segment) (good int64, lastSeq uint64, err error) {
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64
	badAt := int64(-1)
	var badErr error
	endsAfterBad := false
	expect := seg.first
	for {
		line, rerr := r.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull {
			// Very long line: accumulate.
			buf := append([]byte(nil), line...)
			for rerr == bufio.ErrBufferFull {
				line, rerr = r.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if len(line) == 0 && rerr == io.EOF {
			break
		}
		if rerr != nil && rerr != io.EOF {
			return 0, 0, fmt.Errorf("journal: read %s: %w", seg.path, rerr)
		}
		if rerr == io.EOF { // partial last line: torn tail
			break
		}
		ev, perr := parseLine(line)
		if perr == nil && badAt < 0 && ev.Seq != expect {
			// A checksummed record with the wrong seq is not a torn write.
			return 0, 0, fmt.Errorf("%w: %s offset %d: seq %d, expected %d", ErrCorrupt, seg.path, off, ev.Seq, expect)
		}
		if perr != nil {
			if badAt < 0 {
				badAt, badErr = off, perr
			}
		} else {
			if badAt >= 0 && endsAfterBad {
				// A synced write ended after the bad line: the bad line was
				// acknowledged data, not a torn final batch.
				return 0, 0, fmt.Errorf("%w: %s: invalid record at offset %d (%v) followed by valid record seq %d at offset %d: refusing to drop acknowledged events; inspect and repair the segment manually",
					ErrCorrupt, seg.path, badAt, badErr, ev.Seq, off)
			}
			if badAt >= 0 {
				// Valid lines after a bad one, with no synced write ending
				// in between: all of it is the final, unacknowledged batch.
				if line[8] == batchEnd {
					endsAfterBad = true
				}
				off += int64(len(line))
				continue
			}
			lastSeq = ev.Seq
			expect++
			good = off + int64(len(line))
		}
		off += int64(len(line))
	}
	return good, lastSeq, nil
}

// parseLine verifies and decodes one line (with its trailing newline).
func parseLine(line []byte) (*Event, error) {
	body, err := checkLine(line)
	if err != nil {
		return nil, err
	}
	ev := new(Event)
	if err := json.Unmarshal(body, ev); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return ev, nil
}

// checkLine verifies the checksum of a line and returns its JSON body.
func checkLine(line []byte) ([]byte, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if len(line) < 10 || (line[8] != ' ' && line[8] != batchEnd) {
		return nil, errors.New("malformed line")
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return nil, errors.New("malformed checksum")
	}
	body := line[9:]
	want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	if got := crc32.Checksum(body, crcTable); got != want {
		return nil, fmt.Errorf("checksum mismatch (got %08x, want %08x)", got, want)
	}
	return body, nil
}

// batchEnd replaces the space after the checksum on the last line of each
// synced write. Recovery uses it to tell a torn final batch (never
// acknowledged: its blocks may reach the disk in any order on power loss, so
// a bad line can precede good ones) from corruption of synced data.
const batchEnd = '|'

// markBatchEnd flags the last line of buf as the end of a synced write.
func markBatchEnd(buf []byte) {
	if len(buf) < 10 {
		return
	}
	start := bytes.LastIndexByte(buf[:len(buf)-1], '\n') + 1
	if len(buf)-start >= 10 {
		buf[start+8] = batchEnd
	}
}

// encodeLine renders an event as one journal line.
func encodeLine(ev *Event) ([]byte, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, len(body)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(body, crcTable))
	line = append(line, body...)
	return append(line, '\n'), nil
}

// openSegment creates a new segment starting at first (flusher or Open only).
func (j *Journal) openSegment(first uint64) error {
	path := filepath.Join(j.dir, segName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: create segment: %w", err)
	}
	if !j.opt.NoSync {
		if err := syncDir(j.dir); err != nil {
			f.Close()
			return err
		}
	}
	j.seg, j.segSize = f, 0
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync dir: %w", err)
	}
	return nil
}

// enqueue assigns Seq/Time, encodes the event and adds it to the pending
// batch. Called with j.mu held.
func (j *Journal) enqueue(ev *Event, wait bool) (*batch, error) {
	if j.closed {
		return nil, ErrClosed
	}
	if j.err != nil {
		return nil, j.err
	}
	ev.Seq = j.lastSeq + 1
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	line, err := encodeLine(ev)
	if err != nil {
		ev.Seq = 0
		return nil, fmt.Errorf("journal: encode event: %w", err)
	}
	j.lastSeq++
	j.pending = append(j.pending, pendingLine{seq: ev.Seq, line: line})
	if j.cur == nil {
		j.cur = &batch{done: make(chan struct{})}
	}
	j.appends.Add(1)
	switch {
	case wait || len(j.pending) >= maxAsyncPending:
		j.urgent = true
		j.cond.Signal()
	case j.timer == nil:
		j.timer = time.AfterFunc(AsyncDelay, func() {
			j.mu.Lock()
			j.timer = nil
			j.urgent = true
			j.cond.Signal()
			j.mu.Unlock()
		})
	}
	return j.cur, nil
}

// AsyncDelay bounds how long an AppendAsync event waits for a synchronous
// append to share its fdatasync before it is written on its own.
const AsyncDelay = 20 * time.Millisecond

// maxAsyncPending bounds the async events held back.
const maxAsyncPending = 4096

// Append assigns ev.Seq (and ev.Time if zero), writes the event and returns
// its sequence number once it is durable. Concurrent Appends share one
// fdatasync. If ctx is done first, Append returns ctx.Err(); the event may
// still be written (it cannot be withdrawn) but was not acknowledged.
func (j *Journal) Append(ctx context.Context, ev *Event) (uint64, error) {
	j.mu.Lock()
	b, err := j.enqueue(ev, true)
	j.mu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case <-b.done:
		if b.err != nil {
			return 0, b.err
		}
		return ev.Seq, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("journal: append seq %d not confirmed: %w", ev.Seq, ctx.Err())
	}
}

// AppendAsync queues an event that need not block the caller (e.g.
// association notifications). It is written with the next group commit and
// is never lost before a later Append returns (the file is append-only and
// written in seq order); without one it is written within AsyncDelay. It returns the assigned seq, or 0 if the journal is
// closed or failed (the error is logged).
func (j *Journal) AppendAsync(ev *Event) uint64 {
	j.mu.Lock()
	_, err := j.enqueue(ev, false)
	j.mu.Unlock()
	if err != nil {
		slog.Error("journal: async append dropped", "kind", ev.Kind, "err", err)
		return 0
	}
	return ev.Seq
}

// flusher writes pending events in batches, one fdatasync per batch.
func (j *Journal) flusher() {
	defer j.flusherWG.Done()
	var buf []byte
	for {
		j.mu.Lock()
		for (len(j.pending) == 0 || !j.urgent) && !j.closed {
			j.cond.Wait()
		}
		if len(j.pending) == 0 && j.closed {
			j.mu.Unlock()
			return
		}
		lines, b := j.pending, j.cur
		j.pending, j.cur, j.urgent = nil, nil, false
		failed := j.err
		j.mu.Unlock()

		err := failed
		if err == nil {
			buf, err = j.writeBatch(lines, buf[:0])
			if err != nil {
				j.mu.Lock()
				j.err = err
				j.mu.Unlock()
				slog.Error("journal: write failed; journal is now read-only", "err", err)
			} else {
				j.durableSeq.Store(lines[len(lines)-1].seq)
			}
		}
		b.err = err
		close(b.done)
	}
}

// writeBatch writes lines to the current segment(s), rotating as needed,
// and syncs.
func (j *Journal) writeBatch(lines []pendingLine, buf []byte) ([]byte, error) {
	for _, l := range lines {
		if j.segSize > 0 && j.segSize+int64(len(buf))+int64(len(l.line)) > j.opt.SegmentSize {
			if err := j.writeSync(buf); err != nil {
				return buf, err
			}
			buf = buf[:0]
			if err := j.seg.Close(); err != nil {
				return buf, fmt.Errorf("journal: close segment: %w", err)
			}
			if err := j.openSegment(l.seq); err != nil {
				return buf, err
			}
		}
		buf = append(buf, l.line...)
	}
	return buf, j.writeSync(buf)
}

func (j *Journal) writeSync(buf []byte) error {
	if len(buf) > 0 {
		markBatchEnd(buf)
		n, err := j.seg.Write(buf)
		j.segSize += int64(n)
		if err != nil {
			return fmt.Errorf("journal: write: %w", err)
		}
	}
	if j.opt.NoSync {
		return nil
	}
	j.syncs.Add(1)
	if err := unix.Fdatasync(int(j.seg.Fd())); err != nil {
		return fmt.Errorf("journal: fdatasync: %w", err)
	}
	return nil
}

// LastSeq returns the last assigned sequence number (which may not be
// durable yet if an Append is in flight).
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastSeq
}

// DurableSeq returns the highest sequence number known to be durable.
func (j *Journal) DurableSeq() uint64 { return j.durableSeq.Load() }

// Syncs returns the number of fdatasync calls issued on segments so far
// (a counter for tests and metrics: with group commit it stays below the
// number of appends under concurrency).
func (j *Journal) Syncs() uint64 { return j.syncs.Load() }

// Appends returns the number of events appended since Open.
func (j *Journal) Appends() uint64 { return j.appends.Load() }

// Dir returns the journal directory.
func (j *Journal) Dir() string { return j.dir }

// Close flushes pending events (durably), stops the flusher and releases the
// lock. Appends after Close fail with ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.cond.Broadcast()
	j.mu.Unlock()
	j.flusherWG.Wait()
	var errs []error
	j.mu.Lock()
	if j.err != nil {
		errs = append(errs, j.err)
	}
	j.mu.Unlock()
	if j.seg != nil {
		if err := j.seg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("journal: close segment: %w", err))
		}
	}
	if err := j.lock.Close(); err != nil { // releases the flock
		errs = append(errs, fmt.Errorf("journal: close lock: %w", err))
	}
	return errors.Join(errs...)
}

// Replay calls fn for every durable event with Seq > from, in order. It may
// be called while the journal is open (events appended after Replay started
// may or may not be visited). An error from fn stops the replay and is
// returned.
func (j *Journal) Replay(ctx context.Context, from uint64, fn func(*Event) error) error {
	upTo := j.durableSeq.Load()
	if from >= upTo {
		return nil
	}
	segs, err := listSegments(j.dir)
	if err != nil {
		return err
	}
	// Start at the last segment whose first seq <= from+1.
	start := 0
	for i, s := range segs {
		if s.first <= from+1 {
			start = i
		}
	}
	next := from + 1
	for _, s := range segs[start:] {
		if s.first > upTo {
			break
		}
		err := readSegment(ctx, s.path, func(line []byte, off int64) error {
			seq, ok := peekSeq(line)
			if ok && (seq <= from) {
				return nil
			}
			ev, err := parseLine(line)
			if err != nil {
				return fmt.Errorf("%w: %s offset %d: %v", ErrCorrupt, s.path, off, err)
			}
			if ev.Seq <= from {
				return nil
			}
			if ev.Seq > upTo {
				return errStop
			}
			if ev.Seq != next {
				return fmt.Errorf("%w: %s offset %d: seq %d, expected %d", ErrCorrupt, s.path, off, ev.Seq, next)
			}
			next++
			return fn(ev)
		})
		if err == errStop {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop")

// peekSeq extracts the seq from a line without a full decode; the JSON
// encoder always writes it first.
func peekSeq(line []byte) (uint64, bool) {
	const p = `{"seq":`
	if len(line) < 9+len(p) || !bytes.HasPrefix(line[9:], []byte(p)) {
		return 0, false
	}
	rest := line[9+len(p):]
	var n uint64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		n = n*10 + uint64(rest[i]-'0')
	}
	if i == 0 || i > 20 {
		return 0, false
	}
	return n, true
}

// readSegment calls fn for every complete line ('\n'-terminated) of a
// segment; a partial last line is ignored.
func readSegment(ctx context.Context, path string, fn func(line []byte, off int64) error) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("journal: open segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	var off int64
	var long []byte
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, rerr := r.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for rerr == bufio.ErrBufferFull {
				line, rerr = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if rerr == io.EOF {
			return nil // partial or no last line
		}
		if rerr != nil {
			return fmt.Errorf("journal: read %s: %w", path, rerr)
		}
		if err := fn(line, off); err != nil {
			return err
		}
		off += int64(len(line))
	}
}
