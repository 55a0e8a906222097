package auth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func create(t *testing.T, s *Store, user string, role Role, opts CreateOptions) (string, Record) {
	t.Helper()
	tok, rec, err := s.Create(user, role, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

func TestRoles(t *testing.T) {
	want := map[Role][]Permission{
		RoleAdmin:       {ReadImages, StoreImages, Admin},
		RoleRadiologist: {ReadImages, StoreImages},
		RoleRequester:   {ReadImages, StoreImages},
		RoleModality:    {StoreImages},
		"":              nil,
		"root":          nil,
	}
	for role, perms := range want {
		for _, p := range []Permission{ReadImages, StoreImages, Admin} {
			has := false
			for _, q := range perms {
				has = has || q == p
			}
			if role.Can(p) != has {
				t.Errorf("%q.Can(%s) = %v, want %v", role, p, !has, has)
			}
		}
	}
	for _, in := range []string{"admin", "Radiologist", " requester ", "MODALITY"} {
		if _, err := ParseRole(in); err != nil {
			t.Errorf("ParseRole(%q): %v", in, err)
		}
	}
	_, err := ParseRole("doctor")
	if err == nil || !strings.Contains(err.Error(), "admin, radiologist, requester, modality") {
		t.Errorf("ParseRole(doctor) = %v, want the valid roles listed", err)
	}
}

func TestTokenFormat(t *testing.T) {
	s := open(t, t.TempDir())
	tok, rec := create(t, s, "alice", RoleRadiologist, CreateOptions{})
	if !strings.HasPrefix(tok, "rls_"+rec.ID+"_") || len(tok) != 4+16+1+52 {
		t.Fatalf("token %q (id %s): want rls_<16>_<52>", tok, rec.ID)
	}
	if TokenID(tok) != rec.ID {
		t.Errorf("TokenID = %q, want %q", TokenID(tok), rec.ID)
	}
	tok2, _ := create(t, s, "alice", RoleRadiologist, CreateOptions{})
	if tok2 == tok || TokenID(tok2) == rec.ID {
		t.Error("two tokens alike")
	}
}

func TestAuthenticate(t *testing.T) {
	s := open(t, t.TempDir())
	clock := time.Now()
	s.now = func() time.Time { return clock }
	good, rec := create(t, s, "alice", RoleRadiologist, CreateOptions{})
	expiring, _ := create(t, s, "bob", RoleModality, CreateOptions{TTL: time.Hour})
	revoked, revRec := create(t, s, "carol", RoleRequester, CreateOptions{})
	if err := s.Revoke(revRec.ID); err != nil {
		t.Fatal(err)
	}
	id, secret, _ := splitToken(good)
	flip := []byte(secret)
	flip[0] = 'a'
	if secret[0] == 'a' {
		flip[0] = 'b'
	}
	otherID := "aaaaaaaaaaaaaaaa"
	cases := []struct {
		name  string
		tok   string
		later time.Duration
		want  error
		user  string
	}{
		{"good", good, 0, nil, "alice"},
		{"expiring, before", expiring, 59 * time.Minute, nil, "bob"},
		{"expiring, after", expiring, time.Hour, ErrExpired, ""},
		{"revoked", revoked, 0, ErrRevoked, ""},
		{"empty", "", 0, ErrNoToken, ""},
		{"wrong secret", "rls_" + id + "_" + string(flip), 0, ErrInvalidToken, ""},
		{"unknown id", "rls_" + otherID + "_" + secret, 0, ErrInvalidToken, ""},
		{"secret of another token", "rls_" + revRec.ID + "_" + secret, 0, ErrInvalidToken, ""},
		{"no prefix", strings.TrimPrefix(good, "rls_"), 0, ErrInvalidToken, ""},
		{"other prefix", "ghp_" + strings.TrimPrefix(good, "rls_"), 0, ErrInvalidToken, ""},
		{"upper case", strings.ToUpper(good), 0, ErrInvalidToken, ""},
		{"truncated", good[:len(good)-1], 0, ErrInvalidToken, ""},
		{"extra char", good + "a", 0, ErrInvalidToken, ""},
		{"padding", good + "=", 0, ErrInvalidToken, ""},
		{"no separator", "rls_" + id + secret, 0, ErrInvalidToken, ""},
		{"bad alphabet", "rls_" + id + "_" + strings.Repeat("1", 52), 0, ErrInvalidToken, ""},
		{"id only", "rls_" + id, 0, ErrInvalidToken, ""},
		{"newline", good + "\n", 0, ErrInvalidToken, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock = time.Now().Add(c.later)
			p, err := s.Authenticate(c.tok)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if strings.HasPrefix(c.name, "wrong secret") && !strings.Contains(fmt.Sprint(err), "wrong secret") {
				t.Errorf("err = %v, want the wrong-secret path", err)
			}
			if err != nil {
				if p != (Principal{}) {
					t.Errorf("principal %+v with an error", p)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals the secret: %v", err)
				}
				return
			}
			if p.User != c.user || p.TokenID != TokenID(c.tok) {
				t.Errorf("principal %+v, want user %s", p, c.user)
			}
		})
	}
	clock = time.Now()
	if p, _ := s.Authenticate(good); p.Role != RoleRadiologist || p.TokenID != rec.ID {
		t.Errorf("principal %+v", p)
	}
	if !errors.Is(ErrRevoked, ErrInvalidToken) || !errors.Is(ErrExpired, ErrInvalidToken) {
		t.Error("ErrRevoked and ErrExpired must be ErrInvalidToken")
	}
}

func TestCreateRejects(t *testing.T) {
	s := open(t, t.TempDir())
	for _, c := range []struct {
		user string
		role Role
		opts CreateOptions
	}{
		{"", RoleAdmin, CreateOptions{}},
		{"  ", RoleAdmin, CreateOptions{}},
		{"a\nb", RoleAdmin, CreateOptions{}},
		{"alice", "root", CreateOptions{}},
		{"alice", "", CreateOptions{}},
		{"alice", RoleAdmin, CreateOptions{TTL: -time.Hour}},
	} {
		if _, _, err := s.Create(c.user, c.role, c.opts); err == nil {
			t.Errorf("Create(%q, %q, %+v) succeeded", c.user, c.role, c.opts)
		}
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Errorf("rejected creates left %d records", len(l))
	}
}

func TestRevokeAndList(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a, ra := create(t, s, "alice", RoleAdmin, CreateOptions{})
	_, rb := create(t, s, "bob", RoleModality, CreateOptions{TTL: 90 * 24 * time.Hour})
	if err := s.Revoke(a); err != nil { // a whole token names its ID
		t.Fatal(err)
	}
	if err := s.Revoke(ra.ID); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	for _, bad := range []string{"aaaaaaaaaaaaaaaa", "nope", ""} {
		if err := s.Revoke(bad); !errors.Is(err, ErrUnknownToken) {
			t.Errorf("Revoke(%q) = %v, want ErrUnknownToken", bad, err)
		}
	}
	// A fresh Store reads the same state from the file.
	for _, st := range []*Store{s, open(t, dir)} {
		l, err := st.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 2 || l[0].ID != ra.ID || l[1].ID != rb.ID {
			t.Fatalf("List = %+v", l)
		}
		if l[0].Status(time.Now()) != StatusRevoked || l[1].Status(time.Now()) != StatusActive {
			t.Errorf("statuses %s %s", l[0].Status(time.Now()), l[1].Status(time.Now()))
		}
		if !l[1].Expires.Equal(l[1].Created.Add(90 * 24 * time.Hour)) {
			t.Errorf("expires %v, created %v", l[1].Expires, l[1].Created)
		}
		if g, ok, _ := st.Get(rb.ID); !ok || g.User != "bob" {
			t.Errorf("Get = %+v %v", g, ok)
		}
	}
	data, _ := os.ReadFile(s.Path())
	if n := bytes.Count(data, []byte("\n")); n != 3 {
		t.Errorf("%d lines, want 3 (two creates, one revoke)\n%s", n, data)
	}
}

func TestHashNotTokenOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	tok, _ := create(t, s, "alice", RoleAdmin, CreateOptions{})
	_, secret, _ := splitToken(tok)
	h := hashSecret(secret)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(bytes.ToUpper(b), []byte(strings.ToUpper(secret))) {
			t.Errorf("%s holds the secret", p)
		}
		if !bytes.Contains(b, []byte(hexs(h[:]))) {
			t.Errorf("%s lacks the hash", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func hexs(b []byte) string {
	const d = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(d[c>>4])
		sb.WriteByte(d[c&15])
	}
	return sb.String()
}

func TestFilePermissions(t *testing.T) {
	data := t.TempDir()
	s := open(t, data)
	create(t, s, "alice", RoleAdmin, CreateOptions{})
	di, err := os.Stat(filepath.Join(data, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %04o, want 0700", di.Mode().Perm())
	}
	fi, err := os.Stat(filepath.Join(data, "auth", "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := os.Chmod(s.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(data); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Open of a 0644 token file: %v, want a refusal", err)
	}
}

func TestTornLastLine(t *testing.T) {
	data := t.TempDir()
	s := open(t, data)
	a, _ := create(t, s, "alice", RoleAdmin, CreateOptions{})
	_, rb := create(t, s, "bob", RoleModality, CreateOptions{})
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	// A crash during the write of bob's revocation: half a line, no newline.
	torn := `{"op":"revoke","id":"` + rb.ID + `","at":"2026-`
	if err := os.WriteFile(s.Path(), append(b, torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(data)
	if err != nil {
		t.Fatalf("Open with a torn last line: %v", err)
	}
	if l, _ := s2.List(); len(l) != 2 || l[1].Status(time.Now()) != StatusActive {
		t.Fatalf("List = %+v", l)
	}
	if _, err := s2.Authenticate(a); err != nil {
		t.Fatal(err)
	}
	// The next write cuts the torn line off and appends a whole one.
	c, _ := create(t, s2, "carol", RoleRequester, CreateOptions{})
	b2, _ := os.ReadFile(s.Path())
	if bytes.Contains(b2, []byte(torn)) || !bytes.HasSuffix(b2, []byte("\n")) || bytes.Count(b2, []byte("\n")) != 3 {
		t.Errorf("file after the write:\n%s", b2)
	}
	for _, st := range []*Store{s, s2, open(t, data)} {
		if err := st.refresh(true); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{a, c} {
			if _, err := st.Authenticate(tok); err != nil {
				t.Errorf("after the cut: %v", err)
			}
		}
	}
}

func TestCorruptLineFailsClosed(t *testing.T) {
	data := t.TempDir()
	s := open(t, data)
	a, _ := create(t, s, "alice", RoleAdmin, CreateOptions{})
	f, err := os.OpenFile(s.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n")
	f.Close()
	if _, err := Open(data); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Open = %v, want an error naming line 2", err)
	}
	if err := s.refresh(true); err == nil {
		t.Error("refresh read a corrupt line without error")
	}
	if _, err := s.Authenticate(a); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Errorf("Authenticate on a corrupt store = %v, want a store error", err)
	}
}

// Two Stores on one directory stand for `relais serve` and the CLI.
func TestTwoStoresCreateConcurrently(t *testing.T) {
	data := t.TempDir()
	s1, s2 := open(t, data), open(t, data)
	const n = 20
	toks := make([]string, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := s1
			if i%2 == 1 {
				st = s2
			}
			tok, _, err := st.Create("user", RoleRadiologist, CreateOptions{})
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(s1.Path())
	if lines := bytes.Count(b, []byte("\n")); lines != 2*n {
		t.Fatalf("%d lines, want %d", lines, 2*n)
	}
	for _, st := range []*Store{s1, s2, open(t, data)} {
		st.refresh(true)
		for _, tok := range toks {
			if _, err := st.Authenticate(tok); err != nil {
				t.Fatal(err)
			}
		}
		if l, _ := st.List(); len(l) != 2*n {
			t.Errorf("List: %d records", len(l))
		}
	}
}

// A running server sees a token created, then revoked, by another process
// within a second, without being told.
func TestSecondStoreSeesChangesWithinASecond(t *testing.T) {
	data := t.TempDir()
	server, cli := open(t, data), open(t, data)
	if _, err := server.Authenticate("rls_aaaaaaaaaaaaaaaa_" + strings.Repeat("a", 52)); !errors.Is(err, ErrInvalidToken) {
		t.Fatal(err)
	}
	tok, rec := create(t, cli, "alice", RoleRadiologist, CreateOptions{})
	within := func(what string, ok func(error) bool) {
		t.Helper()
		start := time.Now()
		for {
			_, err := server.Authenticate(tok)
			if ok(err) {
				t.Logf("%s seen after %v", what, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s not seen within a second: %v", what, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	within("creation", func(err error) bool { return err == nil })
	if err := cli.Revoke(rec.ID); err != nil {
		t.Fatal(err)
	}
	within("revocation", func(err error) bool { return errors.Is(err, ErrRevoked) })
}

func TestStoreFileRemovedFailsClosed(t *testing.T) {
	data := t.TempDir()
	s := open(t, data)
	a, _ := create(t, s, "alice", RoleAdmin, CreateOptions{})
	if err := os.Remove(s.Path()); err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(true); err == nil {
		t.Error("refresh of a removed file succeeded")
	}
	if _, err := s.Authenticate(a); err == nil {
		t.Error("token accepted after its store was removed")
	}
}
