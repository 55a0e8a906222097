package auth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// UsersFileName is the user file in DirName: the people who log in to the
// web app with a password.
const UsersFileName = "users"

// MinPasswordLength is the shortest password accepted (in characters).
const MinPasswordLength = 10

// bcryptCost is the work factor of stored password hashes.
const bcryptCost = 11

// Errors of the user store.
var (
	// ErrBadCredentials: unknown user, disabled user or wrong password
	// (never said which, to the caller).
	ErrBadCredentials = errors.New("invalid user name or password")
	// ErrUnknownUser: passwd or disable of a user that does not exist.
	ErrUnknownUser = errors.New("no such user")
	// ErrUserExists: add of a user that exists.
	ErrUserExists = errors.New("user already exists")
	// ErrWeakPassword: a password shorter than MinPasswordLength.
	ErrWeakPassword = fmt.Errorf("password shorter than %d characters", MinPasswordLength)
)

// User is a web app account; it never carries the password nor its hash.
type User struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
	// PasswordChanged is when the password was last set.
	PasswordChanged time.Time `json:"password_changed"`
	// Disabled is when the account was disabled, zero if it is not.
	Disabled time.Time `json:"disabled,omitzero"`
}

// userRecord is one user as the file stores it.
type userRecord struct {
	User
	Hash string `json:"bcrypt"`
}

// usersFile is the whole file: a JSON object rewritten atomically.
type usersFile struct {
	Version int           `json:"version"`
	Users   []*userRecord `json:"users"`
}

// Users is the user store of one data directory: DATA/auth/users (mode
// 0600), a JSON document of the accounts with bcrypt hashes of their
// passwords. Writers take an exclusive flock on DATA/auth/users.lock, read
// the file, and replace it atomically (temporary file, fsync, rename), so
// the CLI and a running server can both change it; readers reload it when
// its identity changes (checked at most every 250ms), so a running server
// sees a new, changed or disabled account within a second.
type Users struct {
	path, lock string
	now        func() time.Time

	lastCheck atomic.Int64

	mu    sync.RWMutex
	users map[string]*userRecord
	mtime time.Time
	size  int64
	ino   uint64
	err   error
}

// dummyHash is compared against when the user is unknown, so that a login
// takes the same time whether or not the name exists.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("relais-no-such-user-password"), bcryptCost)

// OpenUsers opens (creating if needed) the user store of dataDir. It
// refuses a user file other users may read or write.
func OpenUsers(dataDir string) (*Users, error) {
	dir := filepath.Join(dataDir, DirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	u := &Users{path: filepath.Join(dir, UsersFileName), lock: filepath.Join(dir, UsersFileName+".lock"), now: time.Now, users: map[string]*userRecord{}}
	if err := u.withLock(func() error {
		if _, err := os.Stat(u.path); errors.Is(err, os.ErrNotExist) {
			return u.writeLocked(map[string]*userRecord{})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := u.reload(true); err != nil {
		return nil, err
	}
	return u, nil
}

// Path returns the user file.
func (u *Users) Path() string { return u.path }

// Add creates an enabled user with role and password.
func (u *Users) Add(name string, role Role, password string) (User, error) {
	if err := validUser(name); err != nil {
		return User{}, err
	}
	if !role.Valid() || role == RoleModality {
		return User{}, fmt.Errorf("auth: role %q cannot log in to the web app (admin, radiologist, requester)", role)
	}
	h, err := hashPassword(password)
	if err != nil {
		return User{}, err
	}
	var out User
	err = u.update(func(m map[string]*userRecord) error {
		if m[name] != nil {
			return fmt.Errorf("auth: %w: %s", ErrUserExists, name)
		}
		now := u.now().UTC().Round(time.Millisecond)
		r := &userRecord{User: User{Name: name, Role: role, Created: now, PasswordChanged: now}, Hash: h}
		m[name] = r
		out = r.User
		return nil
	})
	return out, err
}

// SetPassword changes a user's password (and enables nothing: a disabled
// user stays disabled).
func (u *Users) SetPassword(name, password string) error {
	h, err := hashPassword(password)
	if err != nil {
		return err
	}
	return u.update(func(m map[string]*userRecord) error {
		r := m[name]
		if r == nil {
			return fmt.Errorf("auth: %w: %s", ErrUnknownUser, name)
		}
		r.Hash = h
		r.PasswordChanged = u.now().UTC().Round(time.Millisecond)
		return nil
	})
}

// SetDisabled disables (or enables again) a user. A disabled user cannot
// log in, and its open sessions stop working at their next request.
func (u *Users) SetDisabled(name string, disabled bool) error {
	return u.update(func(m map[string]*userRecord) error {
		r := m[name]
		if r == nil {
			return fmt.Errorf("auth: %w: %s", ErrUnknownUser, name)
		}
		switch {
		case disabled && r.Disabled.IsZero():
			r.Disabled = u.now().UTC().Round(time.Millisecond)
		case !disabled:
			r.Disabled = time.Time{}
		}
		return nil
	})
}

// List returns every user, sorted by name.
func (u *Users) List() ([]User, error) {
	if err := u.reload(true); err != nil {
		return nil, err
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	out := make([]User, 0, len(u.users))
	for _, r := range u.users {
		out = append(out, r.User)
	}
	slices.SortFunc(out, func(a, b User) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}

// Get returns the user named name as the store holds it now (reloaded at
// most every 250ms).
func (u *Users) Get(name string) (User, bool, error) {
	if err := u.reload(false); err != nil {
		return User{}, false, err
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	r := u.users[name]
	if r == nil {
		return User{}, false, nil
	}
	return r.User, true, nil
}

// Check verifies name and password. Unknown user, disabled user and wrong
// password are all ErrBadCredentials (the wrapped text says which, for the
// log; never show it to the caller); the bcrypt comparison runs in every
// case so that the time taken does not tell whether the name exists.
func (u *Users) Check(name, password string) (User, error) {
	if err := u.reload(false); err != nil {
		return User{}, err
	}
	u.mu.RLock()
	r := u.users[name]
	var rec userRecord
	if r != nil {
		rec = *r
	}
	u.mu.RUnlock()
	hash := dummyHash
	if r != nil {
		hash = []byte(rec.Hash)
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	ok := subtle.ConstantTimeEq(boolInt(r != nil), 1) & subtle.ConstantTimeEq(boolInt(err == nil), 1)
	switch {
	case r == nil:
		return User{}, fmt.Errorf("%w: unknown user", ErrBadCredentials)
	case ok != 1:
		return User{}, fmt.Errorf("%w: wrong password", ErrBadCredentials)
	case !rec.Disabled.IsZero():
		return User{}, fmt.Errorf("%w: user disabled", ErrBadCredentials)
	}
	return rec.User, nil
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

func hashPassword(pw string) (string, error) {
	if utf8.RuneCountInString(pw) < MinPasswordLength {
		return "", fmt.Errorf("auth: %w", ErrWeakPassword)
	}
	if len(pw) > 72 {
		return "", errors.New("auth: password longer than 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	return string(h), nil
}

// update runs f on the current users under the file lock and writes the
// result.
func (u *Users) update(f func(map[string]*userRecord) error) error {
	return u.withLock(func() error {
		m, _, err := u.readFile()
		if err != nil {
			return err
		}
		if err := f(m); err != nil {
			return err
		}
		if err := u.writeLocked(m); err != nil {
			return err
		}
		u.lastCheck.Store(0)
		return u.reload(true)
	})
}

func (u *Users) withLock(f func() error) error {
	lf, err := os.OpenFile(u.lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer lf.Close()
	if err := flock(lf, unix.LOCK_EX); err != nil {
		return err
	}
	return f()
}

// readFile reads and checks the user file.
func (u *Users) readFile() (map[string]*userRecord, os.FileInfo, error) {
	f, err := os.Open(u.path)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("auth: %s is not a regular file", u.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, nil, fmt.Errorf("auth: %s is open to other users (mode %04o): chmod 600 it", u.path, perm)
	}
	var uf usersFile
	if err := json.NewDecoder(f).Decode(&uf); err != nil {
		return nil, nil, fmt.Errorf("auth: read %s: %w", u.path, err)
	}
	m := make(map[string]*userRecord, len(uf.Users))
	for _, r := range uf.Users {
		if r == nil || r.Name == "" {
			return nil, nil, fmt.Errorf("auth: %s: a user without a name", u.path)
		}
		if m[r.Name] != nil {
			return nil, nil, fmt.Errorf("auth: %s: user %s twice", u.path, r.Name)
		}
		m[r.Name] = r
	}
	return m, fi, nil
}

func (u *Users) writeLocked(m map[string]*userRecord) error {
	uf := usersFile{Version: 1, Users: make([]*userRecord, 0, len(m))}
	for _, r := range m {
		uf.Users = append(uf.Users, r)
	}
	slices.SortFunc(uf.Users, func(a, b *userRecord) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	b, err := json.MarshalIndent(uf, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(u.path), ".users-*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: write users: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: sync users: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.Rename(tmp.Name(), u.path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return syncDir(filepath.Dir(u.path))
}

// reload rereads the file when it changed; unless force, it stats it at
// most every reloadEvery. A file that cannot be read makes every check
// fail (fail closed) until it is fixed.
func (u *Users) reload(force bool) error {
	now := time.Now().UnixNano()
	if !force && now-u.lastCheck.Load() < int64(reloadEvery) {
		u.mu.RLock()
		defer u.mu.RUnlock()
		return u.err
	}
	u.lastCheck.Store(now)
	fi, err := os.Stat(u.path)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.users, u.err = map[string]*userRecord{}, fmt.Errorf("auth: %w", err)
		return u.err
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	if u.err == nil && fi.Size() == u.size && fi.ModTime().Equal(u.mtime) && ino == u.ino && !force {
		return nil
	}
	m, rfi, err := u.readFile()
	if err != nil {
		u.users, u.err = map[string]*userRecord{}, err
		return err
	}
	u.users, u.err = m, nil
	u.size, u.mtime = rfi.Size(), rfi.ModTime()
	if st, ok := rfi.Sys().(*syscall.Stat_t); ok {
		u.ino = st.Ino
	}
	return nil
}
