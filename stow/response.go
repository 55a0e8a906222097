package stow

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime"
	"strconv"
	"strings"
)

// Media types of the response body.
const (
	MediaTypeJSON = "application/dicom+json"
	MediaTypeXML  = "application/dicom+xml"
)

// attr is one attribute of the Store Instances Response Module: a string
// (UI, UR), an unsigned short (US) or a sequence (SQ).
type attr struct {
	tag, vr, keyword string
	str              *string // nil: empty value (Type 2)
	us               *uint16
	items            [][]attr
}

func strAttr(tag, vr, kw, v string) attr {
	a := attr{tag: tag, vr: vr, keyword: kw}
	if v != "" {
		a.str = &v
	}
	return a
}

func usAttr(tag, kw string, v uint16) attr {
	return attr{tag: tag, vr: "US", keyword: kw, us: &v}
}

// module builds the response data set, attributes in ascending tag order.
func (r *Response) module() []attr {
	var ds []attr
	ds = append(ds, strAttr("00081190", "UR", "RetrieveURL", r.RetrieveURL))
	if len(r.FailedSOPs) > 0 {
		sq := attr{tag: "00081198", vr: "SQ", keyword: "FailedSOPSequence"}
		for _, f := range r.FailedSOPs {
			sq.items = append(sq.items, []attr{
				strAttr("00081150", "UI", "ReferencedSOPClassUID", f.SOPClassUID),
				strAttr("00081155", "UI", "ReferencedSOPInstanceUID", f.SOPInstanceUID),
				usAttr("00081197", "FailureReason", f.FailureReason),
			})
		}
		ds = append(ds, sq)
	}
	if len(r.Referenced) > 0 {
		sq := attr{tag: "00081199", vr: "SQ", keyword: "ReferencedSOPSequence"}
		for _, s := range r.Referenced {
			it := []attr{
				strAttr("00081150", "UI", "ReferencedSOPClassUID", s.SOPClassUID),
				strAttr("00081155", "UI", "ReferencedSOPInstanceUID", s.SOPInstanceUID),
				strAttr("00081190", "UR", "RetrieveURL", s.RetrieveURL),
			}
			if s.WarningReason != 0 {
				it = append(it, usAttr("00081196", "WarningReason", s.WarningReason))
			}
			sq.items = append(sq.items, it)
		}
		ds = append(ds, sq)
	}
	if len(r.Other) > 0 {
		sq := attr{tag: "0008119A", vr: "SQ", keyword: "OtherFailuresSequence"}
		for _, f := range r.Other {
			sq.items = append(sq.items, []attr{usAttr("00081197", "FailureReason", f.FailureReason)})
		}
		ds = append(ds, sq)
	}
	return ds
}

// WriteJSON writes the response as application/dicom+json (PS3.18 F, the
// DICOM JSON Model): one object with the Store Instances Response Module.
func (r *Response) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	writeJSONDataset(bw, r.module())
	bw.WriteByte('\n')
	return bw.Flush()
}

func writeJSONDataset(w *bufio.Writer, ds []attr) {
	w.WriteByte('{')
	for i, a := range ds {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(`"` + a.tag + `":{"vr":"` + a.vr + `"`)
		switch {
		case a.vr == "SQ":
			w.WriteString(`,"Value":[`)
			for j, it := range a.items {
				if j > 0 {
					w.WriteByte(',')
				}
				writeJSONDataset(w, it)
			}
			w.WriteByte(']')
		case a.us != nil:
			w.WriteString(`,"Value":[` + strconv.Itoa(int(*a.us)) + `]`)
		case a.str != nil:
			b, _ := json.Marshal(*a.str)
			w.WriteString(`,"Value":[`)
			w.Write(b)
			w.WriteByte(']')
		}
		w.WriteByte('}')
	}
	w.WriteByte('}')
}

// WriteXML writes the response as application/dicom+xml (PS3.19 A.1, the
// Native DICOM Model).
func (r *Response) WriteXML(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	bw.WriteString(`<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">` + "\n")
	writeXMLDataset(bw, r.module(), "  ")
	bw.WriteString("</NativeDicomModel>\n")
	return bw.Flush()
}

func writeXMLDataset(w *bufio.Writer, ds []attr, indent string) {
	for _, a := range ds {
		w.WriteString(indent + `<DicomAttribute tag="` + a.tag + `" vr="` + a.vr + `" keyword="` + a.keyword + `">`)
		switch {
		case a.vr == "SQ":
			w.WriteString("\n")
			for j, it := range a.items {
				w.WriteString(indent + `  <Item number="` + strconv.Itoa(j+1) + `">` + "\n")
				writeXMLDataset(w, it, indent+"    ")
				w.WriteString(indent + "  </Item>\n")
			}
			w.WriteString(indent)
		case a.us != nil:
			w.WriteString(`<Value number="1">` + strconv.Itoa(int(*a.us)) + `</Value>`)
		case a.str != nil:
			w.WriteString(`<Value number="1">`)
			xml.EscapeText(w, []byte(*a.str))
			w.WriteString(`</Value>`)
		}
		w.WriteString("</DicomAttribute>\n")
	}
}

// Negotiate picks the response media type from an Accept header field:
// application/dicom+json (the default, also for an empty Accept, */* and
// application/*, and for application/json, which some user agents send) or
// application/dicom+xml. ok is false when Accept allows neither (the
// caller answers 406 Not Acceptable). Quality values are honoured; on a
// tie JSON wins.
func Negotiate(accept string) (mediaType string, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return MediaTypeJSON, true
	}
	best, bestQ := "", 0.0
	for _, rng := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(rng))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		var cand string
		switch mt {
		case MediaTypeJSON, "application/json", "*/*", "application/*":
			cand = MediaTypeJSON
		case MediaTypeXML:
			cand = MediaTypeXML
		case "multipart/related":
			// multipart/related; type="application/dicom+xml" (PS3.18
			// 10.5.3 examples of older editions).
			switch strings.ToLower(params["type"]) {
			case MediaTypeXML:
				cand = MediaTypeXML
			case MediaTypeJSON:
				cand = MediaTypeJSON
			}
		}
		if cand == "" || q <= 0 {
			continue
		}
		if q > bestQ || (q == bestQ && cand == MediaTypeJSON) {
			best, bestQ = cand, q
		}
	}
	return best, best != ""
}

// Write writes the response in mediaType (see Negotiate).
func (r *Response) Write(w io.Writer, mediaType string) error {
	if mediaType == MediaTypeXML {
		return r.WriteXML(w)
	}
	return r.WriteJSON(w)
}
