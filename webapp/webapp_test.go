package webapp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/relais-health/relais/auth"
)

func newApp(t *testing.T, publicURL string) (*App, http.Handler) {
	t.Helper()
	users, err := auth.OpenUsers(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.Add("alice", auth.RoleRadiologist, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	a := &App{Users: users, Sessions: auth.NewSessions(users, 0, 0), PublicURL: publicURL}
	return a, a.Handler()
}

func do(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func login(t *testing.T, h http.Handler, user, pw string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", "/app/login", strings.NewReader(url.Values{"username": {user}, "password": {pw}, "next": {"/app/study/1.2.3"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(h, r)
}

func TestOnlyTheLoginPageWithoutSession(t *testing.T) {
	_, h := newApp(t, "")
	for _, p := range []string{"/app/", "/app/study/1.2.3", "/app/static/app.js", "/app/static/viewer.js", "/app/anything"} {
		w := do(h, httptest.NewRequest("GET", p, nil))
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/app/login?next=") {
			t.Errorf("GET %s: %d %q", p, w.Code, w.Header().Get("Location"))
		}
	}
	for _, p := range []string{"/app/login", "/app/static/login.css"} {
		if w := do(h, httptest.NewRequest("GET", p, nil)); w.Code != 200 {
			t.Errorf("GET %s: %d", p, w.Code)
		}
	}
	if w := do(h, httptest.NewRequest("GET", "/app/api/session", nil)); w.Code != 401 {
		t.Errorf("session without cookie: %d", w.Code)
	}
	w := do(h, httptest.NewRequest("GET", "/app/login", nil))
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestLoginSessionLogout(t *testing.T) {
	_, h := newApp(t, "https://relais.example")
	if w := login(t, h, "alice", "wrong password!"); w.Code != 401 || !strings.Contains(w.Body.String(), `id="login-error"`) {
		t.Fatalf("bad password: %d", w.Code)
	}
	w := login(t, h, "alice", "correct horse battery")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/app/study/1.2.3" {
		t.Fatalf("login: %d %q", w.Code, w.Header().Get("Location"))
	}
	var c *http.Cookie
	for _, x := range w.Result().Cookies() {
		if x.Name == auth.SessionCookie {
			c = x
		}
	}
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v (https public URL: Secure)", c)
	}
	r := httptest.NewRequest("GET", "/app/api/session", nil)
	r.AddCookie(c)
	w = do(h, r)
	var s struct{ User, Role, CSRF, Lang string }
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || s.User != "alice" || s.Role != "radiologist" || s.CSRF == "" {
		t.Fatalf("session: %s", w.Body)
	}
	r = httptest.NewRequest("GET", "/app/study/1.2.3", nil)
	r.AddCookie(c)
	if w := do(h, r); w.Code != 200 || !strings.Contains(w.Body.String(), "app.js") {
		t.Fatalf("shell: %d", w.Code)
	}
	// Logout needs the CSRF token.
	r = httptest.NewRequest("POST", "/app/logout", nil)
	r.AddCookie(c)
	r.Header.Set("Content-Type", "application/json")
	if w := do(h, r); w.Code != 403 {
		t.Fatalf("logout without CSRF: %d", w.Code)
	}
	r.Header.Set(auth.CSRFHeader, s.CSRF)
	if w := do(h, r); w.Code != 204 {
		t.Fatalf("logout: %d", w.Code)
	}
	r = httptest.NewRequest("GET", "/app/api/session", nil)
	r.AddCookie(c)
	if w := do(h, r); w.Code != 401 {
		t.Fatalf("after logout: %d", w.Code)
	}
	// A cross-origin login is refused.
	r = httptest.NewRequest("POST", "/app/login", strings.NewReader(`{"username":"alice","password":"correct horse battery"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "https://evil.example")
	if w := do(h, r); w.Code != 403 {
		t.Fatalf("cross-origin login: %d", w.Code)
	}
}

func TestLoginThrottled(t *testing.T) {
	_, h := newApp(t, "")
	for i := 0; i < maxFailures; i++ {
		login(t, h, "alice", "wrong password!")
	}
	if w := login(t, h, "alice", "correct horse battery"); w.Code != 401 || !strings.Contains(w.Body.String(), "réessayez") {
		t.Fatalf("throttled login: %d %s", w.Code, w.Body)
	}
}

func TestLangAndNext(t *testing.T) {
	a := &App{Language: "fr"}
	for _, c := range []struct{ accept, cookie, want string }{
		{"", "", "fr"}, {"en-GB,en;q=0.9", "", "en"}, {"de-DE,en;q=0.5,fr;q=0.8", "", "fr"}, {"en", "fr", "fr"}, {"de", "", "fr"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", c.accept)
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: langCookie, Value: c.cookie})
		}
		if got := a.Lang(r); got != c.want {
			t.Errorf("Accept-Language %q cookie %q: %s, want %s", c.accept, c.cookie, got, c.want)
		}
	}
	for in, want := range map[string]string{"": "/app/", "/app/study/1": "/app/study/1", "//evil.example/app/": "/app/",
		"https://evil.example/app/": "/app/", "/dicom-web/studies": "/app/", "/app/\\evil": "/app/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
