package webapp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/journal"
)

// TestUsersAPI: an administrator's session lists, adds, disables and
// enables accounts through /app/api/users (CSRF header required, the
// password never answered nor journaled); a radiologist gets 403; the
// changes are journaled with the administrator's name.
func TestUsersAPI(t *testing.T) {
	a0, _ := newApp(t, "")
	jdir := t.TempDir()
	j, err := journal.Open(jdir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	a := &App{Users: a0.Users, Sessions: a0.Sessions, Journal: j}
	h := a.Handler()
	if _, err := a.Users.Add("root", auth.RoleAdmin, "administrateur-2026"); err != nil {
		t.Fatal(err)
	}
	session := func(user, pw string) (cookie *http.Cookie, csrf string) {
		r := httptest.NewRequest("POST", "/app/login", strings.NewReader(`{"username":"`+user+`","password":"`+pw+`"}`))
		r.Header.Set("Content-Type", "application/json")
		w := do(h, r)
		var s struct{ CSRF string }
		json.Unmarshal(w.Body.Bytes(), &s)
		for _, c := range w.Result().Cookies() {
			if c.Name == auth.SessionCookie {
				cookie = c
			}
		}
		if cookie == nil {
			t.Fatalf("login %s: %d %s", user, w.Code, w.Body)
		}
		return cookie, s.CSRF
	}
	call := func(c *http.Cookie, csrf, method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.AddCookie(c)
		if csrf != "" {
			r.Header.Set(auth.CSRFHeader, csrf)
		}
		r.Header.Set("Content-Type", "application/json")
		return do(h, r)
	}
	if w := do(h, httptest.NewRequest("GET", UsersPath, nil)); w.Code != 401 {
		t.Fatalf("without a session: %d", w.Code)
	}
	rc, rcsrf := session("alice", "correct horse battery")
	if w := call(rc, rcsrf, "GET", UsersPath, ""); w.Code != 403 {
		t.Fatalf("a radiologist: %d", w.Code)
	}
	ac, acsrf := session("root", "administrateur-2026")
	w := call(ac, acsrf, "GET", UsersPath, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"alice"`) || strings.Contains(w.Body.String(), "bcrypt") {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	const pw = "mot-de-passe-du-site"
	if w := call(ac, "", "POST", UsersPath, `{"name":"urgnord","role":"requester","password":"`+pw+`"}`); w.Code != 403 {
		t.Fatalf("add without the CSRF header: %d", w.Code)
	}
	if w := call(ac, acsrf, "POST", UsersPath, `{"name":"weak","role":"requester","password":"short"}`); w.Code != 400 {
		t.Fatalf("weak password: %d", w.Code)
	}
	w = call(ac, acsrf, "POST", UsersPath, `{"name":"urgnord","role":"requester","password":"`+pw+`"}`)
	if w.Code != 201 || strings.Contains(w.Body.String(), pw) || !strings.Contains(w.Body.String(), `"requester"`) {
		t.Fatalf("add: %d %s", w.Code, w.Body)
	}
	if w := call(ac, acsrf, "POST", UsersPath, `{"name":"urgnord","role":"requester","password":"`+pw+`"}`); w.Code != 409 {
		t.Fatalf("add twice: %d", w.Code)
	}
	nc, _ := session("urgnord", pw)
	if w := call(ac, acsrf, "POST", UsersPath+"/root/disable", ""); w.Code != 409 {
		t.Fatalf("disabling oneself: %d", w.Code)
	}
	if w := call(ac, acsrf, "POST", UsersPath+"/nobody/disable", ""); w.Code != 404 {
		t.Fatalf("unknown user: %d", w.Code)
	}
	w = call(ac, acsrf, "POST", UsersPath+"/urgnord/disable", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"disabled"`) {
		t.Fatalf("disable: %d %s", w.Code, w.Body)
	}
	// The disabled user's session ends.
	deadline := time.Now().Add(3 * time.Second)
	for {
		r := httptest.NewRequest("GET", "/app/api/session", nil)
		r.AddCookie(nc)
		if do(h, r).Code == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the disabled user's session still works")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w := call(ac, acsrf, "POST", UsersPath+"/urgnord/enable", ""); w.Code != 200 || strings.Contains(w.Body.String(), `"disabled"`) {
		t.Fatalf("enable: %d %s", w.Code, w.Body)
	}
	if w := call(ac, acsrf, "POST", UsersPath+"/urgnord/password", `{"password":"un-autre-mot-de-passe"}`); w.Code != 204 {
		t.Fatalf("password: %d %s", w.Code, w.Body)
	}
	// Journaled with the administrator, never with a password.
	want := map[string]bool{"user.added": false, "user.disabled": false, "user.enabled": false, "user.password_changed": false}
	j.Append(context.Background(), &journal.Event{Kind: "test.flush"}) // writes the async events before it
	deadline = time.Now().Add(3 * time.Second)
	for {
		err := journal.Query(context.Background(), jdir, journal.Filter{Kinds: []string{"user.added", "user.disabled", "user.enabled", "user.password_changed"}}, func(ev *journal.Event) error {
			if ev.User != "root" || !strings.Contains(ev.Reason, "urgnord") || strings.Contains(ev.Reason, pw) {
				t.Errorf("%s: user %q reason %q", ev.Kind, ev.User, ev.Reason)
			}
			want[ev.Kind] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		all := true
		for _, ok := range want {
			all = all && ok
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal: %v", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
