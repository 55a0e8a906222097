package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// SessionCookie is the name of the web app's session cookie.
const SessionCookie = "relais_session"

// CSRFHeader carries the session's CSRF token on state-changing requests
// made with the session cookie.
const CSRFHeader = "X-Relais-CSRF"

// Default session lifetimes.
const (
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionAbsolute = 12 * time.Hour
)

// Errors of sessions (all are also ErrInvalidToken, answered 401, except
// ErrNoSession which is ErrNoToken and ErrCSRF which is ErrForbidden).
var (
	ErrNoSession = fmt.Errorf("%w: no session cookie", ErrNoToken)
	ErrSession   = fmt.Errorf("%w: session unknown, expired or ended", ErrInvalidToken)
	ErrCSRF      = fmt.Errorf("%w: missing or wrong %s header", ErrForbidden, CSRFHeader)
)

// Session is a logged-in browser.
type Session struct {
	User    string
	Role    Role
	CSRF    string
	Created time.Time
	Seen    time.Time
	// Addr is the client address at login.
	Addr string
}

// Sessions holds the web app's sessions in memory (a restart logs
// everyone out). The cookie value is 256 random bits; the map is keyed by
// its SHA-256, so the secret is never kept. A session ends after Idle
// without a request, after Absolute in any case, at logout, and as soon as
// its user is disabled or removed, or its password changed.
type Sessions struct {
	Users    *Users
	Idle     time.Duration
	Absolute time.Duration
	now      func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]*Session
}

// NewSessions returns an empty session store over users; zero durations
// take the defaults.
func NewSessions(users *Users, idle, absolute time.Duration) *Sessions {
	if idle <= 0 {
		idle = DefaultSessionIdle
	}
	if absolute <= 0 {
		absolute = DefaultSessionAbsolute
	}
	return &Sessions{Users: users, Idle: idle, Absolute: absolute, now: time.Now, m: map[[sha256.Size]byte]*Session{}}
}

func random256() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Create opens a session for u and returns the cookie value (shown once).
func (s *Sessions) Create(u User, addr string) (string, Session, error) {
	id, err := random256()
	if err != nil {
		return "", Session{}, err
	}
	csrf, err := random256()
	if err != nil {
		return "", Session{}, err
	}
	now := s.now()
	ss := &Session{User: u.Name, Role: u.Role, CSRF: csrf, Created: now, Seen: now, Addr: addr}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gcLocked(now)
	s.m[sha256.Sum256([]byte(id))] = ss
	return id, *ss, nil
}

// Delete ends the session of this cookie value.
func (s *Sessions) Delete(id string) (Session, bool) {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[k]
	delete(s.m, k)
	if ss == nil {
		return Session{}, false
	}
	return *ss, true
}

// Lookup returns the live session of the cookie value and marks it seen.
func (s *Sessions) Lookup(id string) (Session, error) {
	if id == "" {
		return Session{}, ErrNoSession
	}
	k := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	ss := s.m[k]
	if ss != nil && (now.Sub(ss.Seen) > s.Idle || now.Sub(ss.Created) > s.Absolute) {
		delete(s.m, k)
		ss = nil
	}
	var out Session
	if ss != nil {
		ss.Seen = now
		out = *ss
	}
	s.mu.Unlock()
	if ss == nil {
		return Session{}, ErrSession
	}
	if s.Users != nil {
		u, ok, err := s.Users.Get(out.User)
		if err != nil {
			return Session{}, err
		}
		if !ok || !u.Disabled.IsZero() || u.PasswordChanged.After(out.Created) || u.Role != out.Role {
			s.Delete(id)
			return Session{}, fmt.Errorf("%w: user %s disabled, removed or changed", ErrSession, out.User)
		}
	}
	return out, nil
}

func (s *Sessions) gcLocked(now time.Time) {
	for k, ss := range s.m {
		if now.Sub(ss.Seen) > s.Idle || now.Sub(ss.Created) > s.Absolute {
			delete(s.m, k)
		}
	}
}

// HasSessionCookie reports whether the request carries a session cookie
// and no Authorization header (a Bearer token takes precedence).
func HasSessionCookie(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return false
	}
	c, err := r.Cookie(SessionCookie)
	return err == nil && c.Value != ""
}

// SessionOf returns the session of the request's cookie. It does not
// check CSRF: see Authorize.
func (s *Sessions) SessionOf(r *http.Request) (Session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Session{}, ErrNoSession
	}
	return s.Lookup(c.Value)
}

// safeMethod reports whether the method changes nothing (RFC 9110 9.2.1).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// CheckCSRF checks the request's CSRF header against the session's token
// (constant time); safe methods need none.
func CheckCSRF(r *http.Request, ss Session) error {
	if safeMethod(r.Method) {
		return nil
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(ss.CSRF)) != 1 {
		return ErrCSRF
	}
	return nil
}

// Authorize authenticates the request by its session cookie, checks the
// CSRF header of a state-changing request and the role's permission. The
// principal's TokenID is "session". Errors are answered like token
// errors with WriteChallenge.
func (s *Sessions) Authorize(r *http.Request, perm Permission) (Principal, error) {
	ss, err := s.SessionOf(r)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{User: ss.User, Role: ss.Role, TokenID: "session"}
	if err := CheckCSRF(r, ss); err != nil {
		return p, fmt.Errorf("%w (user %s)", err, ss.User)
	}
	if !p.Can(perm) {
		return p, fmt.Errorf("%w: user %s (role %s, session) lacks permission %s", ErrForbidden, p.User, p.Role, perm)
	}
	return p, nil
}

// IsSessionError reports whether err is a session's authentication error
// (the caller should send the browser to the login page).
func IsSessionError(err error) bool {
	return errors.Is(err, ErrNoSession) || errors.Is(err, ErrSession)
}
