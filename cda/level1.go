package cda

import (
	"bytes"
	"encoding/base64"
	"errors"
)

// Level 1 (non-structured body) identifiers.
const (
	// TemplateXDSSD is the templateId of IHE XDS-SD (scanned document, CDA R2
	// level 1), which a CI-SIS document with a nonXMLBody carries instead of
	// its model's template: IMG-CR-IMG (TemplateIMGCRIMG) and the DICOM PS3.20
	// imaging report templates require the structured body.
	TemplateXDSSD = "1.3.6.1.4.1.19376.1.2.20"
	// FormatCodeLevel1 is the XDS formatCode of a level 1 document holding a PDF.
	FormatCodeLevel1 = "urn:ihe:iti:xds-sd:pdf:2008"
)

// ErrNotPDF is returned by Level1 when the body it is given is not a PDF file.
var ErrNotPDF = errors.New("cda: level 1 body is not a PDF file")

// Level1 renders the report as a CI-SIS CDA R2 level 1 document (UTF-8 XML):
// the same header as Level3 (ids, setId and version, patient, author,
// custodian, legal authenticator, order, study, encounter and, for a
// correction, the RPLC relatedDocument) with templateIds HL7 France, CI-SIS
// and TemplateXDSSD, and as body component/nonXMLBody/text with mediaType
// "application/pdf" and representation "B64" holding pdf in base64.
//
// pdf is usually PDF(r), the human rendering of the same report. Level1
// validates the report first and returns Validate's error; it returns
// ErrNotPDF when pdf does not start with "%PDF-".
func Level1(r *Report, pdf []byte) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		return nil, ErrNotPDF
	}
	doc := header(r, el("templateId", "root", TemplateXDSSD))
	doc.add(el("component").add(el("nonXMLBody").add(
		textEl("text", base64.StdEncoding.EncodeToString(pdf), "mediaType", "application/pdf", "representation", "B64"))))
	return render(doc), nil
}
