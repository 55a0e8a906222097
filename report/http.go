package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/internal/httpjson"
	"github.com/relais-health/relais/journal"
)

// Authorizer checks a request's credentials for a permission; on refusal
// it has answered the request.
type Authorizer func(http.ResponseWriter, *http.Request, auth.Permission) (auth.Principal, bool)

// maxBody bounds request bodies (a report is a few pages of text).
const maxBody = 1 << 20

// Handler serves the report API under /api/reports and the documents
// under /reports/{id}.
func (s *Service) Handler(authorize Authorizer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/reports", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authorize(w, r, auth.ReadReports)
		if !ok {
			return
		}
		list := s.List(r.URL.Query().Get("study"))
		out := make([]view, 0, len(list))
		for _, rep := range list {
			if s.visible(p, rep) {
				out = append(out, viewOf(rep))
			}
		}
		httpjson.Write(w, http.StatusOK, map[string]any{"reports": out})
	})
	mux.HandleFunc("POST /api/reports", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authorize(w, r, auth.WriteReports)
		if !ok {
			return
		}
		var body struct {
			Study string `json:"study_instance_uid"`
			Content
		}
		if !readJSON(w, r, &body) {
			return
		}
		rep, err := s.Create(r.Context(), p.User, body.Study, body.Content)
		if err != nil {
			s.writeError(w, r, p.User, err)
			return
		}
		w.Header().Set("Location", "/api/reports/"+rep.ID)
		httpjson.Write(w, http.StatusCreated, viewOf(rep))
	})
	mux.HandleFunc("GET /api/reports/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authorize(w, r, auth.ReadReports)
		if !ok {
			return
		}
		rep, err := s.Get(r.PathValue("id"))
		if err == nil && !s.visible(p, rep) {
			err = fmt.Errorf("%w: report %q", ErrNotFound, rep.ID)
		}
		if err != nil {
			s.writeError(w, r, p.User, err)
			return
		}
		httpjson.Write(w, http.StatusOK, viewOf(rep))
	})
	edit := func(op string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			p, ok := authorize(w, r, auth.WriteReports)
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
			id := r.PathValue("id")
			var rep *Report
			var err error
			switch op {
			case "edit":
				rep, err = s.Update(r.Context(), p.User, id, body.Patch, body.Revision)
			case "sign":
				if body.Patch != (Patch{}) {
					err = &InputError{Field: "content", Reason: "sign takes no content: edit the draft first"}
					break
				}
				rep, err = s.Sign(r.Context(), p.User, id, body.Revision)
			case "correct":
				rep, err = s.Correct(r.Context(), p.User, id, body.Patch, body.Revision)
			}
			if err != nil {
				s.writeError(w, r, p.User, err)
				return
			}
			httpjson.Write(w, http.StatusOK, viewOf(rep))
		}
	}
	mux.HandleFunc("PATCH /api/reports/{id}", edit("edit"))
	mux.HandleFunc("POST /api/reports/{id}/sign", edit("sign"))
	mux.HandleFunc("POST /api/reports/{id}/correct", edit("correct"))
	mux.HandleFunc("GET /reports/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := authorize(w, r, auth.ReadReports)
		if !ok {
			return
		}
		q := r.URL.Query()
		version := 0
		if v := q.Get("version"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				s.writeError(w, r, p.User, &InputError{Field: "version", Reason: fmt.Sprintf("%q is not a version number", v)})
				return
			}
			version = n
		}
		name, ctype, err := documentFor(q.Get("format"), r.Header.Get("Accept"))
		if err != nil {
			w.Header().Set("Warning", `299 relais: "`+err.Error()+`"`)
			httpjson.Write(w, http.StatusNotAcceptable, map[string]string{"error": err.Error()})
			return
		}
		id := r.PathValue("id")
		if rep, err := s.Get(id); err == nil && !s.visible(p, rep) {
			s.writeError(w, r, p.User, fmt.Errorf("%w: report %q", ErrNotFound, id))
			return
		}
		b, v, err := s.Document(id, version, name)
		if err != nil {
			s.writeError(w, r, p.User, err)
			return
		}
		if rep, err := s.Get(id); err == nil && s.d.Journal != nil {
			s.d.Journal.AppendAsync(&journal.Event{Kind: "report.viewed", User: p.User, Addr: r.RemoteAddr, StudyUID: rep.StudyUID,
				Reason: fmt.Sprintf("report %s version %d as %s", id, v.Number, name)})
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		ext := map[string]string{DocLevel3: "xml", DocLevel1: "level1.xml", DocPDF: "pdf"}[name]
		w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s-v%d.%s"`, id, v.Number, ext))
		w.Header().Set("Cache-Control", "private, no-store")
		w.Write(b)
	})
	return mux
}

// visible reports whether p may read rep: a requester only the reports of
// its site's studies (another site's report is "not found", not
// "forbidden": its existence is not told), everyone else every report.
func (s *Service) visible(p auth.Principal, rep *Report) bool {
	if p.Role != auth.RoleRequester {
		return true
	}
	if s.d.SiteOfUser == nil {
		return false
	}
	site, ok := s.d.SiteOfUser(p.User)
	return ok && site != "" && site == rep.Site
}

// documentFor chooses the document from ?format= or Accept.
func documentFor(format, accept string) (name, ctype string, err error) {
	switch strings.ToLower(format) {
	case "level3", "cda", "xml":
		return DocLevel3, "text/xml; charset=utf-8", nil
	case "level1":
		return DocLevel1, "text/xml; charset=utf-8", nil
	case "pdf":
		return DocPDF, "application/pdf", nil
	case "":
	default:
		return "", "", fmt.Errorf("format %q is not level3, level1 or pdf", format)
	}
	if strings.TrimSpace(accept) == "" {
		return DocLevel3, "text/xml; charset=utf-8", nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/pdf":
			return DocPDF, "application/pdf", nil
		case "text/xml", "application/xml", "application/hl7-cda+xml", "application/*", "text/*", "*/*":
			return DocLevel3, mt + "; charset=utf-8", nil
		}
	}
	return "", "", fmt.Errorf("a report is served as CDA XML (text/xml, application/xml, application/hl7-cda+xml) or PDF (application/pdf), not %q", accept)
}

// view is the API form of a report: versions with the URLs of their
// documents.
type view struct {
	*Report
	Versions []versionView `json:"versions,omitempty"`
}

type versionView struct {
	Version
	CDAURL    string `json:"cda_url"`
	PDFURL    string `json:"pdf_url,omitempty"`
	Level1URL string `json:"level1_url,omitempty"`
}

func viewOf(r *Report) view {
	v := view{Report: r}
	for _, ver := range r.Versions {
		base := fmt.Sprintf("/reports/%s?version=%d", r.ID, ver.Number)
		vv := versionView{Version: ver, CDAURL: base + "&format=level3", PDFURL: base + "&format=pdf"}
		for _, d := range ver.Documents {
			if d.Format == "level1" {
				vv.Level1URL = base + "&format=level1"
			}
		}
		v.Versions = append(v.Versions, vv)
	}
	return v
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
	case errors.Is(err, ErrState), errors.Is(err, ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, ErrIncomplete):
		status = http.StatusUnprocessableEntity
	}
	if status == http.StatusInternalServerError {
		s.d.Logger.Error("report API failed", "path", r.URL.Path, "user", user, "err", err)
	} else {
		s.d.Logger.Info("report API refused", "path", r.URL.Path, "user", user, "status", status, "err", err)
	}
	httpjson.Write(w, status, map[string]string{"error": err.Error()})
}
