package node

import (
	"errors"
	"net/http"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/webapp"
)

// webSessions holds each node's web app session store (the Node struct is
// shared with other subsystems; this keeps the web app's state here).
// openWebApp sets up the web application: the users of DATA/auth/users,
// in-memory sessions, and the app under / and /app (unless web.disabled or
// there is no HTTP listener). A session cookie is then accepted by
// n.Authorize and by DICOMweb like a Bearer token of the user's role.
func (n *Node) openWebApp() error {
	cfg := n.Config
	if cfg.Web.Disabled || cfg.Listen.HTTP == "" {
		return nil
	}
	users, err := auth.OpenUsers(cfg.DataDir)
	if err != nil {
		return err
	}
	sessions := auth.NewSessions(users, time.Duration(cfg.Web.SessionIdle), time.Duration(cfg.Web.SessionMax))
	n.webSessions = sessions
	app := &webapp.App{Users: users, Sessions: sessions, Journal: n.Journal, Logger: n.Logger,
		PublicURL: cfg.HTTP.PublicURL, SecureCookie: cfg.Web.SecureCookie, Language: cfg.Web.Language}
	h := app.Handler()
	n.mountAPI("/", h) // the root only (see apiHandler)
	n.mountAPI(webapp.Prefix, h)
	// The same users API for administrators' tokens (scripts).
	n.mountAPI("/api/users", webapp.UsersHandler("/api/users", users, n.Journal, n.Authorize))
	return nil
}

// sessions returns the node's web session store, nil without the web app.
func (n *Node) sessions() *auth.Sessions { return n.webSessions }

// authorizeSession authorizes a request that carries the web app's session
// cookie (and no Authorization header); handled is false for any other
// request, which the caller checks as before. On refusal it has answered.
func (n *Node) authorizeSession(w http.ResponseWriter, r *http.Request, perm auth.Permission) (p auth.Principal, ok, handled bool) {
	s := n.sessions()
	if s == nil || !auth.HasSessionCookie(r) {
		return auth.Principal{}, false, false
	}
	p, err := s.Authorize(r, perm)
	if err != nil {
		if !errors.Is(err, auth.ErrNoToken) {
			n.Logger.Warn("session refused", "remote", r.RemoteAddr, "path", r.URL.Path, "user", p.User, "error", err)
		}
		auth.WriteChallenge(w, err)
		return p, false, true
	}
	return p, true, true
}
