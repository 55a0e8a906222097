package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/directory"
)

const directoryYAML = `organisations:
  telerad: {finess: "750000001", name: "Téléradiologie SAS"}
  chu:     {finess: "330781196", name: "CHU de Bordeaux", patient_id_oid: "1.2.250.1.1"}
professionals:
  dr.martin: {rpps: "10001234567", prefix: Dr, given: Jeanne, family: Martin, organisation: telerad}
sites:
  chu-urg: {organisation: chu, calling_aes: [CHU_CT1]}
reports:
  custodian: telerad
`

// relaisDirectory runs `relais directory ARGS` with env added.
func relaisDirectory(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(relaisBin, append([]string{"directory"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestDirectoryCLI: a real relais serve with organisations and a
// professional in its configuration; `relais directory` adds, overrides,
// is refused, and what it added survives a restart.
func TestDirectoryCLI(t *testing.T) {
	data := t.TempDir()
	// Tokens created before the server starts are seen at once.
	admin := createToken(t, data, "alice", "admin")
	radiologist := createToken(t, data, "dr.martin", "radiologist")
	s := startServer(t, data, directoryYAML)

	// The CLI finds the server from the listen.http of its --config.
	cliCfg := filepath.Join(t.TempDir(), "relais.yaml")
	if err := os.WriteFile(cliCfg, []byte(fmt.Sprintf("listen: {http: \"127.0.0.1:%d\"}\n", s.httpPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dupont := write("dupont.json", `{"rpps": "10009876543", "prefix": "Dr", "given": "Paul", "family": "Dupont", "organisation": "chu", "user": "pdupont"}`)
	martin := write("martin.json", `{"rpps": "10001234567", "prefix": "Dr", "given": "Jeanne", "family": "Martin-Durand", "organisation": "telerad"}`)
	badRPPS := write("bad.json", `{"rpps": "123", "family": "Bad", "organisation": "chu"}`)
	unknownOrg := write("unknown.json", `{"rpps": "10001111111", "family": "X", "organisation": "clinique"}`)
	notJSON := write("not.json", `{"rpps": `)

	server := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	asAdmin := []string{"--config", cliCfg, "--token", admin}
	type step struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     []string // in stdout (exit 0) or stderr
	}
	run := func(t *testing.T, steps []step) {
		for _, st := range steps {
			out, errs, code := relaisDirectory(t, st.env, st.args...)
			if code != st.wantCode {
				t.Errorf("%s: relais directory %s: exit %d, want %d\nstdout: %s\nstderr: %s", st.name, strings.Join(st.args, " "), code, st.wantCode, out, errs)
				continue
			}
			got := out
			if code != 0 {
				got = errs
			}
			for _, w := range st.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s: output lacks %q:\n%s", st.name, w, got)
				}
			}
		}
	}
	run(t, []step{
		{"list the configuration's", nil, append([]string{"list"}, asAdmin...), 0,
			[]string{"telerad", "chu-urg", "dr.martin", "config", "RPPS 10001234567", "2 organisation(s), 1 professional(s), 1 site(s)"}},
		{"no token", nil, []string{"list", "--server", server}, 1, []string{"HTTP 401"}},
		{"radiologist reads", nil, []string{"show", "professional", "dr.martin", "--server", server, "--token", radiologist}, 0,
			[]string{`"id": "dr.martin"`, `"source": "config"`, `"rpps": "10001234567"`}},
		{"radiologist cannot put", nil, []string{"put", "professionals", "dupont", "-f", dupont, "--server", server, "--token", radiologist}, 1,
			[]string{"HTTP 403"}},
		{"admin adds", []string{"RELAIS_TOKEN=" + admin}, []string{"put", "professionals", "dupont", "-f", dupont, "--config", cliCfg}, 0,
			[]string{"created professionals/dupont"}},
		{"admin overrides", nil, append([]string{"put", "professionals", "dr.martin", "-f", martin}, asAdmin...), 0,
			[]string{"updated professionals/dr.martin"}},
		{"bad RPPS", nil, append([]string{"put", "professionals", "bad", "-f", badRPPS}, asAdmin...), 1,
			[]string{"professionals.bad.rpps", "HTTP 400"}},
		{"unknown organisation", nil, append([]string{"put", "professionals", "x", "-f", unknownOrg}, asAdmin...), 1,
			[]string{"professionals.x.organisation", "HTTP 400"}},
		{"not JSON", nil, append([]string{"put", "professionals", "x", "-f", notJSON}, asAdmin...), 1, []string{"not valid JSON"}},
		{"configured entry", nil, append([]string{"delete", "sites", "chu-urg"}, asAdmin...), 1, []string{"HTTP 409", "configuration"}},
		{"unknown kind", nil, append([]string{"show", "patients", "x"}, asAdmin...), 1, []string{"unknown kind"}},
	})
	if t.Failed() {
		return
	}

	// The server sees the change at once (the API is the running node's).
	out, _, _ := relaisDirectory(t, nil, append([]string{"list", "professionals", "--json"}, asAdmin...)...)
	var pros []directory.Entry[config.Professional]
	if err := json.Unmarshal([]byte(out), &pros); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(pros) != 2 || pros[0].ID != "dr.martin" || pros[0].Source != "api" || pros[1].ID != "dupont" || pros[1].Value.User != "pdupont" {
		t.Fatalf("professionals: %+v", pros)
	}

	// Restart: the API's entries are still there.
	s.stop()
	fi, err := os.Stat(filepath.Join(data, "directory", "directory.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("directory.json mode %v", fi.Mode().Perm())
	}
	s.start()
	run(t, []step{
		{"after restart", nil, append([]string{"list"}, asAdmin...), 0,
			[]string{"dupont", "RPPS 10009876543", "Dr Paul Dupont", "user pdupont", "Martin-Durand", "2 professional(s)"}},
		{"revert", nil, append([]string{"delete", "professionals", "dr.martin"}, asAdmin...), 0,
			[]string{"reverted professionals/dr.martin to the configuration's entry"}},
		{"reverted", nil, append([]string{"show", "professionals", "dr.martin"}, asAdmin...), 0,
			[]string{`"source": "config"`, `"family": "Martin"`}},
		{"delete added", nil, append([]string{"delete", "professionals", "dupont"}, asAdmin...), 0, []string{"deleted professionals/dupont"}},
		{"gone", nil, append([]string{"show", "professionals", "dupont"}, asAdmin...), 1, []string{"HTTP 404"}},
	})

	// Every change is journaled with its user.
	evs := journalKinds(t, data, "directory.changed")
	var got []string
	for _, ev := range evs {
		var d map[string]string
		json.Unmarshal(ev.Data, &d)
		got = append(got, ev.User+" "+d["kind"]+" "+d["id"]+" "+d["action"])
	}
	want := []string{
		"alice professionals dupont created",
		"alice professionals dr.martin overridden",
		"alice professionals dr.martin reverted",
		"alice professionals dupont deleted",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("journal:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
