package webapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/journal"
)

// UsersPath is where the app serves the users admin API (the admin area's
// Users tab): the browser's session, role admin, CSRF header.
const UsersPath = Prefix + "/api/users"

// Authorizer checks that a request may act with perm; on refusal it has
// answered (401/403). The node's Authorize (tokens and sessions) fits.
type Authorizer func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool)

// UsersHandler serves the web app's accounts to administrators under
// prefix (UsersPath in the app; a node may mount it elsewhere with its own
// authorizer):
//
//	GET  prefix                       {"users": [{name, role, created, password_changed, disabled}]}
//	POST prefix                       {"name", "role", "password"} → 201 the user (409 if it exists, 400 weak password or bad name/role)
//	POST prefix/{name}/disable        → the user; its sessions end at their next request
//	POST prefix/{name}/enable         → the user
//	POST prefix/{name}/password       {"password"} → 204
//
// Passwords travel only in request bodies and are never answered nor
// journaled. Changes are journaled with the administrator's user and
// address: user.added, user.disabled, user.enabled, user.password_changed.
// An administrator cannot disable their own account (409).
func UsersHandler(prefix string, users *auth.Users, j *journal.Journal, authorize Authorizer) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	note := func(r *http.Request, p auth.Principal, kind, reason string) {
		if j != nil {
			j.AppendAsync(&journal.Event{Kind: kind, User: p.User, Addr: r.RemoteAddr, Reason: reason})
		}
	}
	find := func(name string) (auth.User, error) {
		list, err := users.List()
		if err != nil {
			return auth.User{}, err
		}
		for _, u := range list {
			if u.Name == name {
				return u, nil
			}
		}
		return auth.User{}, fmt.Errorf("auth: %w: %s", auth.ErrUnknownUser, name)
	}
	fail := func(w http.ResponseWriter, err error) {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, auth.ErrUnknownUser):
			status = http.StatusNotFound
		case errors.Is(err, auth.ErrUserExists):
			status = http.StatusConflict
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := authorize(w, r, auth.Admin); !ok {
			return
		}
		list, err := users.List()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the user store could not be read"})
			return
		}
		if list == nil {
			list = []auth.User{}
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, map[string]any{"users": list})
	})
	mux.HandleFunc("POST "+prefix, func(w http.ResponseWriter, r *http.Request) {
		p, ok := authorize(w, r, auth.Admin)
		if !ok {
			return
		}
		var body struct {
			Name     string `json:"name"`
			Role     string `json:"role"`
			Password string `json:"password"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body is not JSON {"name", "role", "password"}`})
			return
		}
		u, err := users.Add(strings.TrimSpace(body.Name), auth.Role(body.Role), body.Password)
		if err != nil {
			fail(w, err)
			return
		}
		note(r, p, "user.added", "user "+u.Name+" role "+string(u.Role))
		writeJSON(w, http.StatusCreated, u)
	})
	mux.HandleFunc("POST "+prefix+"/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authorize(w, r, auth.Admin)
		if !ok {
			return
		}
		name, action := r.PathValue("name"), r.PathValue("action")
		if _, err := find(name); err != nil {
			fail(w, err)
			return
		}
		switch action {
		case "disable", "enable":
			if action == "disable" && name == p.User {
				writeJSON(w, http.StatusConflict, map[string]string{"error": "an administrator cannot disable their own account"})
				return
			}
			if err := users.SetDisabled(name, action == "disable"); err != nil {
				fail(w, err)
				return
			}
			note(r, p, "user."+action+"d", "user "+name)
			u, err := find(name)
			if err != nil {
				fail(w, err)
				return
			}
			writeJSON(w, http.StatusOK, u)
		case "password":
			var body struct {
				Password string `json:"password"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&body); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body is not JSON {"password"}`})
				return
			}
			if err := users.SetPassword(name, body.Password); err != nil {
				fail(w, err)
				return
			}
			note(r, p, "user.password_changed", "user "+name)
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	})
	return mux
}

// authorizeSession is the app's Authorizer: the browser's session (role,
// and the CSRF header on state-changing methods).
func (a *App) authorizeSession(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
	p, err := a.Sessions.Authorize(r, perm)
	if err != nil {
		if !errors.Is(err, auth.ErrNoToken) && !errors.Is(err, auth.ErrNoSession) {
			a.Logger.Warn("web app: users API refused", "remote", r.RemoteAddr, "user", p.User, "error", err)
		}
		auth.WriteChallenge(w, err)
		return p, false
	}
	return p, true
}
