package directory

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/relais-health/relais/auth"
)

// fakeAuthorize takes the role from the Bearer token itself ("Bearer
// admin"), the user being "u-" + role.
func fakeAuthorize(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		auth.WriteChallenge(w, auth.ErrNoToken)
		return auth.Principal{}, false
	}
	p := auth.Principal{User: "u-" + tok, Role: auth.Role(tok)}
	if !p.Can(perm) {
		auth.WriteChallenge(w, auth.ErrForbidden)
		return p, false
	}
	return p, true
}

func TestHandler(t *testing.T) {
	d := open(t, t.TempDir(), testConfig(), nil)
	srv := httptest.NewServer(d.Handler(fakeAuthorize))
	defer srv.Close()

	const dupont = `{"user": "pdupont", "rpps": "10009876543", "given": "Paul", "family": "Dupont", "organisation": "chu"}`
	steps := []struct {
		name, role, method, path, body string
		wantStatus                     int
		wantBody                       []string // substrings
	}{
		{"no token", "", "GET", "/api/directory", "", 401, nil},
		{"modality cannot read", "modality", "GET", "/api/directory", "", 403, nil},
		{"requester reads all", "requester", "GET", "/api/directory", "", 200,
			[]string{`"organisations"`, `"id": "martin"`, `"source": "config"`, `"calling_aes": [`, `"CHU_CT1"`}},
		{"radiologist reads a kind", "radiologist", "GET", "/api/directory/professionals", "", 200, []string{`"rpps": "10001234567"`}},
		{"read one", "radiologist", "GET", "/api/directory/sites/chu-urg", "", 200, []string{`"id": "chu-urg"`, `"report_destinations": [`}},
		{"unknown id", "admin", "GET", "/api/directory/professionals/nobody", "", 404, []string{`"error"`}},
		{"unknown kind", "admin", "GET", "/api/directory/patients/x", "", 404, []string{"unknown kind"}},
		{"too deep", "admin", "GET", "/api/directory/professionals/x/y", "", 404, nil},
		{"radiologist cannot put", "radiologist", "PUT", "/api/directory/professionals/dupont", dupont, 403, nil},
		{"requester cannot delete", "requester", "DELETE", "/api/directory/professionals/martin", "", 403, nil},
		{"admin creates", "admin", "PUT", "/api/directory/professionals/dupont", dupont, 201, []string{`"source": "api"`, `"family": "Dupont"`}},
		{"admin updates", "admin", "PUT", "/api/directory/professionals/dupont", strings.Replace(dupont, "Paul", "Pierre", 1), 200, []string{`"given": "Pierre"`}},
		{"visible", "requester", "GET", "/api/directory/professionals/dupont", "", 200, []string{`"given": "Pierre"`, `"user": "pdupont"`}},
		{"invalid JSON", "admin", "PUT", "/api/directory/professionals/x", `{"rpps": `, 400, []string{"invalid JSON"}},
		{"not an object", "admin", "PUT", "/api/directory/professionals/x", `[1]`, 400, []string{"invalid JSON"}},
		{"unknown field", "admin", "PUT", "/api/directory/professionals/x", `{"rpps": "10001111111", "famly": "X"}`, 400, []string{`"key": "professionals.x.famly"`}},
		{"wrong type", "admin", "PUT", "/api/directory/professionals/x", `{"rpps": 10001111111, "family": "X"}`, 400, []string{`"key": "professionals.x.rpps"`}},
		{"bad RPPS", "admin", "PUT", "/api/directory/professionals/x", `{"rpps": "1", "family": "X", "organisation": "chu"}`, 400,
			[]string{`"key": "professionals.x.rpps"`, "11-digit"}},
		{"unknown organisation", "admin", "PUT", "/api/directory/professionals/x", `{"rpps": "10001111111", "family": "X", "organisation": "nope"}`, 400,
			[]string{`"key": "professionals.x.organisation"`}},
		{"unknown destination", "admin", "PUT", "/api/directory/sites/s", `{"organisation": "chu", "report_destinations": ["nope"]}`, 400,
			[]string{`"key": "sites.s.report_destinations"`}},
		{"id mismatch", "admin", "PUT", "/api/directory/professionals/x", `{"id": "y", "rpps": "10001111111", "family": "X", "organisation": "chu"}`, 400,
			[]string{`"key": "professionals.x.id"`}},
		{"show output can be put back", "admin", "PUT", "/api/directory/organisations/chu",
			`{"id": "chu", "source": "config", "finess": "330781196", "name": "CHU B", "patient_id_oid": "", "accession_oid": "", "placer_order_oid": ""}`, 200,
			[]string{`"source": "api"`, `"name": "CHU B"`}},
		{"configured entry", "admin", "DELETE", "/api/directory/professionals/martin", "", 409, []string{"configuration"}},
		{"organisation in use", "admin", "PUT", "/api/directory/organisations/clin", `{"finess": "690000001", "name": "Clinique"}`, 201, nil},
		{"move dupont", "admin", "PUT", "/api/directory/professionals/dupont", strings.Replace(dupont, `"chu"`, `"clin"`, 1), 200, nil},
		{"cannot delete used organisation", "admin", "DELETE", "/api/directory/organisations/clin", "", 409, []string{"professionals.dupont"}},
		{"revert override", "admin", "DELETE", "/api/directory/organisations/chu", "", 200, []string{`"source": "config"`, `"name": "CHU de Bordeaux"`}},
		{"delete added", "admin", "DELETE", "/api/directory/professionals/dupont", "", 204, nil},
		{"gone", "admin", "GET", "/api/directory/professionals/dupont", "", 404, nil},
		{"delete unknown", "admin", "DELETE", "/api/directory/professionals/dupont", "", 404, nil},
		{"no put on a list", "admin", "PUT", "/api/directory/professionals", "{}", 405, nil},
		{"no post", "admin", "POST", "/api/directory/professionals/x", "{}", 405, nil},
	}
	for _, s := range steps {
		req, err := http.NewRequest(s.method, srv.URL+s.path, strings.NewReader(s.body))
		if err != nil {
			t.Fatal(err)
		}
		if s.role != "" {
			req.Header.Set("Authorization", "Bearer "+s.role)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body := string(b)
		if resp.StatusCode != s.wantStatus {
			t.Errorf("%s: %s %s: status %d, want %d; body %s", s.name, s.method, s.path, resp.StatusCode, s.wantStatus, body)
			continue
		}
		for _, w := range s.wantBody {
			if !strings.Contains(body, w) {
				t.Errorf("%s: body lacks %s:\n%s", s.name, w, body)
			}
		}
		if resp.StatusCode >= 400 && resp.StatusCode != 401 && resp.StatusCode != 403 {
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("%s: error body is not {\"error\": ...}: %s", s.name, body)
			}
		}
	}
	// The API's changes are the directory's.
	if _, p, ok := d.ProfessionalByUser("pdupont"); ok {
		t.Errorf("pdupont still resolves to %+v after delete", p)
	}
}
