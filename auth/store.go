package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"golang.org/x/sys/unix"
)

// DirName is the directory of the token store under the data directory.
const DirName = "auth"

// FileName is the token file in DirName.
const FileName = "tokens"

// reloadEvery bounds how often Authenticate stats the token file: changes
// made by another process (the CLI) are seen within this delay.
const reloadEvery = 250 * time.Millisecond

// Record describes a token; it never holds the secret nor its hash.
type Record struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
	// Expires is zero for a token that never expires.
	Expires time.Time `json:"expires,omitzero"`
	// Revoked is when the token was revoked, zero if it was not.
	Revoked time.Time `json:"revoked,omitzero"`
}

// Token states, as Record.Status reports them.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
	StatusExpired = "expired"
)

// Status is StatusActive, StatusRevoked or StatusExpired at time now.
func (r Record) Status(now time.Time) string {
	switch {
	case !r.Revoked.IsZero():
		return StatusRevoked
	case !r.Expires.IsZero() && !now.Before(r.Expires):
		return StatusExpired
	}
	return StatusActive
}

// CreateOptions are the optional settings of a new token.
type CreateOptions struct {
	// TTL, when positive, makes the token expire TTL after its creation.
	TTL time.Duration
}

// Store is the token store of one data directory: DATA/auth/tokens, an
// append-only file of JSON lines, one per event (a token created, a token
// revoked). Every write takes an exclusive flock on the file, first reads
// what other processes appended, then appends and fsyncs, so a running
// server and the CLI can both write. Readers take a shared flock and
// consume only complete lines: a line torn by a crash is ignored, then cut
// off by the next writer.
//
// A Store is safe for concurrent use. It holds no open file between calls,
// so it needs no Close.
type Store struct {
	path string
	now  func() time.Time

	lastCheck atomic.Int64 // unix nanoseconds of the last stat

	mu      sync.RWMutex
	entries map[string]*entry
	// What of the file has been read: consumed bytes (complete lines),
	// lines, and the file's identity when it was read.
	off   int64
	lines int
	size  int64
	mtime time.Time
	ino   uint64
	// err is a sticky read error (a corrupt line): until the file changes,
	// every Authenticate fails with it rather than trust a partial state
	// (a lost revocation would let a revoked token in again).
	err error
}

type entry struct {
	rec  Record
	hash [sha256.Size]byte
	// order is the position of the creation in the file: tokens created
	// in the same millisecond are listed in the order they were made.
	order int
}

// line is one event of the token file.
type line struct {
	Op      string    `json:"op"` // "create" or "revoke"
	ID      string    `json:"id"`
	User    string    `json:"user,omitempty"`
	Role    Role      `json:"role,omitempty"`
	SHA256  string    `json:"sha256,omitempty"` // hex SHA-256 of the secret
	Created time.Time `json:"created,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
	At      time.Time `json:"at,omitzero"` // revocation time
}

// Open opens (creating if needed) the token store of the data directory
// dataDir: dataDir/auth/tokens, the directory mode 0700, the file 0600.
// It refuses a token file that other users may read or write.
func Open(dataDir string) (*Store, error) {
	dir := filepath.Join(dataDir, DirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s := &Store{path: filepath.Join(dir, FileName), now: time.Now, entries: map[string]*entry{}}
	fi, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		f, cerr := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE, 0o600)
		if cerr != nil {
			return nil, fmt.Errorf("auth: %w", cerr)
		}
		f.Close()
		if err := syncDir(dir); err != nil {
			return nil, err
		}
		fi, err = os.Stat(s.path)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("auth: %s is not a regular file", s.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("auth: %s is open to other users (mode %04o): chmod 600 it", s.path, perm)
	}
	if err := s.refresh(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Path returns the token file.
func (s *Store) Path() string { return s.path }

// Create makes a token for user with role, records its hash and returns
// the token, which is never stored and cannot be shown again.
func (s *Store) Create(user string, role Role, opts CreateOptions) (string, Record, error) {
	if err := validUser(user); err != nil {
		return "", Record{}, err
	}
	if !role.Valid() {
		if _, err := ParseRole(string(role)); err != nil {
			return "", Record{}, fmt.Errorf("auth: %w", err)
		}
	}
	if opts.TTL < 0 {
		return "", Record{}, fmt.Errorf("auth: negative TTL %v", opts.TTL)
	}
	secret, err := randomB32(secretBytes)
	if err != nil {
		return "", Record{}, err
	}
	var rec Record
	err = s.append(func() (*line, error) {
		var id string
		for { // a collision of 80 random bits will not happen; be exact anyway
			if id, err = randomB32(idBytes); err != nil {
				return nil, err
			}
			if s.entries[id] == nil {
				break
			}
		}
		now := s.now().UTC().Round(time.Millisecond)
		rec = Record{ID: id, User: user, Role: role, Created: now}
		if opts.TTL > 0 {
			rec.Expires = now.Add(opts.TTL)
		}
		h := hashSecret(secret)
		return &line{Op: "create", ID: id, User: user, Role: role, SHA256: hex.EncodeToString(h[:]),
			Created: rec.Created, Expires: rec.Expires}, nil
	})
	if err != nil {
		return "", Record{}, err
	}
	return tokenPrefix + rec.ID + "_" + secret, rec, nil
}

func validUser(u string) error {
	if strings.TrimSpace(u) == "" {
		return errors.New("auth: empty user name")
	}
	if len(u) > 256 {
		return errors.New("auth: user name longer than 256 bytes")
	}
	for _, r := range u {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("auth: user name %q has a control or invalid character", u)
		}
	}
	return nil
}

// Revoke revokes the token with this ID (a whole token is accepted too:
// its ID is taken). Revoking a revoked token is a no-op; an unknown ID is
// ErrUnknownToken. Other processes see the revocation within a second.
func (s *Store) Revoke(id string) error {
	if tid := TokenID(id); tid != "" {
		id = tid
	}
	if !validID(id) {
		return fmt.Errorf("auth: %w: %q is not a token ID", ErrUnknownToken, id)
	}
	return s.append(func() (*line, error) {
		e := s.entries[id]
		if e == nil {
			return nil, fmt.Errorf("auth: %w: %s", ErrUnknownToken, id)
		}
		if !e.rec.Revoked.IsZero() {
			return nil, nil
		}
		return &line{Op: "revoke", ID: id, At: s.now().UTC().Round(time.Millisecond)}, nil
	})
}

// List returns every token, revoked and expired ones included, oldest
// first, as the file holds them now.
func (s *Store) List() ([]Record, error) {
	if err := s.refresh(true); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	es := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *entry) int {
		if c := a.rec.Created.Compare(b.rec.Created); c != 0 {
			return c
		}
		return a.order - b.order
	})
	out := make([]Record, len(es))
	for i, e := range es {
		out[i] = e.rec
	}
	return out, nil
}

// Get returns the record of the token with this ID.
func (s *Store) Get(id string) (Record, bool, error) {
	if err := s.refresh(true); err != nil {
		return Record{}, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.entries[id]
	if e == nil {
		return Record{}, false, nil
	}
	return e.rec, true, nil
}

// Authenticate returns the principal of token. Its errors wrap ErrNoToken
// (empty token), ErrInvalidToken (malformed, unknown ID, wrong secret),
// ErrRevoked or ErrExpired, and name the token ID, never the secret; any
// other error is the store failing (fail closed: answer 500).
//
// It stats the token file at most every 250ms and reads what was appended,
// so tokens created or revoked by another process count within a second.
func (s *Store) Authenticate(token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	id, secret, ok := splitToken(token)
	if !ok {
		return Principal{}, fmt.Errorf("%w: malformed (want %s<id>_<secret>)", ErrInvalidToken, tokenPrefix)
	}
	if err := s.refresh(false); err != nil {
		return Principal{}, err
	}
	s.mu.RLock()
	e := s.entries[id]
	var rec Record
	var want [sha256.Size]byte
	if e != nil {
		rec, want = e.rec, e.hash
	}
	s.mu.RUnlock()
	got := hashSecret(secret)
	if e == nil {
		return Principal{}, fmt.Errorf("%w: token %s: unknown ID", ErrInvalidToken, id)
	}
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return Principal{}, fmt.Errorf("%w: token %s: wrong secret", ErrInvalidToken, id)
	}
	// Revocation and expiry are told only to a holder of the secret.
	switch rec.Status(s.now()) {
	case StatusRevoked:
		return Principal{}, fmt.Errorf("%w: token %s (user %s) revoked at %s", ErrRevoked, id, rec.User, rec.Revoked.Format(time.RFC3339))
	case StatusExpired:
		return Principal{}, fmt.Errorf("%w: token %s (user %s) expired at %s", ErrExpired, id, rec.User, rec.Expires.Format(time.RFC3339))
	}
	return Principal{User: rec.User, Role: rec.Role, TokenID: id}, nil
}

// refresh reads what was appended to the file since the last read; unless
// force, at most once per reloadEvery and only when the file's size, mtime
// or inode changed.
func (s *Store) refresh(force bool) error {
	now := time.Now().UnixNano()
	if !force {
		if now-s.lastCheck.Load() < int64(reloadEvery) {
			s.mu.RLock()
			err := s.err
			s.mu.RUnlock()
			return err
		}
	}
	s.lastCheck.Store(now)
	fi, err := os.Stat(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// The file was removed or cannot be read: no token is known any more.
		s.reset()
		s.err = fmt.Errorf("auth: token store: %w", err)
		return s.err
	}
	if !changed(fi, s.size, s.mtime, s.ino) {
		return s.err
	}
	f, err := os.Open(s.path)
	if err != nil {
		s.reset()
		s.err = fmt.Errorf("auth: token store: %w", err)
		return s.err
	}
	defer f.Close()
	if err := flock(f, unix.LOCK_SH); err != nil {
		return err
	}
	_, err = s.readLocked(f)
	return err
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

func changed(fi os.FileInfo, size int64, mtime time.Time, ino uint64) bool {
	return fi.Size() != size || !fi.ModTime().Equal(mtime) || inode(fi) != ino
}

func (s *Store) reset() {
	s.entries = map[string]*entry{}
	s.off, s.lines, s.size, s.mtime, s.ino = 0, 0, 0, time.Time{}, 0
}

// readLocked applies the complete lines appended since s.off; f is flocked
// and s.mu held. It returns the length of a torn last line, which it leaves
// unread.
func (s *Store) readLocked(f *os.File) (torn int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("auth: %w", err)
	}
	if inode(fi) != s.ino || fi.Size() < s.off || fi.Size() == s.size && !fi.ModTime().Equal(s.mtime) {
		// Replaced, truncated or rewritten in place (appends always grow
		// it): read it all again.
		s.reset()
	}
	s.size, s.mtime, s.ino = fi.Size(), fi.ModTime(), inode(fi)
	s.err = nil
	if fi.Size() == s.off {
		return 0, nil
	}
	buf := make([]byte, fi.Size()-s.off)
	n, err := f.ReadAt(buf, s.off)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = fmt.Errorf("auth: read %s: %w", s.path, err)
		return 0, s.err
	}
	buf = buf[:n]
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return int64(len(buf)), nil
		}
		if err := s.apply(buf[:i]); err != nil {
			s.err = fmt.Errorf("auth: %s line %d: %w (fix or remove that line)", s.path, s.lines+1, err)
			return 0, s.err
		}
		s.lines++
		s.off += int64(i + 1)
		buf = buf[i+1:]
	}
}

// apply applies one line of the file to the in-memory state.
func (s *Store) apply(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	if !validID(l.ID) {
		return fmt.Errorf("bad token ID %q", l.ID)
	}
	switch l.Op {
	case "create":
		var e entry
		h, err := hex.DecodeString(l.SHA256)
		if err != nil || len(h) != len(e.hash) {
			return fmt.Errorf("token %s: bad sha256", l.ID)
		}
		if s.entries[l.ID] != nil {
			return fmt.Errorf("token %s created twice", l.ID)
		}
		copy(e.hash[:], h)
		// An unknown role (from a newer Relais) is kept: it grants nothing.
		e.rec = Record{ID: l.ID, User: l.User, Role: l.Role, Created: l.Created, Expires: l.Expires}
		e.order = len(s.entries)
		s.entries[l.ID] = &e
	case "revoke":
		e := s.entries[l.ID]
		if e == nil {
			return fmt.Errorf("revocation of unknown token %s", l.ID)
		}
		if e.rec.Revoked.IsZero() {
			e.rec.Revoked = l.At
		}
	default:
		// An event of a newer Relais; ignoring it cannot let anyone in
		// (only "create" grants access).
	}
	return nil
}

// append runs mk under the store's and the file's exclusive locks, after
// reading what other processes appended, and appends the line it returns
// (none if nil), fsynced, before the lock is released.
func (s *Store) append(mk func() (*line, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	if err := flock(f, unix.LOCK_EX); err != nil {
		return err
	}
	torn, err := s.readLocked(f)
	if err != nil {
		return err
	}
	l, err := mk()
	if err != nil || l == nil {
		return err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	b = append(b, '\n')
	if torn > 0 {
		// Under the exclusive lock no writer is halfway: this is the rest
		// of a write cut by a crash, never acknowledged.
		if err := f.Truncate(s.off); err != nil {
			return fmt.Errorf("auth: cut torn line: %w", err)
		}
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("auth: write %s: %w", s.path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("auth: sync %s: %w", s.path, err)
	}
	// Now read our own line back through the normal path.
	if _, err := s.readLocked(f); err != nil {
		return err
	}
	s.lastCheck.Store(time.Now().UnixNano())
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("auth: flock %s: %w", f.Name(), err)
		}
		return nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("auth: sync %s: %w", dir, err)
	}
	return nil
}
