// Command webbench compares the DICOMweb side of relais with Orthanc and
// its DICOMweb plugin (Debian orthanc-dicomweb) on the same CT study, in
// the same run: WADO-RS Retrieve Study, Retrieve Study Metadata (cold and
// warm, with and without gzip), a QIDO-RS study search, one frame and one
// rendered image. It prints a Markdown table.
//
//	go run ./bench/webbench -runs 5
//
// It needs dcmtk (storescu, echoscu, to load the study), Orthanc with the
// DICOMweb plugin, and builds ./cmd/relais unless -relais names a binary.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/relais-health/relais/bench/internal/ctgen"
	"github.com/relais-health/relais/bench/internal/machine"
)

type config struct {
	n        int
	dataDir  string
	runs     int
	coldRuns int
	only     map[string]bool
	relais   string
	orthanc  string
	plugin   string
	workdir  string
	keep     bool
	out      string
	pprof    bool
	verbose  bool
	quiet    float64
	quietMax time.Duration
}

func main() {
	var c config
	var only string
	flag.IntVar(&c.n, "n", 500, "instances in the study")
	flag.StringVar(&c.dataDir, "data", "", "study directory (generated with -n instances if it holds no .dcm; default $TMPDIR/webbench-ct-N, reused)")
	flag.IntVar(&c.runs, "runs", 5, "timed runs of each request kind per server (warm)")
	flag.IntVar(&c.coldRuns, "cold-runs", -1, "first-call runs after a restart with the page cache of the server's files dropped (default: -runs; 0 skips)")
	flag.StringVar(&only, "only", "", "request kinds to time, comma separated (default all: retrieve,metadata,metadata-gzip,qido,frames,rendered)")
	flag.StringVar(&c.relais, "relais", "", "relais binary (default: go build ./cmd/relais)")
	flag.StringVar(&c.orthanc, "orthanc", "Orthanc", "Orthanc binary")
	flag.StringVar(&c.plugin, "plugin", "", "Orthanc DICOMweb plugin (default: looked for under /usr/share/orthanc/plugins and /usr/lib/orthanc)")
	flag.StringVar(&c.workdir, "workdir", "", "where both servers store the study (default: a temp dir under /tmp, removed at the end)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work dir (logs, storage)")
	flag.StringVar(&c.out, "out", "", "also write the Markdown report to this file")
	flag.BoolVar(&c.pprof, "pprof", false, "start relais with --pprof (profile it from another shell during the run)")
	flag.BoolVar(&c.verbose, "v", false, "print every timed request")
	flag.Float64Var(&c.quiet, "wait-quiet", 0, "before the timed runs, wait (up to -wait-max) until the machine is less busy than this fraction (0.3 = 30% of all cores); 0: do not wait")
	flag.DurationVar(&c.quietMax, "wait-max", 10*time.Minute, "longest wait for -wait-quiet")
	flag.Parse()
	if c.coldRuns < 0 {
		c.coldRuns = c.runs
	}
	if only != "" {
		c.only = map[string]bool{}
		for _, k := range strings.Split(only, ",") {
			c.only[strings.TrimSpace(k)] = true
		}
	}
	if err := run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "webbench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "webbench: "+format+"\n", a...)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func findPlugin(flagPath string) (string, error) {
	cands := []string{flagPath}
	if flagPath == "" {
		cands = []string{"/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so"}
		more, _ := filepath.Glob("/usr/lib/orthanc/libOrthancDicomWeb.so*")
		cands = append(cands, more...)
	}
	for _, p := range cands {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("Orthanc DICOMweb plugin not found (%s): install it with `apt-get install -y orthanc-dicomweb` or pass -plugin", strings.Join(cands, ", "))
}

func run(c *config) error {
	for _, tool := range []string{"storescu", "echoscu"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install dcmtk", tool)
		}
	}
	obin, err := exec.LookPath(c.orthanc)
	if err != nil {
		return fmt.Errorf("Orthanc not found (%s): apt-get install -y orthanc orthanc-dicomweb", c.orthanc)
	}
	plugin, err := findPlugin(c.plugin)
	if err != nil {
		return err
	}
	files, st, err := loadData(c)
	if err != nil {
		return err
	}
	logf("data: %d instances, %.1f MB in %s; study %s", st.n, float64(st.bytes)/1e6, c.dataDir, st.study)

	work := c.workdir
	if work == "" {
		if work, err = os.MkdirTemp("", "webbench-"); err != nil {
			return err
		}
		if !c.keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	rbin := c.relais
	if rbin == "" {
		if rbin, err = buildRelais(work); err != nil {
			return err
		}
	}
	stopOnSignal()
	orth, err := newOrthanc(obin, plugin, work)
	if err != nil {
		return err
	}
	rel, err := newRelais(rbin, work, c.pprof)
	if err != nil {
		return err
	}
	servers := []*server{orth, rel}
	for _, s := range servers {
		if err := s.start(60 * time.Second); err != nil {
			return err
		}
		defer s.stop()
	}

	// Load (not timed), then wait until QIDO-RS sees every instance.
	for _, s := range servers {
		t0 := time.Now()
		if err := s.load(files); err != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			n, err := countStudyInstances(s, st)
			if err == nil && n == st.n {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s holds %d instances of the study after loading (err %v), want %d", s.name, n, err, st.n)
			}
			time.Sleep(200 * time.Millisecond)
		}
		logf("loaded %s in %s", s.name, time.Since(t0).Round(time.Millisecond))
	}

	checks, err := verify(servers, st, work)
	if err != nil {
		return err
	}
	for _, l := range checks {
		logf("check: %s", l)
	}

	var ks []kind
	for _, k := range kinds() {
		if c.only == nil || c.only[k.name] {
			ks = append(ks, k)
		}
	}
	// Which kinds each server answers at all (an unsupported route is
	// reported, not timed).
	unsupported := map[string]map[string]string{}
	for _, k := range ks {
		for _, s := range servers {
			if _, err := do(s, k, st); err != nil {
				if unsupported[k.name] == nil {
					unsupported[k.name] = map[string]string{}
				}
				unsupported[k.name][s.name] = err.Error()
				logf("%s: %s not measured: %v", s.name, k.name, err)
			}
		}
	}

	if c.quiet > 0 {
		note := machine.WaitQuiet(c.quiet, c.quietMax)
		logf("%s", note)
		checks = append(checks, note)
	}
	load0 := machine.Sample()
	rep := &report{study: st, servers: servers, kinds: ks, unsupported: unsupported, checks: checks,
		warmRSS: map[cellKey]int64{}, warmCPU: map[cellKey]time.Duration{},
		cold: map[cellKey][]sample{}, warm: map[cellKey][]sample{}, coldRuns: c.coldRuns, runs: c.runs, loadBefore: machine.LoadAvg()}

	// Cold: the first request after a restart, with the page cache of every
	// file of that server (storage and index) dropped.
	for r := 0; r < c.coldRuns; r++ {
		for _, k := range ks {
			if !k.cold {
				continue
			}
			for _, s := range order(servers, r) {
				if unsupported[k.name][s.name] != "" {
					continue
				}
				t0 := time.Now()
				s.stop()
				t1 := time.Now()
				if _, err := evict(s.dir); err != nil {
					return fmt.Errorf("evict %s: %v", s.dir, err)
				}
				left := cachedBytes(s.dir)
				t2 := time.Now()
				if err := s.start(60 * time.Second); err != nil {
					return err
				}
				if c.verbose {
					logf("restart %s: stop %s, evict %s, start %s", s.name, t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
				}
				cpu0 := cpuTicks(s.pid())
				res, err := do(s, k, st)
				if err != nil {
					return fmt.Errorf("cold %s: %v", k.name, err)
				}
				smp := sample{res: res, rss: vmHWM(s.pid()), cpu: ticks(cpuTicks(s.pid()) - cpu0), cachedBefore: left}
				rep.cold[cellKey{s.name, k.name}] = append(rep.cold[cellKey{s.name, k.name}], smp)
				if c.verbose {
					logf("cold %d %-7s %-14s %.3fs %d B (%d B of its files still cached before)", r+1, s.name, k.name, res.dur.Seconds(), res.bytes, left)
				}
			}
		}
	}

	// Warm: one untimed warm-up call, then runs alternating the servers.
	for _, k := range ks {
		for _, s := range servers {
			if unsupported[k.name][s.name] != "" {
				continue
			}
			if _, err := do(s, k, st); err != nil {
				return fmt.Errorf("warm-up %s %s: %v", s.name, k.name, err)
			}
		}
		cpu0 := map[string]int64{}
		for _, s := range servers {
			if !resetHWM(s.pid()) {
				rep.hwmNote = "peak RSS is the process's peak since start (clear_refs not accepted)"
			}
			cpu0[s.name] = cpuTicks(s.pid())
		}
		for r := 0; r < c.runs; r++ {
			for _, s := range order(servers, r) {
				if unsupported[k.name][s.name] != "" {
					continue
				}
				for i := 0; i < k.reps; i++ {
					res, err := do(s, k, st)
					if err != nil {
						return fmt.Errorf("warm %s: %v", k.name, err)
					}
					rep.warm[cellKey{s.name, k.name}] = append(rep.warm[cellKey{s.name, k.name}], sample{res: res})
					if c.verbose && k.reps == 1 {
						logf("warm %d %-7s %-14s %.3fs %d B", r+1, s.name, k.name, res.dur.Seconds(), res.bytes)
					}
				}
			}
		}
		for _, s := range servers {
			key := cellKey{s.name, k.name}
			rep.warmRSS[key] = vmHWM(s.pid())
			if n := len(rep.warm[key]); n > 0 {
				rep.warmCPU[key] = ticks(cpuTicks(s.pid())-cpu0[s.name]) / time.Duration(n)
			}
		}
	}
	for _, s := range servers {
		if !s.alive() {
			return fmt.Errorf("%s died during the run; see %s", s.name, s.logPath())
		}
	}
	rep.loadAfter = machine.LoadAvg()
	rep.busy = machine.Busy(load0, machine.Sample())
	rep.orthancVersion = orthancVersion(orth)
	text := rep.render()
	fmt.Print(text)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(text), 0o644); err != nil {
			return err
		}
	}
	if c.keep {
		logf("work dir kept: %s", work)
	}
	return nil
}

func ticks(t int64) time.Duration { return time.Duration(t) * 10 * time.Millisecond }

// order alternates which server goes first from one run to the next.
func order(s []*server, r int) []*server {
	if r%2 == 0 {
		return s
	}
	out := make([]*server, len(s))
	for i := range s {
		out[i] = s[len(s)-1-i]
	}
	return out
}

// verify checks that both servers return the same study: same number of
// parts, the same data sets byte for byte (only file meta may differ),
// metadata arrays of N objects, with and without gzip.
func verify(servers []*server, st *study, work string) ([]string, error) {
	var lines []string
	for _, s := range servers {
		if l := checkRendered(s, st, work); l != "" {
			lines = append(lines, l)
		}
	}
	var rc []*retrieveCheck
	for _, s := range servers {
		c, err := checkRetrieve(s, st)
		if err != nil {
			return nil, fmt.Errorf("%s retrieve: %v", s.name, err)
		}
		if c.parts != st.n || c.badPreable > 0 {
			return nil, fmt.Errorf("%s retrieve: %d parts (%d without a Part 10 header), want %d", s.name, c.parts, c.badPreable, st.n)
		}
		rc = append(rc, c)
		lines = append(lines, fmt.Sprintf("%s retrieve: %d parts, %d bytes (file meta %d bytes, data sets %d bytes), part types %v",
			s.name, c.parts, c.total, c.metaTotal, c.total-c.metaTotal, c.partTypes))
	}
	same := len(rc[0].datasets) == len(rc[1].datasets)
	for h, n := range rc[0].datasets {
		same = same && rc[1].datasets[h] == n
	}
	if !same {
		return nil, fmt.Errorf("the two servers return different data sets (after the file meta)")
	}
	lines = append(lines, fmt.Sprintf("retrieve: both return the same %d data sets byte for byte; totals differ by %+d bytes, all in the file meta (sent files: %d bytes)",
		st.n, rc[1].total-rc[0].total, st.bytes))
	var tagSets []map[string]int
	for _, gz := range []bool{false, true} {
		for _, s := range servers {
			m, err := checkMetadata(s, st, gz)
			if !gz && err == nil {
				tagSets = append(tagSets, m.tags)
			}
			if err != nil {
				return nil, fmt.Errorf("%s metadata: %v", s.name, err)
			}
			if m.objects != st.n || m.withSOP != st.n {
				return nil, fmt.Errorf("%s metadata: %d objects (%d with SOPInstanceUID), want %d", s.name, m.objects, m.withSOP, st.n)
			}
			enc := m.encoding
			if enc == "" {
				enc = "identity"
			}
			lines = append(lines, fmt.Sprintf("%s metadata (Accept-Encoding gzip: %v): %d objects, %d JSON bytes (%d without white space), %d on the wire (%s)", s.name, gz, m.objects, m.json, m.compact, m.wire, enc))
		}
	}
	if len(tagSets) == 2 {
		diff := func(a, b map[string]int) string {
			var out []string
			n := 0
			for t, sz := range a {
				if _, ok := b[t]; !ok {
					out = append(out, t)
					n += sz
				}
			}
			sort.Strings(out)
			return fmt.Sprintf("%v (%d JSON bytes)", out, n)
		}
		lines = append(lines, fmt.Sprintf("metadata, first object: %d attributes from Orthanc, %d from relais; only in Orthanc's: %s; only in relais': %s",
			len(tagSets[0]), len(tagSets[1]), diff(tagSets[0], tagSets[1]), diff(tagSets[1], tagSets[0])))
	}
	return lines, nil
}

// loadData returns the study files (generated when the directory has none)
// and the UIDs of the study, of its series and of its middle instance.
func loadData(c *config) ([]string, *study, error) {
	if c.dataDir == "" {
		c.dataDir = filepath.Join(os.TempDir(), fmt.Sprintf("webbench-ct-%d", c.n))
	}
	files, _ := filepath.Glob(filepath.Join(c.dataDir, "*.dcm"))
	if len(files) == 0 {
		logf("generating %d instances in %s", c.n, c.dataDir)
		var err error
		if files, err = ctgen.Generate(c.dataDir, ctgen.Options{N: c.n, Seed: 1}); err != nil {
			return nil, nil, err
		}
	}
	sort.Strings(files)
	st := &study{n: len(files)}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, nil, err
		}
		st.bytes += fi.Size()
		// Warm the page cache for loading.
		if _, err := os.ReadFile(f); err != nil {
			return nil, nil, err
		}
	}
	b, err := os.ReadFile(files[len(files)/2])
	if err != nil {
		return nil, nil, err
	}
	v := headerValues(b)
	st.patientID, st.study, st.series, st.sop = v[0x00100020], v[0x0020000D], v[0x0020000E], v[0x00080018]
	if st.study == "" || st.series == "" || st.sop == "" || st.patientID == "" {
		return nil, nil, fmt.Errorf("%s: no study/series/SOP instance UID or patient ID found", files[len(files)/2])
	}
	if len(files) != c.n {
		logf("note: %s holds %d files (not -n %d): using them all", c.dataDir, len(files), c.n)
	}
	return files, st, nil
}

// headerValues returns the string values of the top-level elements of an
// explicit VR little endian Part 10 file, up to the pixel data.
func headerValues(b []byte) map[uint32]string {
	out := map[uint32]string{}
	i := 132
	for i+8 <= len(b) {
		tag := uint32(binary.LittleEndian.Uint16(b[i:]))<<16 | uint32(binary.LittleEndian.Uint16(b[i+2:]))
		if tag == 0x7FE00010 {
			break
		}
		vr := string(b[i+4 : i+6])
		var n, h int
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV":
			n, h = int(binary.LittleEndian.Uint32(b[i+8:])), 12
		default:
			n, h = int(binary.LittleEndian.Uint16(b[i+6:])), 8
		}
		if n == -1 || n == 0xFFFFFFFF || i+h+n > len(b) {
			break
		}
		out[tag] = strings.TrimRight(string(b[i+h:i+h+n]), " \x00")
		i += h + n
	}
	return out
}

func buildRelais(work string) (string, error) {
	root := moduleRoot()
	if root == "" {
		return "", fmt.Errorf("not inside the relais module: pass -relais PATH")
	}
	bin := filepath.Join(work, "relais-bin")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/relais")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/relais: %v: %s", err, tail(string(out), 400))
	}
	return bin, nil
}

func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/relais-health/relais\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
