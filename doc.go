// Package relais is a teleradiology DICOM router and image-sharing hub.
//
// The binary lives in cmd/relais; each top-level folder owns one room of the
// flow described in README.md: dicom (datasets), dimse (the DICOM network
// protocol), storage (index and blobs), journal (the durable event log),
// ingest (the one pipeline every instance goes through).
package relais
