package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUsers(t *testing.T) {
	dir := t.TempDir()
	u, err := OpenUsers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Add("alice", RoleRadiologist, "short"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("weak password: %v", err)
	}
	if _, err := u.Add("ct", RoleModality, "long enough password"); err == nil {
		t.Fatal("modality user accepted")
	}
	if _, err := u.Add("alice", RoleRadiologist, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Add("alice", RoleAdmin, "correct horse battery"); !errors.Is(err, ErrUserExists) {
		t.Fatalf("duplicate: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, DirName, UsersFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(u.Path())
	if len(b) == 0 || contains(b, "correct horse") {
		t.Fatal("password stored in clear")
	}
	// A second store (the CLI) sees and changes the same file.
	u2, err := OpenUsers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := u2.Check("alice", "correct horse battery"); err != nil || got.Role != RoleRadiologist {
		t.Fatalf("check: %+v %v", got, err)
	}
	for _, c := range [][2]string{{"alice", "wrong password!"}, {"bob", "correct horse battery"}} {
		if _, err := u2.Check(c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%v: %v", c, err)
		}
	}
	s := NewSessions(u, time.Minute, time.Hour)
	id, ss, err := s.Create(User{Name: "alice", Role: RoleRadiologist}, "127.0.0.1")
	if err != nil || len(id) < 43 || ss.CSRF == "" {
		t.Fatalf("session: %q %v", id, err)
	}
	r := httptest.NewRequest("GET", "/dicom-web/studies", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: id})
	if p, err := s.Authorize(r, ReadImages); err != nil || p.User != "alice" {
		t.Fatalf("authorize: %+v %v", p, err)
	}
	w := httptest.NewRequest("POST", "/api/reports", nil)
	w.AddCookie(&http.Cookie{Name: SessionCookie, Value: id})
	if _, err := s.Authorize(w, WriteReports); !errors.Is(err, ErrCSRF) {
		t.Fatalf("no CSRF: %v", err)
	}
	w.Header.Set(CSRFHeader, ss.CSRF)
	if _, err := s.Authorize(w, WriteReports); err != nil {
		t.Fatalf("CSRF: %v", err)
	}
	if _, err := s.Authorize(w, Admin); !errors.Is(err, ErrForbidden) {
		t.Fatalf("admin: %v", err)
	}
	// Idle expiry.
	now := time.Now()
	s.now = func() time.Time { return now.Add(2 * time.Minute) }
	if _, err := s.Lookup(id); !errors.Is(err, ErrSession) {
		t.Fatalf("idle: %v", err)
	}
	s.now = time.Now
	// Disabling the user (from the other store) ends its sessions.
	id, _, _ = s.Create(User{Name: "alice", Role: RoleRadiologist}, "")
	if err := u2.SetDisabled("alice", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(reloadEvery + 50*time.Millisecond)
	if _, err := s.Lookup(id); !errors.Is(err, ErrSession) {
		t.Fatalf("disabled: %v", err)
	}
	if _, err := u.Check("alice", "correct horse battery"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("disabled login: %v", err)
	}
	if err := u.SetPassword("nobody", "whatever password"); !errors.Is(err, ErrUnknownUser) {
		t.Fatal(err)
	}
	list, err := u.List()
	if err != nil || len(list) != 1 || list[0].Disabled.IsZero() {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := os.Chmod(u.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenUsers(dir); err == nil {
		t.Fatal("world-readable users file accepted")
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
