package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		headers []string
		tok     string
		err     error
	}{
		{nil, "", ErrNoToken},
		{[]string{"Bearer rls_x"}, "rls_x", nil},
		{[]string{"bearer   rls_x  "}, "rls_x", nil},
		{[]string{"Basic dXNlcjpwYXNz"}, "", ErrNoToken},
		{[]string{"Bearer"}, "", ErrInvalidToken},
		{[]string{"Bearer "}, "", ErrInvalidToken},
		{[]string{"Bearer a b"}, "", ErrInvalidToken},
		{[]string{"Bearer a", "Bearer b"}, "", ErrInvalidToken},
	} {
		r := httptest.NewRequest("GET", "/studies?access_token=rls_q", nil)
		for _, h := range c.headers {
			r.Header.Add("Authorization", h)
		}
		tok, err := BearerToken(r)
		if tok != c.tok || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%q: %q, %v; want %q, %v", c.headers, tok, err, c.tok, c.err)
		}
	}
}

func TestAuthorizeAndChallenge(t *testing.T) {
	s := open(t, t.TempDir())
	modality, _ := create(t, s, "ct1", RoleModality, CreateOptions{})
	radiologist, _ := create(t, s, "alice", RoleRadiologist, CreateOptions{})
	revoked, rec := create(t, s, "bob", RoleRadiologist, CreateOptions{})
	if err := s.Revoke(rec.ID); err != nil {
		t.Fatal(err)
	}
	h := func(perm Permission) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := s.Authorize(r, perm)
			if err != nil {
				WriteChallenge(w, err)
				return
			}
			r = r.WithContext(ContextWithPrincipal(r.Context(), p))
			q, _ := PrincipalFrom(r.Context())
			fmt.Fprint(w, q.User)
		})
	}
	for _, c := range []struct {
		name      string
		auth      string
		perm      Permission
		status    int
		challenge string // WWW-Authenticate; "" = none
		errCode   string
		body      string
	}{
		{"no token", "", ReadImages, 401, `Bearer realm="relais"`, "unauthorized", ""},
		{"basic", "Basic dXNlcjpwYXNz", ReadImages, 401, `Bearer realm="relais"`, "unauthorized", ""},
		{"garbage", "Bearer nope", ReadImages, 401, `Bearer realm="relais", error="invalid_token"`, "invalid_token", ""},
		{"revoked", "Bearer " + revoked, ReadImages, 401, `Bearer realm="relais", error="invalid_token"`, "invalid_token", ""},
		{"modality reads", "Bearer " + modality, ReadImages, 403, `Bearer realm="relais", error="insufficient_scope"`, "insufficient_scope", ""},
		{"modality stores", "Bearer " + modality, StoreImages, 200, "", "", "ct1"},
		{"radiologist reads", "Bearer " + radiologist, ReadImages, 200, "", "", "alice"},
		{"radiologist admin", "Bearer " + radiologist, Admin, 403, `Bearer realm="relais", error="insufficient_scope"`, "insufficient_scope", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/studies", nil)
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			h(c.perm).ServeHTTP(w, r)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			got := w.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(got, c.challenge) || (c.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want prefix %q", got, c.challenge)
			}
			if c.errCode != "" {
				var body struct{ Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != c.errCode {
					t.Errorf("body %s (%v), want error %q", w.Body, err, c.errCode)
				}
				if w.Header().Get("Content-Type") != "application/json" {
					t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
				}
				for _, tok := range []string{modality, radiologist, revoked} {
					_, secret, _ := splitToken(tok)
					if strings.Contains(w.Body.String()+got, secret) {
						t.Error("the answer reveals a secret")
					}
				}
			} else if w.Body.String() != c.body {
				t.Errorf("body %q, want %q", w.Body, c.body)
			}
		})
	}
	w := httptest.NewRecorder()
	WriteChallenge(w, errors.New("disk on fire"))
	if w.Code != 500 || w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("store failure: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if _, ok := PrincipalFrom(context.Background()); ok {
		t.Error("principal in an empty context")
	}
}
