package node

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/dicomweb"
)

// apiRoute mounts a subsystem's HTTP API under a path prefix.
type apiRoute struct {
	prefix string
	h      http.Handler
}

// mountAPI adds h under prefix (a prefix ending in "/" matches the
// subtree, otherwise the exact path and its subtree).
func (n *Node) mountAPI(prefix string, h http.Handler) {
	n.apis = append(n.apis, apiRoute{prefix, h})
}

// apiHandler serves the mounted APIs and everything else with h.
func (n *Node) apiHandler(h http.Handler) http.Handler {
	if len(n.apis) == 0 {
		return h
	}
	apis := append([]apiRoute(nil), n.apis...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, a := range apis {
			if a.prefix == "/" { // the root page only, never the whole tree
				if r.URL.Path == "/" {
					a.h.ServeHTTP(w, r)
					return
				}
				continue
			}
			p := strings.TrimSuffix(a.prefix, "/")
			if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
				a.h.ServeHTTP(w, r)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Authorize checks that the request's token grants perm. With http.auth
// none every request is allowed as user "anonymous" with the admin role
// except WriteReports, which always needs a radiologist's token (a report
// is signed by someone). A request with the web app's session cookie (and
// no Authorization header) is authorized by its session: the user's role,
// and the CSRF header on state-changing methods. On refusal it has
// answered (401/403) and logged.
func (n *Node) Authorize(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
	if p, ok, handled := n.authorizeSession(w, r, perm); handled {
		return p, ok
	}
	if n.Tokens == nil {
		if perm == auth.WriteReports {
			auth.WriteChallenge(w, auth.ErrForbidden)
			return auth.Principal{}, false
		}
		return auth.Principal{User: "anonymous", Role: auth.RoleAdmin}, true
	}
	p, err := n.Tokens.Authorize(r, perm)
	if err != nil {
		if !errors.Is(err, auth.ErrNoToken) {
			n.Logger.Warn("API: authentication refused", "remote", r.RemoteAddr, "path", r.URL.Path, "user", p.User, "error", err)
		}
		auth.WriteChallenge(w, err)
		return p, false
	}
	return p, true
}

// authorizeReaders is Authorize for what only radiologists and
// administrators see (the reading worklist, UPS-RS, the rotas): a
// requester is refused even where its role has the permission.
func (n *Node) authorizeReaders(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
	p, ok := n.Authorize(w, r, perm)
	if ok && p.Role != auth.RoleRadiologist && p.Role != auth.RoleAdmin {
		n.Logger.Warn("API: reserved to radiologists and administrators", "remote", r.RemoteAddr, "path", r.URL.Path, "user", p.User, "role", p.Role)
		auth.WriteChallenge(w, fmt.Errorf("%w: for radiologists and administrators", auth.ErrForbidden))
		return p, false
	}
	return p, ok
}

// authorizeStudy is Authorize for APIs under /api/studies/{study}/...: a
// requester is also limited to its site's studies (another site's is 404,
// as DICOMweb answers).
func (n *Node) authorizeStudy(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
	p, ok := n.Authorize(w, r, perm)
	if !ok {
		return p, false
	}
	if scope := n.studyScope(p); scope != nil {
		rest, _ := strings.CutPrefix(r.URL.Path, "/api/studies/")
		study, _, _ := strings.Cut(rest, "/")
		if !scope(study) {
			n.Logger.Warn("API: a study outside the caller's site", "user", p.User, "study", study, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error": "no such study"}` + "\n"))
			return p, false
		}
	}
	return p, true
}

// publicDICOMwebBase is the DICOMweb base URL written in the documents
// Relais builds (reports' and manifests' references): http.public_url when
// set (what other sites reach), otherwise the HTTP listener's address; ""
// without an HTTP listener.
func (n *Node) publicDICOMwebBase() string {
	cfg := n.Config
	base := dicomweb.DefaultBasePath
	if n.DICOMweb != nil && n.DICOMweb.BasePath != "" {
		base = strings.TrimRight(n.DICOMweb.BasePath, "/")
	}
	if cfg.HTTP.PublicURL != "" {
		return strings.TrimRight(cfg.HTTP.PublicURL, "/") + base
	}
	if cfg.Listen.HTTP == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(cfg.Listen.HTTP)
	if err != nil {
		return "http://" + cfg.Listen.HTTP + base
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
		n.Logger.Warn("http.public_url is not set: manifests and reports reference instances on localhost, which other sites cannot reach")
	}
	return "http://" + net.JoinHostPort(host, port) + base
}
