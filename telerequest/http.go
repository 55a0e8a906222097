package telerequest

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/internal/httpjson"
)

// PathPrefix is where the API is mounted.
const PathPrefix = "/api/requests"

// Authorizer checks a request's credentials for a permission; on refusal
// it has answered the request.
type Authorizer func(http.ResponseWriter, *http.Request, auth.Permission) (auth.Principal, bool)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Handler serves the request API under /api/requests. Reading needs
// read-reports; writing store-images (the roles that may then do it are
// the service's rules: requesters and admins record, radiologists link);
// requesters see and change their site's requests only.
func (s *Service) Handler(authorize Authorizer) http.Handler {
	mux := http.NewServeMux()
	actor := func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (Actor, bool) {
		p, ok := authorize(w, r, perm)
		return Actor{User: p.User, Role: p.Role}, ok
	}
	mux.HandleFunc("GET "+PathPrefix, func(w http.ResponseWriter, r *http.Request) {
		a, ok := actor(w, r, auth.ReadReports)
		if !ok {
			return
		}
		q := r.URL.Query()
		f := Filter{Study: q.Get("study"), Accession: q.Get("accession"), Site: q.Get("site")}
		if v := q.Get("state"); v != "" {
			st, err := ParseState(v)
			if err != nil {
				s.writeError(w, r, a.User, err)
				return
			}
			f.State = st
		}
		list, err := s.List(a, f)
		if err != nil {
			s.writeError(w, r, a.User, err)
			return
		}
		if list == nil {
			list = []*Request{}
		}
		httpjson.Write(w, http.StatusOK, map[string]any{"requests": list})
	})
	mux.HandleFunc("POST "+PathPrefix, func(w http.ResponseWriter, r *http.Request) {
		a, ok := actor(w, r, auth.StoreImages)
		if !ok {
			return
		}
		var body NewRequest
		if !readJSON(w, r, &body) {
			return
		}
		rq, err := s.Create(r.Context(), a, body)
		if err != nil {
			s.writeError(w, r, a.User, err)
			return
		}
		w.Header().Set("Location", PathPrefix+"/"+rq.ID)
		httpjson.Write(w, http.StatusCreated, rq)
	})
	mux.HandleFunc("GET "+PathPrefix+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := actor(w, r, auth.ReadReports)
		if !ok {
			return
		}
		rq, err := s.Get(a, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, a.User, err)
			return
		}
		s.viewed(a, rq, r.RemoteAddr)
		httpjson.Write(w, http.StatusOK, rq)
	})
	mux.HandleFunc("PATCH "+PathPrefix+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := actor(w, r, auth.StoreImages)
		if !ok {
			return
		}
		var body struct {
			Revision int `json:"revision"`
			Patch
		}
		if !readJSON(w, r, &body) {
			return
		}
		rq, err := s.Update(r.Context(), a, r.PathValue("id"), body.Patch, body.Revision)
		if err != nil {
			s.writeError(w, r, a.User, err)
			return
		}
		httpjson.Write(w, http.StatusOK, rq)
	})
	mux.HandleFunc("POST "+PathPrefix+"/{id}/consent", func(w http.ResponseWriter, r *http.Request) {
		a, ok := actor(w, r, auth.StoreImages)
		if !ok {
			return
		}
		var body ConsentInput
		if !readJSON(w, r, &body) {
			return
		}
		rq, err := s.RecordConsent(r.Context(), a, r.PathValue("id"), body)
		if err != nil {
			s.writeError(w, r, a.User, err)
			return
		}
		httpjson.Write(w, http.StatusOK, rq)
	})
	mux.HandleFunc("POST "+PathPrefix+"/{id}/link", func(w http.ResponseWriter, r *http.Request) {
		a, ok := actor(w, r, auth.StoreImages)
		if !ok {
			return
		}
		var body LinkInput
		if !readJSON(w, r, &body) {
			return
		}
		rq, err := s.Link(r.Context(), a, r.PathValue("id"), body)
		if err != nil {
			s.writeError(w, r, a.User, err)
			return
		}
		httpjson.Write(w, http.StatusOK, rq)
	})
	reasoned := func(op func(Actor, *http.Request, string) (*Request, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			a, ok := actor(w, r, auth.StoreImages)
			if !ok {
				return
			}
			var body struct {
				Reason string `json:"reason"`
			}
			if !readJSON(w, r, &body) {
				return
			}
			rq, err := op(a, r, body.Reason)
			if err != nil {
				s.writeError(w, r, a.User, err)
				return
			}
			httpjson.Write(w, http.StatusOK, rq)
		}
	}
	mux.HandleFunc("POST "+PathPrefix+"/{id}/unlink", reasoned(func(a Actor, r *http.Request, reason string) (*Request, error) {
		return s.Unlink(r.Context(), a, r.PathValue("id"), reason)
	}))
	mux.HandleFunc("POST "+PathPrefix+"/{id}/cancel", reasoned(func(a Actor, r *http.Request, reason string) (*Request, error) {
		return s.Cancel(r.Context(), a, r.PathValue("id"), reason)
	}))
	mux.HandleFunc("DELETE "+PathPrefix+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := actor(w, r, auth.StoreImages); !ok {
			return
		}
		w.Header().Set("Allow", "GET, PATCH")
		httpjson.Write(w, http.StatusMethodNotAllowed, map[string]string{"error": "a request is never deleted: cancel it with a reason (POST " + PathPrefix + "/{id}/cancel)"})
	})
	mux.HandleFunc(PathPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusNotFound, map[string]string{"error": "no such request route: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			httpjson.Write(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send application/json"})
			return false
		}
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		httpjson.Write(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON body: " + err.Error()})
		return false
	}
	if dec.More() {
		httpjson.Write(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON body: one object expected"})
		return false
	}
	return true
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, user string, err error) {
	status := http.StatusInternalServerError
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, ErrState), errors.Is(err, ErrConflict):
		status = http.StatusConflict
	}
	if status == http.StatusInternalServerError {
		s.d.Logger.Error("request API failed", "path", r.URL.Path, "user", user, "err", err)
	} else {
		s.d.Logger.Info("request API refused", "path", r.URL.Path, "user", user, "status", status, "err", err)
	}
	httpjson.Write(w, status, map[string]string{"error": err.Error()})
}
