// Package httpjson writes the JSON answers of Relais's HTTP APIs
// (reports, requests, the directory, manifests, the worklist, routing and
// queue administration) one way: indented for people reading them with
// curl, never cached (they carry patient and operational data).
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers v as JSON with status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
