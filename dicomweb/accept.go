package dicomweb

import (
	"sort"
	"strconv"
	"strings"
)

// mediaRange is one entry of an Accept header: a media type (possibly a
// multipart/related with its "type" parameter), the transfer syntax it
// asks for, and its quality.
type mediaRange struct {
	// Type is the media type, lower case ("multipart/related",
	// "application/dicom+json", "*/*").
	Type string
	// Part is the "type" parameter of a multipart/related range (lower
	// case, without quotes), e.g. "application/dicom".
	Part string
	// TransferSyntax is the "transfer-syntax" parameter ("" when absent,
	// "*" for any).
	TransferSyntax string
	Q              float64
	order          int
}

// parseAccept parses an Accept header (RFC 9110 12.5.1) into media ranges
// by decreasing quality, the header's order breaking ties. Ranges with q=0
// are dropped. An absent or empty header is "*/*". Parameters are parsed
// leniently: clients write type=application/dicom with or without quotes.
func parseAccept(header string) []mediaRange {
	if strings.TrimSpace(header) == "" {
		return []mediaRange{{Type: "*/*", Q: 1}}
	}
	var out []mediaRange
	for i, raw := range splitAccept(header) {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		mt, params := parseMediaRange(raw)
		r := mediaRange{Type: mt, Q: 1, order: i}
		if q, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v >= 0 && v <= 1 {
				r.Q = v
			}
		}
		if r.Q == 0 {
			continue
		}
		r.Part = strings.ToLower(strings.Trim(params["type"], `"`))
		r.TransferSyntax = strings.Trim(params["transfer-syntax"], `"`)
		out = append(out, r)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Q > out[b].Q })
	return out
}

// parseMediaRange parses "type/subtype; k=v; k2=\"v2\"" leniently: unlike
// mime.ParseMediaType it accepts unquoted values holding '/', as in
// type=application/dicom, which many DICOMweb clients send.
func parseMediaRange(s string) (string, map[string]string) {
	fields := splitOutsideQuotes(s, ';')
	mt := strings.ToLower(strings.TrimSpace(fields[0]))
	params := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
		}
		params[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return mt, params
}

// splitAccept splits a header on commas outside quoted strings (a quoted
// type parameter may hold none, but be safe).
func splitAccept(h string) []string { return splitOutsideQuotes(h, ',') }

// splitOutsideQuotes splits s on sep outside double-quoted strings.
func splitOutsideQuotes(h string, sep byte) []string {
	var parts []string
	quoted := false
	start := 0
	for i := 0; i < len(h); i++ {
		switch h[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				parts = append(parts, h[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, h[start:])
}

// matches reports whether the range accepts the concrete type (and, for
// multipart/related, the part type).
func (m mediaRange) matches(typ, part string) bool {
	switch {
	case m.Type == "*/*":
		return true
	case strings.HasSuffix(m.Type, "/*"):
		return strings.HasPrefix(typ, strings.TrimSuffix(m.Type, "*"))
	case m.Type != typ:
		return false
	}
	if typ == "multipart/related" && m.Part != "" && part != "" && m.Part != part {
		return false
	}
	return true
}

// acceptsAny returns the first range accepting one of the offered
// types ("type" or "multipart/related;part"), and the offer it accepts.
func acceptsAny(ranges []mediaRange, offers ...string) (mediaRange, string, bool) {
	for _, r := range ranges {
		for _, o := range offers {
			typ, part, _ := strings.Cut(o, ";")
			if r.matches(typ, part) {
				return r, o, true
			}
		}
	}
	return mediaRange{}, "", false
}
