package dicomweb

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dicomjson"
	"github.com/relais-health/relais/query"
)

// Default return attributes of QIDO-RS (PS3.18 Tables 10.6.3-3, -4, -5).
var (
	studyReturnTags = tags(
		0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061, 0x00080090,
		0x00080201, 0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000D, 0x00200010,
		0x00201206, 0x00201208,
		// Not in the table but shown by every viewer's study list.
		0x00081030,
	)
	seriesReturnTags = tags(
		0x00080005, 0x00080060, 0x00080201, 0x0008103E, 0x0020000E, 0x00200011, 0x00201209,
		0x00400244, 0x00400245, 0x00400275,
	)
	instanceReturnTags = tags(
		0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x00080201, 0x00200013, 0x00280010,
		0x00280011, 0x00280100, 0x00280008,
		// The study and series an instance belongs to: needed to retrieve it.
		0x0020000D, 0x0020000E,
	)
)

func tags(vs ...uint32) []dicom.Tag {
	out := make([]dicom.Tag, len(vs))
	for i, v := range vs {
		out[i] = dicom.Tag(v)
	}
	return out
}

var (
	tagRetrieveURL           = dicom.NewTag(0x0008, 0x1190)
	tagInstanceAvailability  = dicom.NewTag(0x0008, 0x0056)
	tagNumberOfSeriesRelated = dicom.NewTag(0x0020, 0x1209)
)

// qidoRequest is a parsed QIDO-RS request.
type qidoRequest struct {
	q       *query.Query
	all     bool        // includefield=all
	include []dicom.Tag // requested and default return attributes
	limit   int         // 0: no limit
	capped  bool        // limit is the server's maximum, not the client's
	offset  int
	fuzzy   bool
}

// errBadQuery is a QIDO-RS request that cannot be parsed (HTTP 400).
type errBadQuery struct{ msg string }

func (e *errBadQuery) Error() string { return e.msg }

func badQuery(format string, a ...any) error { return &errBadQuery{fmt.Sprintf(format, a...)} }

// parseAttributeID parses a QIDO attribute ID: a keyword ("PatientName"),
// an 8 hex digit tag ("00100010"), or a dotted path of them into
// sequences ("OtherPatientIDsSequence.PatientID").
func parseAttributeID(s string) ([]dicom.Tag, error) {
	var path []dicom.Tag
	for _, p := range strings.Split(s, ".") {
		if t, ok := dicom.TagByKeyword(p); ok {
			path = append(path, t)
			continue
		}
		if len(p) == 8 {
			if v, err := strconv.ParseUint(p, 16, 32); err == nil {
				path = append(path, dicom.Tag(v))
				continue
			}
		}
		return nil, badQuery("unknown attribute %q (use a DICOM keyword or an 8 hex digit tag)", p)
	}
	return path, nil
}

// listSeparators: PS3.18 8.3.4.1 lets a UID list or a list of values be
// written with commas; PS3.4 C.2.2.2.2 uses backslashes. Both are taken for
// the VRs whose values cannot contain a comma.
func normaliseList(vr dicom.VR, v string) string {
	switch vr {
	case dicom.VRUI, dicom.VRCS, dicom.VRDA, dicom.VRTM, dicom.VRDT, dicom.VRAE:
		return strings.ReplaceAll(v, ",", `\`)
	}
	return v
}

func vrOf(t dicom.Tag) dicom.VR {
	if vr := dicom.LookupVR(t); vr != "" {
		return vr
	}
	return dicom.VRUN
}

// parseQIDO turns the URL of a QIDO-RS request into a query at level,
// restricted to study and series when the path names them.
func parseQIDO(values url.Values, level query.Level, study, series string, maxLimit int) (*qidoRequest, error) {
	r := &qidoRequest{q: &query.Query{Model: query.StudyRoot, Level: level}}
	keys := map[dicom.Tag]*query.Key{}
	var order []dicom.Tag
	key := func(t dicom.Tag) *query.Key {
		if k, ok := keys[t]; ok {
			return k
		}
		k := &query.Key{Tag: t, VR: vrOf(t)}
		keys[t] = k
		order = append(order, t)
		return k
	}
	for name, vals := range values {
		switch name {
		case "includefield":
			for _, v := range vals {
				for _, f := range strings.Split(v, ",") {
					f = strings.TrimSpace(f)
					if f == "" {
						continue
					}
					if f == "all" {
						r.all = true
						continue
					}
					path, err := parseAttributeID(f)
					if err != nil {
						return nil, err
					}
					r.include = append(r.include, path[0])
				}
			}
			continue
		case "limit", "offset":
			n, err := strconv.Atoi(vals[len(vals)-1])
			if err != nil || n < 0 {
				return nil, badQuery("%s=%q is not a non-negative integer", name, vals[len(vals)-1])
			}
			if name == "limit" {
				r.limit = n
			} else {
				r.offset = n
			}
			continue
		case "fuzzymatching":
			switch strings.ToLower(vals[len(vals)-1]) {
			case "true":
				r.fuzzy = true
			case "false", "":
			default:
				return nil, badQuery("fuzzymatching=%q is not true or false", vals[len(vals)-1])
			}
			continue
		case "_", "callback", "accept", "charset":
			// Cache busters and parameters some clients add; "accept" is a
			// media type in the query (PS3.18 8.3.3.1), handled by the caller.
			continue
		}
		path, err := parseAttributeID(name)
		if err != nil {
			return nil, err
		}
		if len(path) > 2 {
			return nil, badQuery("attribute %q: Relais matches sequence items one level deep", name)
		}
		vr := vrOf(path[len(path)-1])
		if len(vals) > 1 && vr != dicom.VRUI && vr != dicom.VRCS {
			return nil, badQuery("attribute %q given %d times", name, len(vals))
		}
		v := normaliseList(vr, strings.Join(vals, `\`))
		if len(path) == 1 {
			k := key(path[0])
			if k.VR == dicom.VRSQ {
				return nil, badQuery("attribute %q is a sequence: match one of its item attributes (%s.Keyword)", name, name)
			}
			k.Value = v
			continue
		}
		seq := key(path[0])
		if seq.VR != dicom.VRSQ {
			return nil, badQuery("attribute %q: %s is not a sequence", name, dicom.Keyword(path[0]))
		}
		seq.Items = append(seq.Items, query.Key{Tag: path[1], VR: vr, Value: v})
	}
	if study != "" {
		key(dicom.TagStudyInstanceUID).Value = study
	}
	if series != "" {
		key(dicom.TagSeriesInstanceUID).Value = series
	}
	defaults := map[query.Level][]dicom.Tag{query.Study: studyReturnTags, query.Series: seriesReturnTags, query.Image: instanceReturnTags}
	inc := append([]dicom.Tag(nil), defaults[level]...)
	// Above the study, the entities above the level are described too
	// (PS3.18 10.6.3.3.1: "all Study/Series attributes" when the URL does
	// not name them).
	if level != query.Study && study == "" {
		inc = append(inc, studyReturnTags...)
	}
	if level == query.Image && series == "" {
		inc = append(inc, seriesReturnTags...)
	}
	r.include = append(inc, r.include...)
	for _, t := range r.include {
		if t == dicom.TagSpecificCharacterSet || t == tagRetrieveURL || t == tagInstanceAvailability {
			continue
		}
		key(t)
	}
	for _, t := range order {
		r.q.Keys = append(r.q.Keys, *keys[t])
	}
	sortKeys(r.q.Keys)
	if maxLimit > 0 && (r.limit == 0 || r.limit > maxLimit) {
		r.limit, r.capped = maxLimit, true
	}
	return r, nil
}

func sortKeys(ks []query.Key) {
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j].Tag < ks[j-1].Tag; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
}

// qido answers a QIDO-RS search at level; the path may name the study and
// series.
func (s *Server) qido(level query.Level) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		study, series := c.Param("study"), c.Param("series")
		ranges := parseAccept(acceptOf(c.Request))
		if _, _, ok := acceptsAny(ranges, "application/dicom+json", "application/json"); !ok {
			s.fail(c, http.StatusNotAcceptable, "QIDO-RS answers application/dicom+json only (Accept: %s)", acceptOf(c.Request))
			return
		}
		req, err := parseQIDO(c.Request.URL.Query(), level, study, series, s.MaxResults)
		if err != nil {
			s.fail(c, http.StatusBadRequest, "%v", err)
			return
		}
		var warnings []string
		if req.fuzzy {
			warnings = append(warnings, "The fuzzymatching parameter is not supported. Only literal matching has been performed.")
		}
		if req.q.Unsupported() {
			warnings = append(warnings, "Some matching attributes are not indexed by Relais and were not used for matching.")
		}
		base := s.baseURL(c.Request)
		wanted := map[string]bool{}
		for _, t := range req.include {
			wanted[hexTag(t)] = true
		}
		// The answer is built in memory (it is bounded by the limit, at
		// most MaxResults rows) so that a failure is a proper status and a
		// cut by the server's maximum can be said in a Warning header.
		var body bytes.Buffer
		arr := dicomjson.NewArrayWriter(&body)
		arr.Begin()
		n, seen := 0, 0
		truncated := false
		eng := &query.Engine{Index: s.Index}
		err = eng.Find(c.Request.Context(), req.q, func(row *query.Row) error {
			if !allowed(c, row.Attrs["0020000D"]) {
				return nil
			}
			seen++
			if seen <= req.offset {
				return nil
			}
			if req.limit > 0 && n >= req.limit {
				truncated = true
				return query.ErrStop
			}
			n++
			attrs := row.Attrs
			if !req.all {
				attrs = make(map[string]string, len(wanted))
				for h := range wanted {
					if v, ok := row.Attrs[h]; ok {
						attrs[h] = v
					}
				}
			}
			return arr.Attrs(attrs, rowExtras(base, row)...)
		})
		if err == nil {
			err = arr.End()
		}
		if err != nil {
			s.fail(c, http.StatusInternalServerError, "search failed: %v", err)
			return
		}
		if truncated && req.capped {
			warnings = append(warnings, fmt.Sprintf("The number of results exceeded the maximum supported by the server (%d). Additional results can be requested with offset.", req.limit))
		}
		s.qidoHeaders(c, warnings)
		writeMaybeGzip(c, http.StatusOK, "application/dicom+json", body.Bytes())
		s.audit(c, "dicomweb.query", study, series, "", fmt.Sprintf("level=%s %s results=%d", level, req.q.Summary(), n), http.StatusOK)
		s.Metrics.observe("qido", http.StatusOK, time.Since(start))
	}
}

func (s *Server) qidoHeaders(c *gin.Context, warnings []string) {
	c.Header("Content-Type", "application/dicom+json")
	c.Header("Cache-Control", "no-store")
	for _, w := range warnings {
		c.Writer.Header().Add("Warning", fmt.Sprintf("299 relais: %q", w))
	}
}

// rowExtras adds the computed attributes of a result: Retrieve URL and
// Instance Availability (everything Relais lists is on line).
func rowExtras(base string, row *query.Row) []dicomjson.Attr {
	st, se, sop := row.Attrs[hexTag(dicom.TagStudyInstanceUID)], row.Attrs[hexTag(dicom.TagSeriesInstanceUID)], row.Attrs[hexTag(dicom.TagSOPInstanceUID)]
	u := base + "/studies/" + st
	switch row.Level {
	case query.Series:
		u += "/series/" + se
	case query.Image:
		u += "/series/" + se + "/instances/" + sop
	}
	extras := []dicomjson.Attr{
		{Tag: tagInstanceAvailability, VR: dicom.VRCS, Values: []string{"ONLINE"}},
		{Tag: tagRetrieveURL, VR: "UR", Values: []string{u}},
	}
	if row.Charset != "" {
		// The values were decoded to UTF-8 whatever the stored charset.
		extras = append(extras, dicomjson.Attr{Tag: dicom.TagSpecificCharacterSet, VR: dicom.VRCS, Values: []string{"ISO_IR 192"}})
	}
	return extras
}

func hexTag(t dicom.Tag) string { return fmt.Sprintf("%08X", uint32(t)) }

var errNotFound = errors.New("not found")
