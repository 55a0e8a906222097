package main

// Tests of `relais token`, through the real binary built by TestMain.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
)

var tokenRE = regexp.MustCompile(`^rls_[a-z2-7]{16}_[a-z2-7]{52}$`)

// runRelais runs the relais binary and returns stdout, stderr and the exit
// status.
func runRelais(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(relaisBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("relais %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// createToken runs `relais token create` and returns the token, checking
// that stdout is exactly one token line.
func createToken(t *testing.T, data, user, role string, extra ...string) string {
	t.Helper()
	out, errs, code := runRelais(t, append([]string{"token", "create", "--data", data, "--user", user, "--role", role}, extra...)...)
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errs)
	}
	tok, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(tok, "\n") || !tokenRE.MatchString(tok) {
		t.Fatalf("token create stdout %q: want exactly one token line", out)
	}
	return tok
}

func listTokens(t *testing.T, data string) map[string]map[string]any {
	t.Helper()
	out, errs, code := runRelais(t, "token", "list", "--data", data, "--json")
	if code != 0 {
		t.Fatalf("token list: exit %d: %s", code, errs)
	}
	got := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("token list --json line %q: %v", l, err)
		}
		got[m["id"].(string)] = m
	}
	return got
}

func TestTokenCLI(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data") // not there yet: create makes it
	tok := createToken(t, data, "dr.martin", "radiologist", "--expires", "90d")
	id := auth.TokenID(tok)
	createToken(t, data, "ct-scanner-1", "Modality")

	// The file holds the hash, never the token; modes 0700/0600.
	b, err := os.ReadFile(filepath.Join(data, "auth", "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(strings.TrimPrefix(tok, "rls_"+id+"_"))) {
		t.Error("the token file holds the secret")
	}
	if fi, _ := os.Stat(filepath.Join(data, "auth", "tokens")); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o", fi.Mode().Perm())
	}

	// list: table and JSON.
	out, _, code := runRelais(t, "token", "list", "--data", data)
	if code != 0 || !strings.HasPrefix(out, "ID") || !strings.Contains(out, id) || !strings.Contains(out, "dr.martin") ||
		!strings.Contains(out, "ct-scanner-1") || strings.Contains(out, tok) {
		t.Errorf("token list (exit %d):\n%s", code, out)
	}
	l := listTokens(t, data)
	if len(l) != 2 || l[id]["user"] != "dr.martin" || l[id]["role"] != "radiologist" || l[id]["status"] != "active" || l[id]["expires"] == nil {
		t.Fatalf("token list --json: %v", l)
	}
	for _, m := range l {
		for k := range m {
			if strings.Contains(strings.ToLower(k), "sha") || strings.Contains(strings.ToLower(k), "hash") {
				t.Errorf("list shows %s", k)
			}
		}
	}

	// The token authenticates against the store.
	s, err := auth.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.Authenticate(tok); err != nil || p.User != "dr.martin" || p.Role != auth.RoleRadiologist {
		t.Fatalf("Authenticate: %+v, %v", p, err)
	}

	// revoke
	if _, errs, code := runRelais(t, "token", "revoke", "--data", data, id); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, errs)
	}
	if st := listTokens(t, data)[id]["status"]; st != "revoked" {
		t.Errorf("status after revoke %v", st)
	}
	time.Sleep(300 * time.Millisecond) // the store rereads at most every 250ms
	if _, err := s.Authenticate(tok); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("revoked token: %v", err)
	}

	// Errors: non-zero exit, a message, nothing on stdout.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--user", "x", "--role", "doctor"}, "valid: admin, radiologist, requester, modality"},
		{[]string{"create", "--user", "x"}, "--role is required"},
		{[]string{"create", "--role", "admin"}, "--user is required"},
		{[]string{"create", "--user", "x", "--role", "admin", "--expires", "soon"}, "--expires"},
		{[]string{"create", "--user", "x", "--role", "admin", "--expires", "-3d"}, "--expires"},
		{[]string{"revoke", "aaaaaaaaaaaaaaaa"}, "no such token"},
		{[]string{"revoke"}, "accepts 1 arg"},
	} {
		args := append([]string{"token", c.args[0], "--data", data}, c.args[1:]...)
		out, errs, code := runRelais(t, args...)
		if code == 0 || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("relais %s: exit %d, stdout %q, stderr %q; want an error with %q", strings.Join(args, " "), code, out, errs, c.want)
		}
	}
	if _, errs, code := runRelais(t, "token", "list", "--data", filepath.Join(data, "nope")); code == 0 || !strings.Contains(errs, "no data directory") {
		t.Errorf("list of a missing data dir: exit %d, %s", code, errs)
	}
	if len(listTokens(t, data)) != 2 {
		t.Error("failed creates left tokens")
	}
}

// --config supplies the data directory.
func TestTokenCLIConfig(t *testing.T) {
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "relais.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+data+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runRelais(t, "token", "create", "--config", cfg, "--user", "u", "--role", "requester")
	if code != 0 || !tokenRE.MatchString(strings.TrimSpace(out)) {
		t.Fatalf("create --config: exit %d, %q, %s", code, out, errs)
	}
	if l := listTokens(t, data); len(l) != 1 {
		t.Errorf("tokens under data_dir: %v", l)
	}
}

// The CLI works while relais serve holds the data directory, and the
// running server honours what it does within a second.
func TestTokenWhileServing(t *testing.T) {
	s := startServer(t, "", "")
	url := fmt.Sprintf("http://127.0.0.1:%d/dicom-web/studies", s.httpPort)
	get := func(tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get(""); resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="relais"`) {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	tok := createToken(t, s.data, "dr.martin", "radiologist")
	modality := createToken(t, s.data, "ct1", "modality")
	within := func(what, tok string, ok func(int) bool) {
		t.Helper()
		start := time.Now()
		for {
			resp := get(tok)
			if ok(resp.StatusCode) {
				t.Logf("%s: %d after %v", what, resp.StatusCode, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s: still %d (%q) after a second", what, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	within("new token", tok, func(c int) bool { return c/100 == 2 })
	within("modality reads", modality, func(c int) bool { return c == 403 })
	wrong := tok[:len(tok)-1] + "a"
	if strings.HasSuffix(tok, "a") {
		wrong = tok[:len(tok)-1] + "b"
	}
	if resp := get(wrong); resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("wrong secret: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	if l := listTokens(t, s.data); len(l) != 2 {
		t.Errorf("list while serving: %v", l)
	}
	if _, errs, code := runRelais(t, "token", "revoke", "--data", s.data, auth.TokenID(tok)); code != 0 {
		t.Fatalf("revoke while serving: exit %d: %s", code, errs)
	}
	within("revoked token", tok, func(c int) bool { return c == 401 })
	if strings.Contains(s.logs(), strings.TrimPrefix(tok, "rls_"+auth.TokenID(tok)+"_")) {
		t.Error("the server log holds a secret")
	}
}

// Processes creating tokens at once on one data directory (the flock)
// lose none and corrupt nothing.
func TestTokenCreateConcurrentProcesses(t *testing.T) {
	data := t.TempDir()
	const n = 8
	toks := make(chan string, n)
	errc := make(chan error, n)
	for i := range n {
		go func() {
			out, errs, code := func() (string, string, int) {
				cmd := exec.Command(relaisBin, "token", "create", "--data", data, "--user", fmt.Sprint("user", i), "--role", "requester")
				var o, e bytes.Buffer
				cmd.Stdout, cmd.Stderr = &o, &e
				err := cmd.Run()
				if err != nil {
					return o.String(), e.String() + err.Error(), 1
				}
				return o.String(), e.String(), 0
			}()
			if code != 0 {
				errc <- fmt.Errorf("create %d: %s", i, errs)
				return
			}
			toks <- strings.TrimSpace(out)
		}()
	}
	s, err := auth.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case err := <-errc:
			t.Fatal(err)
		case tok := <-toks:
			// Open's first read is forced; later ones are throttled, so
			// poll for up to a second.
			deadline := time.Now().Add(time.Second)
			for {
				_, err := s.Authenticate(tok)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("token of another process: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	if l := listTokens(t, data); len(l) != n {
		t.Errorf("%d tokens listed, want %d", len(l), n)
	}
}
