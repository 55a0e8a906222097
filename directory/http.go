package directory

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/internal/httpjson"
)

// PathPrefix is where Handler serves.
const PathPrefix = "/api/directory"

// maxBody bounds a PUT body.
const maxBody = 1 << 20

// Handler serves the directory's HTTP API under PathPrefix:
//
//	GET    /api/directory                 every entry: {"organisations": [...], "professionals": [...], "sites": [...]}
//	GET    /api/directory/{kind}          the entries of a kind (organisations, professionals, sites)
//	GET    /api/directory/{kind}/{id}     one entry
//	PUT    /api/directory/{kind}/{id}     add (201) or replace (200) an API entry; the body is the entry
//	DELETE /api/directory/{kind}/{id}     remove an API entry: 204, or 200 with the configured entry now back in force
//
// An entry is a JSON object with the configuration's key names plus "id"
// and "source" ("config" or "api"); in a PUT body "id" (when present) must
// be the URL's and "source" is ignored. Reads need auth.ReadReports,
// changes auth.Admin (authorize answers refusals). Errors are
// {"error": TEXT, "key": "professionals.x.rpps"} (key when one is wrong):
// 400 invalid JSON or validation, 404 unknown, 409 a configured entry or an
// organisation still referenced.
func (d *Directory) Handler(authorize func(http.ResponseWriter, *http.Request, auth.Permission) (auth.Principal, bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var perm auth.Permission
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			perm = auth.ReadReports
		case http.MethodPut, http.MethodDelete:
			perm = auth.Admin
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed", "")
			return
		}
		p, ok := authorize(w, r, perm)
		if !ok {
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
		if !ok || (rest != "" && rest[0] != '/') {
			writeError(w, http.StatusNotFound, "not found", "")
			return
		}
		rest = strings.Trim(rest, "/")
		if rest == "" {
			if perm != auth.ReadReports {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+PathPrefix, "")
				return
			}
			httpjson.Write(w, http.StatusOK, d.Snapshot())
			return
		}
		parts := strings.Split(rest, "/")
		if len(parts) > 2 {
			writeError(w, http.StatusNotFound, "not found", "")
			return
		}
		k := Kind(parts[0])
		switch k {
		case Organisations, Professionals, Sites:
		default:
			writeError(w, http.StatusNotFound, errUnknownKind(k).Error(), "")
			return
		}
		if len(parts) == 1 {
			if perm != auth.ReadReports {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on a list", "")
				return
			}
			httpjson.Write(w, http.StatusOK, d.list(k))
			return
		}
		id := parts[1]
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			e, ok := d.entry(k, id)
			if !ok {
				writeError(w, http.StatusNotFound, string(k)+"."+id+" "+ErrNotFound.Error(), "")
				return
			}
			httpjson.Write(w, http.StatusOK, e)
		case http.MethodPut:
			d.servePut(w, r, k, id, p.User)
		case http.MethodDelete:
			action, err := d.delete(k, id, p.User)
			if err != nil {
				writeErr(w, err)
				return
			}
			if action == ActionReverted {
				e, _ := d.entry(k, id)
				httpjson.Write(w, http.StatusOK, e)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

func (d *Directory) servePut(w http.ResponseWriter, r *http.Request, k Kind, id, user string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error(), "")
		return
	}
	key := string(k) + "." + id
	var (
		action string
		bodyID string
	)
	switch k {
	case Organisations:
		var o config.Organisation
		if bodyID, _, err = decodeFields(body, key, &o, true); err == nil && (bodyID == "" || bodyID == id) {
			action, err = d.put(k, id, user, func(ov *overlay) { ov.Organisations[id] = o })
		}
	case Professionals:
		var p config.Professional
		if bodyID, _, err = decodeFields(body, key, &p, true); err == nil && (bodyID == "" || bodyID == id) {
			action, err = d.put(k, id, user, func(ov *overlay) { ov.Professionals[id] = p })
		}
	case Sites:
		var s config.Site
		if bodyID, _, err = decodeFields(body, key, &s, true); err == nil && (bodyID == "" || bodyID == id) {
			action, err = d.put(k, id, user, func(ov *overlay) { ov.Sites[id] = cloneSite(s) })
		}
	}
	if err == nil && bodyID != "" && bodyID != id {
		writeError(w, http.StatusBadRequest, "the body's id "+quote(bodyID)+" is not the URL's "+quote(id), key+".id")
		return
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	e, _ := d.entry(k, id)
	status := http.StatusOK
	if action == ActionCreated {
		status = http.StatusCreated
	}
	httpjson.Write(w, status, e)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// list returns the entries of kind k (a []Entry[T]).
func (d *Directory) list(k Kind) any {
	s := d.Snapshot()
	switch k {
	case Organisations:
		return s.Organisations
	case Professionals:
		return s.Professionals
	default:
		return s.Sites
	}
}

// entry returns kind/id as an Entry[T].
func (d *Directory) entry(k Kind, id string) (any, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	src := d.source(k, id)
	if src == "" {
		return nil, false
	}
	switch k {
	case Organisations:
		return Entry[config.Organisation]{id, src, d.merged.Organisations[id]}, true
	case Professionals:
		return Entry[config.Professional]{id, src, d.merged.Professionals[id]}, true
	default:
		return Entry[config.Site]{id, src, cloneSite(d.merged.Sites[id])}, true
	}
}

// writeErr answers err with its status: 400 (a *config.KeyError or invalid
// JSON), 404, 409 or 500.
func writeErr(w http.ResponseWriter, err error) {
	var ke *config.KeyError
	switch {
	case errors.As(err, &ke):
		writeError(w, http.StatusBadRequest, ke.Key+": "+ke.Msg, ke.Key)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), "")
	case IsConflict(err):
		writeError(w, http.StatusConflict, err.Error(), "")
	case errors.Is(err, ErrInvalidJSON):
		writeError(w, http.StatusBadRequest, err.Error(), "")
	default:
		writeError(w, http.StatusInternalServerError, err.Error(), "")
	}
}

func writeError(w http.ResponseWriter, status int, msg, key string) {
	body := map[string]string{"error": msg}
	if key != "" {
		body["key"] = key
	}
	httpjson.Write(w, status, body)
}
