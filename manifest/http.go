package manifest

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/internal/httpjson"
)

// PathPrefix is where Handler serves: POST {PathPrefix}{study}/manifest
// and POST {PathPrefix}{study}/key-images.
const PathPrefix = "/api/studies/"

// Authorizer checks a request's token for a permission; on refusal it has
// answered (401/403). node.Node.Authorize is one.
type Authorizer func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool)

// maxBody bounds a key-image request body.
const maxBody = 1 << 20

// KeyImagesRequest is the body of POST .../key-images.
type KeyImagesRequest struct {
	Description string     `json:"description"`
	Instances   []KeyImage `json:"instances"`
}

// Handler serves the manifest API:
//
//	POST /api/studies/{study}/manifest    (build-manifests) build or find the study's manifest
//	GET  /api/studies/{study}/manifest    (read-reports) the manifest of the study's current state, if built
//	POST /api/studies/{study}/key-images  (write-reports) flag key images
//
// Both answer 201 with a new document, 200 with one already stored, as
// JSON (Result) or, with "Accept: application/dicom", as the Part 10
// file. Errors are JSON {"error": "..."}: 404 unknown study, 400 bad
// request, 401/403 from authorize.
func (s *Service) Handler(authorize Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
		study, verb, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || study == "" || (verb != "manifest" && verb != "key-images") {
			writeError(w, http.StatusNotFound, "no such API: "+r.URL.Path)
			return
		}
		if verb == "manifest" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if _, ok := authorize(w, r, auth.ReadReports); !ok {
				return
			}
			res, err := s.CurrentManifest(r.Context(), study)
			s.answer(w, r, res, err)
			return
		}
		if r.Method != http.MethodPost {
			allow := http.MethodPost
			if verb == "manifest" {
				allow = "GET, HEAD, POST"
			}
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" not allowed: "+allow)
			return
		}
		switch verb {
		case "manifest":
			p, ok := authorize(w, r, auth.BuildManifests)
			if !ok {
				return
			}
			io.Copy(io.Discard, io.LimitReader(r.Body, maxBody))
			res, err := s.StudyManifest(r.Context(), study, p.User)
			s.answer(w, r, res, err)
		case "key-images":
			p, ok := authorize(w, r, auth.WriteReports)
			if !ok {
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != "" {
				if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
					writeError(w, http.StatusUnsupportedMediaType, "the body must be application/json")
					return
				}
			}
			var body KeyImagesRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
				return
			}
			if dec.More() {
				writeError(w, http.StatusBadRequest, "bad JSON body: more than one value")
				return
			}
			res, err := s.KeyImages(r.Context(), study, body.Instances, body.Description, p.User)
			s.answer(w, r, res, err)
		}
	})
}

func (s *Service) answer(w http.ResponseWriter, r *http.Request, res *Result, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.log().Error("manifest API failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	status := http.StatusOK
	if res.Created && r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	if res.RetrieveURL != "" {
		w.Header().Set("Location", res.RetrieveURL)
	}
	if wantsDICOM(r) {
		w.Header().Set("Content-Type", "application/dicom")
		w.Header().Set("Content-Disposition", `attachment; filename="`+res.SOPInstanceUID+`.dcm"`)
		w.WriteHeader(status)
		w.Write(res.File)
		return
	}
	httpjson.Write(w, status, res)
}

// wantsDICOM: the Accept header names application/dicom before JSON.
func wantsDICOM(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/dicom":
			return true
		case "application/json", "*/*":
			return false
		}
	}
	return false
}

func writeError(w http.ResponseWriter, status int, msg string) {
	httpjson.Write(w, status, map[string]string{"error": msg})
}
