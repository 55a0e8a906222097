// Package dicomjson writes the DICOM JSON Model (PS3.18 Annex F) for the
// DICOMweb services: WriteDataset turns a scanned instance (dicom.ScanWith)
// into the object a WADO-RS /metadata response holds, WriteAttrs turns an
// index attribute map (storage, query) into a QIDO-RS result, and
// ArrayWriter streams them as a JSON array.
//
// JSON is written by hand into a pooled buffer, without reflection or
// encoding/json on the hot path, and is valid (UTF-8) JSON for any input.
package dicomjson
