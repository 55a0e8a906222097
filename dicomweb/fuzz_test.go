package dicomweb

import (
	"net/url"
	"testing"

	"github.com/relais-health/relais/query"
)

// FuzzRequestParsing: whatever a client puts in the query string and the
// Accept header, parsing gives a query or a 400 reason, never a panic, and
// a parsed query respects the server's maximum.
func FuzzRequestParsing(f *testing.F) {
	f.Add("PatientName=DOE*&limit=5&includefield=all", `multipart/related; type="application/dicom"; transfer-syntax=*`, "1,2")
	f.Add("OtherPatientIDsSequence.PatientID=X&StudyDate=2026-", "image/png;q=0.5, */*", "3")
	f.Add("00100020=1&00100020=2&fuzzymatching=true&offset=9", `multipart/related; type=application/octet-stream`, "0")
	f.Fuzz(func(t *testing.T, rawQuery, accept, frames string) {
		for _, r := range parseAccept(accept) {
			if r.Q <= 0 || r.Q > 1 {
				t.Fatalf("range with q=%v kept: %+v", r.Q, r)
			}
		}
		parseFrameList(frames)
		v, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		for _, lv := range []query.Level{query.Study, query.Series, query.Image} {
			r, err := parseQIDO(v, lv, "", "", 50)
			if err != nil {
				continue
			}
			if r.limit < 0 || r.limit > 50 || r.offset < 0 {
				t.Fatalf("limit %d offset %d", r.limit, r.offset)
			}
			r.q.Summary()
			r.q.Unsupported()
		}
	})
}
