package stow_test

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/stow"
)

// Example_handler wires Store into an HTTP handler for
// POST /dicom-web/studies and POST /dicom-web/studies/{study}.
func Example_handler() {
	var pipeline *ingest.Pipeline // the node's pipeline
	const maxBody = 4 << 30       // config http.stow_max_body
	handler := func(w http.ResponseWriter, r *http.Request) {
		mt, ok := stow.Negotiate(r.Header.Get("Accept"))
		if !ok {
			http.Error(w, "STOW-RS answers application/dicom+json or application/dicom+xml", http.StatusNotAcceptable)
			return
		}
		body := http.MaxBytesReader(w, r.Body, maxBody)
		resp, err := stow.Store(r.Context(), pipeline, r.Header.Get("Content-Type"), body, stow.Options{
			StudyInstanceUID: r.PathValue("study"),
			Source:           storage.Source{Channel: "stow", RemoteAddr: r.RemoteAddr},
			RetrieveURL: func(study, series, sop string) string {
				u := "https://relais.example/dicom-web/studies/" + study
				if sop != "" {
					u += "/series/" + series + "/instances/" + sop
				}
				return u
			},
		})
		var re *stow.RequestError
		switch {
		case errors.As(err, &re):
			http.Error(w, re.Reason, re.HTTPStatus)
			return
		case err != nil: // the request was cancelled
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", mt)
		w.WriteHeader(resp.HTTPStatus)
		resp.Write(w, mt)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dicom-web/studies", handler)
	mux.HandleFunc("POST /dicom-web/studies/{study}", handler)
	fmt.Println("ok")
	// Output: ok
}
