// Package webapp is Relais's web application: the login page, and behind
// it the reading worklist, the study viewer and the report editor. The
// front end is plain ES modules and CSS (no build step, no CDN), embedded
// in the binary with go:embed, so `relais serve` serves it from any
// machine. It talks to the node's HTTP APIs (DICOMweb, reports,
// manifests, worklist, requests) with the session cookie this package
// sets, and sends the session's CSRF token in the X-Relais-CSRF header of
// every state-changing request.
//
// Routes:
//
//	GET  /                 → 303 /app/
//	GET  /app/login        the login page (the only page an unauthenticated browser gets)
//	POST /app/login        form (username, password, next) or JSON {"username","password"}
//	POST /app/logout       ends the session (CSRF header, or csrf form field)
//	GET  /app/api/session  {"user","role","csrf","lang"}; 401 without a session
//	/app/api/users         the users admin API (UsersHandler; session of an admin)
//	GET  /app/static/...   assets (login.css and login.js public, the rest behind login)
//	GET  /app/...          the application shell (behind login)
package webapp

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/journal"
)

//go:embed assets
var assetFS embed.FS

// Prefix is the path of the app.
const Prefix = "/app"

// langCookie remembers the language toggle.
const langCookie = "relais_lang"

// App serves the web application.
type App struct {
	Users    *auth.Users
	Sessions *auth.Sessions
	Journal  *journal.Journal
	Logger   *slog.Logger
	// PublicURL is http.public_url: an https URL makes the cookie Secure.
	PublicURL string
	// SecureCookie forces the Secure attribute.
	SecureCookie bool
	// Language is the default language ("fr" or "en").
	Language string

	once   sync.Once
	static fs.FS
	login  *template.Template
	index  []byte

	files map[string]file

	mu       sync.Mutex
	failures map[string]*failure
}

// failure counts the recent failed logins of one user name.
type failure struct {
	n     int
	first time.Time
}

// Throttling of failed logins: after maxFailures failures of one user name
// within failureWindow, logins of that name are refused (without checking
// the password) until the window ends.
const (
	maxFailures   = 5
	failureWindow = 5 * time.Minute
)

func (a *App) init() {
	a.once.Do(func() {
		sub, err := fs.Sub(assetFS, "assets")
		if err != nil {
			panic(err)
		}
		a.static = sub
		a.login = template.Must(template.ParseFS(sub, "login.html"))
		a.index, err = fs.ReadFile(sub, "index.html")
		if err != nil {
			panic(err)
		}
		a.files = map[string]file{}
		fs.WalkDir(sub, "static", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(sub, p)
			if err != nil {
				return err
			}
			a.files[strings.TrimPrefix(p, "static/")] = file{b, etag(b)}
			return nil
		})
		a.failures = map[string]*failure{}
		if a.Logger == nil {
			a.Logger = slog.Default()
		}
		if a.Language == "" {
			a.Language = "fr"
		}
	})
}

// Handler serves / and /app/....
func (a *App) Handler() http.Handler {
	a.init()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /app/login", a.loginPage)
	mux.HandleFunc("POST /app/login", a.doLogin)
	mux.HandleFunc("POST /app/logout", a.doLogout)
	mux.HandleFunc("GET /app/api/session", a.session)
	users := UsersHandler(UsersPath, a.Users, a.Journal, a.authorizeSession)
	mux.Handle("GET "+UsersPath, users)
	mux.Handle("POST "+UsersPath, users)
	mux.Handle("POST "+UsersPath+"/{name}/{action}", users)
	mux.HandleFunc("GET /app/static/", a.asset)
	mux.HandleFunc("GET /app/", a.shell)
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// Lang chooses the UI language: the toggle's cookie, then the first of fr
// or en in Accept-Language, then the configured default.
func (a *App) Lang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "fr" || c.Value == "en") {
		return c.Value
	}
	type q struct {
		lang string
		q    float64
	}
	best := q{"", 0}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		tag = strings.ToLower(strings.TrimSpace(tag))
		base, _, _ := strings.Cut(tag, "-")
		if base != "fr" && base != "en" {
			continue
		}
		v := 1.0
		if p := strings.TrimSpace(params); strings.HasPrefix(p, "q=") {
			fmt.Sscanf(p[2:], "%g", &v)
		}
		if v > best.q {
			best = q{base, v}
		}
	}
	if best.lang != "" {
		return best.lang
	}
	return a.Language
}

func (a *App) secure(r *http.Request) bool {
	return a.SecureCookie || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") ||
		strings.HasPrefix(strings.ToLower(a.PublicURL), "https:")
}

// currentSession returns the request's live session, if any.
func (a *App) currentSession(r *http.Request) (auth.Session, bool) {
	ss, err := a.Sessions.SessionOf(r)
	return ss, err == nil
}

// loginText is the login page's text in each language.
var loginText = map[string]map[string]string{
	"fr": {"title": "Connexion", "user": "Identifiant", "password": "Mot de passe", "submit": "Se connecter",
		"failed": "Identifiant ou mot de passe incorrect.", "throttled": "Trop d'échecs : réessayez dans quelques minutes.",
		"other": "English", "tagline": "Téléradiologie"},
	"en": {"title": "Sign in", "user": "User name", "password": "Password", "submit": "Sign in",
		"failed": "Wrong user name or password.", "throttled": "Too many failures: try again in a few minutes.",
		"other": "Français", "tagline": "Teleradiology"},
}

func (a *App) renderLogin(w http.ResponseWriter, r *http.Request, status int, errKey, next string) {
	lang := a.Lang(r)
	t := loginText[lang]
	other := "en"
	if lang == "en" {
		other = "fr"
	}
	data := map[string]any{"Lang": lang, "T": t, "Next": next, "Other": other}
	if errKey != "" {
		data["Error"] = t[errKey]
	}
	var buf bytes.Buffer
	if err := a.login.Execute(&buf, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// safeNext keeps a post-login redirect inside the app.
func safeNext(s string) string {
	if s == "" || !strings.HasPrefix(s, Prefix+"/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return Prefix + "/"
	}
	if u, err := url.Parse(s); err != nil || u.Host != "" || u.Scheme != "" {
		return Prefix + "/"
	}
	return s
}

func (a *App) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := a.currentSession(r); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if l := r.URL.Query().Get("lang"); l == "fr" || l == "en" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 86400, SameSite: http.SameSiteStrictMode, Secure: a.secure(r)})
		// Let Lang see the cookie just set (the session cookie is not needed
		// any more: there is none).
		r.Header.Set("Cookie", langCookie+"="+l)
	}
	a.renderLogin(w, r, http.StatusOK, "", next)
}

// sameOrigin refuses cross-site logins and logouts (login CSRF): an Origin
// header, when the browser sends one, must be this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func (a *App) doLogin(w http.ResponseWriter, r *http.Request) {
	asJSON := isJSON(r)
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	var user, password, next string
	if asJSON {
		var body struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not JSON {\"username\", \"password\"}"})
			return
		}
		user, password = body.Username, body.Password
	} else {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		user, password, next = r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("next")
	}
	next = safeNext(next)
	if !sameOrigin(r) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin login refused"})
		return
	}
	user = strings.TrimSpace(user)
	fail := func(key string, err error) {
		a.Logger.Warn("web app: login failed", "user", user, "remote", r.RemoteAddr, "error", err)
		if a.Journal != nil {
			a.Journal.AppendAsync(&journal.Event{Kind: "auth.login_failed", User: user, Addr: r.RemoteAddr, Reason: err.Error()})
		}
		if asJSON {
			status := http.StatusUnauthorized
			if key == "throttled" {
				status = http.StatusTooManyRequests
			}
			writeJSON(w, status, map[string]string{"error": loginText["en"][key]})
			return
		}
		a.renderLogin(w, r, http.StatusUnauthorized, key, next)
	}
	if a.throttled(user) {
		fail("throttled", fmt.Errorf("%d failed logins within %v: refused without checking", maxFailures, failureWindow))
		return
	}
	u, err := a.Users.Check(user, password)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			a.noteFailure(user)
		}
		fail("failed", err)
		return
	}
	a.clearFailures(user)
	id, ss, err := a.Sessions.Create(u, r.RemoteAddr)
	if err != nil {
		a.Logger.Error("web app: session", "error", err)
		http.Error(w, "session unavailable", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
	a.Logger.Info("web app: login", "user", u.Name, "role", u.Role, "remote", r.RemoteAddr)
	if a.Journal != nil {
		a.Journal.AppendAsync(&journal.Event{Kind: "auth.login", User: u.Name, Addr: r.RemoteAddr, Reason: "role " + string(u.Role)})
	}
	if asJSON {
		writeJSON(w, http.StatusOK, map[string]string{"user": u.Name, "role": string(u.Role), "csrf": ss.CSRF, "lang": a.Lang(r)})
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (a *App) throttled(user string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.failures[user]
	if f == nil {
		return false
	}
	if time.Since(f.first) > failureWindow {
		delete(a.failures, user)
		return false
	}
	return f.n >= maxFailures
}

func (a *App) noteFailure(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.failures) > 10000 { // bounded: forget everything rather than grow
		a.failures = map[string]*failure{}
	}
	f := a.failures[user]
	if f == nil || time.Since(f.first) > failureWindow {
		f = &failure{first: time.Now()}
		a.failures[user] = f
	}
	f.n++
}

func (a *App) clearFailures(user string) {
	a.mu.Lock()
	delete(a.failures, user)
	a.mu.Unlock()
}

func (a *App) doLogout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(auth.SessionCookie)
	if err != nil {
		http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
		return
	}
	ss, err := a.Sessions.Lookup(c.Value)
	if err == nil {
		if r.Header.Get(auth.CSRFHeader) == "" && !isJSON(r) {
			// The logout form carries the token as a field.
			if perr := r.ParseForm(); perr == nil {
				r.Header.Set(auth.CSRFHeader, r.PostForm.Get("csrf"))
			}
		}
		if err := auth.CheckCSRF(r, ss); err != nil {
			auth.WriteChallenge(w, err)
			return
		}
		a.Sessions.Delete(c.Value)
		a.Logger.Info("web app: logout", "user", ss.User, "remote", r.RemoteAddr)
		if a.Journal != nil {
			a.Journal.AppendAsync(&journal.Event{Kind: "auth.logout", User: ss.User, Addr: r.RemoteAddr})
		}
	}
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
	if isJSON(r) || r.Header.Get("Accept") == "application/json" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

func (a *App) session(w http.ResponseWriter, r *http.Request) {
	ss, err := a.Sessions.SessionOf(r)
	if err != nil {
		auth.WriteChallenge(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"user": ss.User, "role": string(ss.Role), "csrf": ss.CSRF, "lang": a.Lang(r)})
}

// publicAssets are served without a session: the login page's own.
var publicAssets = map[string]bool{"login.css": true, "login.js": true, "logo.svg": true}

func (a *App) toLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Path
	if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(safeNext(next)), http.StatusSeeOther)
}

func (a *App) asset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), Prefix+"/static/")
	if !publicAssets[name] {
		if _, ok := a.currentSession(r); !ok {
			a.toLogin(w, r)
			return
		}
	}
	f, ok := a.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b := f.data
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js", ".mjs":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	// Private: behind a login. Revalidated: a new binary serves new code.
	w.Header().Set("Cache-Control", "private, no-cache")
	w.Header().Set("ETag", f.etag)
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(b)
}

type file struct {
	data []byte
	etag string
}

func etag(b []byte) string {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return fmt.Sprintf(`"%x"`, h)
}

// shell serves the single-page application's HTML for every /app page.
func (a *App) shell(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.currentSession(r); !ok {
		a.toLogin(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(a.index)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
