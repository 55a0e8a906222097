// Command routebench measures relais' routing of one CT study to a dcmtk
// storescp destination:
//
//  1. latency from each instance's acknowledgement to its delivery, with an
//     immediate route (journal: delivery.sent − instance.stored);
//
//  2. forwarding throughput (immediate route during the ingest, and a
//     stable route fired once the study is stored) against storescu sending
//     the same files directly to the same kind of storescp;
//
//  3. ingest throughput of relais with the immediate route against relais
//     with no route.
//
//     go run ./bench/routebench -n 500 -runs 5
//
// Like storebench it needs dcmtk (storescu, storescp, echoscu) and a relais
// binary (built from ./cmd/relais unless -relais is given); it imports no
// relais package and reads relais' journal with `relais journal --json`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relais-health/relais/bench/internal/ctgen"
)

type config struct {
	n           int
	dataDir     string
	runs        int
	relais      string
	workdir     string
	keep        bool
	out         string
	phases      []string
	stableAfter time.Duration
	destAssoc   int
	waitQuiet   float64
	timeout     time.Duration
	verbose     bool

	files []string
	total int64
}

var allPhases = []string{"direct", "off", "immediate", "immediate-down", "stable-cold", "stable-warm"}

func main() {
	var c config
	var phases string
	flag.IntVar(&c.n, "n", 500, "number of instances in the study")
	flag.StringVar(&c.dataDir, "data", "", "study directory (generated with -n instances if it holds no .dcm file; default: $TMPDIR/storebench-ct-N, shared with storebench)")
	flag.IntVar(&c.runs, "runs", 5, "runs of every phase (alternating; medians reported)")
	flag.StringVar(&c.relais, "relais", "", "relais binary (default: go build ./cmd/relais from the module root)")
	flag.StringVar(&c.workdir, "workdir", "", "work directory (default: a new temp dir, removed at the end)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work dir (logs, configurations, storage)")
	flag.StringVar(&c.out, "out", "", "also write the Markdown report to this file")
	flag.StringVar(&phases, "only", strings.Join(allPhases, ","), "phases to run: direct (storescu → storescp), off (relais, no route), immediate, immediate-down (immediate route, destination not listening), stable-cold, stable-warm")
	flag.DurationVar(&c.stableAfter, "stable-after", 3*time.Second, "stable_after of the stable route")
	flag.IntVar(&c.destAssoc, "dest-assoc", 0, "associations of the relais destination (0: relais' default, 2)")
	flag.Float64Var(&c.waitQuiet, "wait-quiet", 0, "before each phase, wait (up to 20 s) until the machine is less than this busy (0..1) and less than 20% stalled on I/O (0: do not wait)")
	flag.DurationVar(&c.timeout, "timeout", 3*time.Minute, "how long to wait for all deliveries of a phase")
	flag.BoolVar(&c.verbose, "v", false, "print every phase as it completes")
	flag.Parse()
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ok := false
		for _, q := range allPhases {
			ok = ok || p == q
		}
		if !ok {
			fatalf("unknown phase %q (have %s)", p, strings.Join(allPhases, ","))
		}
		c.phases = append(c.phases, p)
	}
	if err := run(&c); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "routebench: "+format+"\n", a...)
	os.Exit(1)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "routebench: "+format+"\n", a...)
}

func run(c *config) error {
	for _, tool := range []string{"storescu", "storescp", "echoscu"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install dcmtk", tool)
		}
	}
	if err := loadData(c); err != nil {
		return err
	}
	logf("data: %d instances, %.1f MB in %s", len(c.files), float64(c.total)/1e6, c.dataDir)
	work := c.workdir
	var err error
	if work == "" {
		if work, err = os.MkdirTemp("", "routebench-"); err != nil {
			return err
		}
		if !c.keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	stopOnSignal()
	if c.relais == "" {
		if c.relais, err = buildRelais(work); err != nil {
			return err
		}
	}
	// Every run sends from the page cache.
	readAll(c.dataDir)

	res := map[string][]*result{}
	for r := 0; r < c.runs; r++ {
		// Rotate the order of the phases from one run to the next so drift
		// on the (shared) machine spreads over all of them.
		for i := range c.phases {
			ph := c.phases[(i+r)%len(c.phases)]
			if isInterrupted() {
				return fmt.Errorf("interrupted")
			}
			dir := filepath.Join(work, fmt.Sprintf("run%d-%s", r+1, ph))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if c.waitQuiet > 0 {
				waitQuiet(c.waitQuiet, 20*time.Second)
			}
			rr := measure(c, ph, dir)
			rr.run = r + 1
			res[ph] = append(res[ph], rr)
			if c.verbose || rr.err != nil {
				logf("run %d %-11s %s", r+1, ph, rr)
			}
			if !c.keep {
				os.RemoveAll(dir)
			}
		}
	}
	report := renderReport(c, res)
	fmt.Print(report)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	if c.keep {
		logf("work dir kept: %s", work)
	}
	return nil
}

func loadData(c *config) error {
	if c.dataDir == "" {
		c.dataDir = filepath.Join(os.TempDir(), fmt.Sprintf("storebench-ct-%d", c.n))
	}
	files, _ := filepath.Glob(filepath.Join(c.dataDir, "*.dcm"))
	if len(files) == 0 {
		logf("generating %d instances in %s", c.n, c.dataDir)
		var err error
		if files, err = ctgen.Generate(c.dataDir, ctgen.Options{N: c.n, Seed: 1}); err != nil {
			return err
		}
	} else if len(files) != c.n {
		logf("note: %s holds %d .dcm files (not -n %d); using them all", c.dataDir, len(files), c.n)
	}
	sort.Strings(files)
	c.total = 0
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return err
		}
		c.total += st.Size()
	}
	c.files, c.n = files, len(files)
	return nil
}

func buildRelais(work string) (string, error) {
	root := moduleRoot()
	if root == "" {
		return "", fmt.Errorf("not inside the relais module: pass -relais PATH")
	}
	bin := filepath.Join(work, "relais")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/relais")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/relais: %v: %s", err, tail(string(out), 600))
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

// result is one phase of one run.
type result struct {
	run   int
	phase string
	err   error

	send   time.Duration // storescu wall time (first start to exit)
	busy   float64       // machine CPU busy share during the timed window
	psiCPU float64       // share of the window some task waited for a CPU (PSI)
	psiIO  float64       // share of the window some task waited for I/O (PSI)
	// the same over the storescu run (ingest) of relais phases
	sendBusy, sendPsiCPU, sendPsiIO float64
	cpuMs                           float64   // relais CPU ms per instance during the send (-1: n/a)
	rssMB                           float64   // relais peak RSS at the end of the phase
	sendAt                          time.Time // storescu start
	started                         time.Time

	// immediate: per instance, ms
	lat     []float64 // delivery.sent − instance.stored
	latArr  []float64 // file written by storescp (mtime) − instance.stored
	latTask []float64 // delivery.sent's latency_ms (task created → accepted)
	// forwarding time: immediate: first instance.stored → last delivery.sent;
	// stable: route.fired → last delivery.sent
	fwd    time.Duration
	fwdArr time.Duration // same, to the last file written by storescp
	e2e    time.Duration // storescu start → last delivery.sent
	// stable
	quiet      time.Duration // last instance.stored → route.fired
	firstSent  time.Duration // route.fired → first delivery.sent
	cachedFrac float64       // blobs in the page cache when the route fired (checked before it)
	warmLate   bool          // warming the cache ended after the route fired
	ingestMs   float64       // mean relais_ingest_duration_seconds (first byte → durable), ms
	durableMs  float64       // mean relais_ingest_durability_wait_seconds, ms
	fwdCPUMs   float64       // stable: relais CPU ms per instance from the end of the send to the last delivery
	jSyncs     int           // journal fdatasyncs over the phase
	jEvents    int           // journal events over the phase
	firedAt    time.Time
	lastSentAt time.Time
	sentN      int
	dups       int
}

func (r *result) String() string {
	if r.err != nil {
		return "FAILED: " + r.err.Error()
	}
	s := fmt.Sprintf("send %.2fs, busy %.0f%% (stalled on CPU %.0f%%, I/O %.0f%%)", r.send.Seconds(), 100*r.busy, 100*r.psiCPU, 100*r.psiIO)
	if r.cpuMs >= 0 {
		s += fmt.Sprintf(", relais CPU %.2f ms/inst, ingest %.2f ms/inst (fsync wait %.2f), journal %d events in %d fdatasyncs", r.cpuMs, r.ingestMs, r.durableMs, r.jEvents, r.jSyncs)
	}
	if len(r.lat) > 0 {
		s += fmt.Sprintf(", latency p50 %.1f p99 %.1f max %.1f ms (to file: p99 %.1f)", pct(r.lat, 50), pct(r.lat, 99), pct(r.lat, 100), pct(r.latArr, 99))
	}
	if r.fwd > 0 {
		s += fmt.Sprintf(", forward %.2fs (to files %.2fs)", r.fwd.Seconds(), r.fwdArr.Seconds())
	}
	if r.phase == "stable-cold" || r.phase == "stable-warm" {
		s += fmt.Sprintf(", relais CPU forwarding %.2f ms/inst", r.fwdCPUMs)
		s += fmt.Sprintf(", quiet→fire %.2fs, fire→first sent %.0f ms, cached %.0f%%", r.quiet.Seconds(), float64(r.firstSent)/1e6, 100*r.cachedFrac)
	}
	if r.dups > 0 {
		s += fmt.Sprintf(", %d duplicate deliveries", r.dups)
	}
	return s
}

// measure runs one phase on fresh servers in dir.
func measure(c *config, phase, dir string) *result {
	rr := &result{phase: phase, cpuMs: -1}
	syscall.Sync() // earlier phases' write-back is not this phase's cost

	dst, store, err := startStorescp(dir)
	if err != nil {
		rr.err = err
		return rr
	}
	defer dst.stop()
	if err := dst.waitEcho("STORESCP", 30*time.Second); err != nil {
		rr.err = err
		return rr
	}
	if phase == "direct" {
		lm := startLoad()
		rr.sendAt = time.Now()
		rr.send, rr.err = send(c.files, "STORESCP", dst.port)
		rr.busy = lm.busy()
		rr.psiCPU, rr.psiIO = lm.pressure()
		if rr.err == nil {
			if n := countFiles(store); n != c.n {
				rr.err = fmt.Errorf("storescp holds %d files, want %d", n, c.n)
			}
		}
		return rr
	}

	route := map[string]string{"off": "", "immediate": "immediate", "immediate-down": "immediate", "stable-cold": "stable", "stable-warm": "stable"}[phase]
	destPort := dst.port
	switch {
	case route == "":
		destPort = 0
	case phase == "immediate-down":
		// A port nobody listens on: tasks are created and their attempts
		// fail at once (connection refused), then back off.
		if destPort, err = freePort(); err != nil {
			rr.err = err
			return rr
		}
	}
	rel, err := startRelais(c.relais, filepath.Join(dir), destPort, c.destAssoc, route, c.stableAfter)
	if err != nil {
		rr.err = err
		return rr
	}
	defer rel.stop()
	if err := rel.waitEcho("RELAIS", 60*time.Second); err != nil {
		rr.err = err
		return rr
	}
	data := filepath.Join(dir, "data")
	pid := rel.cmd.Process.Pid

	lm := startLoad()
	cpu0 := cpuTicks(pid)
	rr.sendAt = time.Now()
	rr.send, rr.err = send(c.files, "RELAIS", rel.port)
	if cpu1 := cpuTicks(pid); cpu0 >= 0 && cpu1 >= 0 {
		rr.cpuMs = float64(cpu1-cpu0) * 10 / float64(c.n)
	}
	m := scrape(rel)
	rr.ingestMs = histMean(m, "relais_ingest_duration_seconds")
	rr.durableMs = histMean(m, "relais_ingest_durability_wait_seconds")
	if rr.err != nil {
		return rr
	}
	rr.sendBusy = lm.busy()
	rr.sendPsiCPU, rr.sendPsiIO = lm.pressure()
	if phase == "off" || phase == "immediate-down" {
		rr.busy = lm.busy()
		rr.psiCPU, rr.psiIO = lm.pressure()
		rr.jSyncs, rr.jEvents = journalSyncs(data)
		rr.rssMB = float64(vmHWM(pid)) / 1e6
		return rr
	}
	if phase == "immediate" {
		rr.busy = lm.busy() // the ingest window; forwarding continues below
		rr.psiCPU, rr.psiIO = lm.pressure()
	}
	var warmEnd time.Time
	if route == "stable" {
		blobs := filepath.Join(data, "blobs")
		if phase == "stable-warm" {
			readAll(blobs)
			warmEnd = time.Now()
		}
		cached, total := cachedBytes(blobs)
		if total > 0 {
			rr.cachedFrac = float64(cached) / float64(total)
		}
	}
	// Stable routes: snapshots of the machine's load and relais' CPU every
	// poll, to measure them over [route.fired, last delivery.sent] later.
	type snap struct {
		lm  loadMeter
		cpu int64
	}
	var snaps []snap
	onPoll := func() { snaps = append(snaps, snap{startLoad(), cpuTicks(pid)}) }
	if route != "stable" {
		onPoll = nil
	}
	if _, err := waitSent(rel, c.n, c.timeout+c.stableAfter, onPoll); err != nil {
		rr.err = err
		return rr
	}

	rr.rssMB = float64(vmHWM(pid)) / 1e6
	rr.jSyncs, rr.jEvents = journalSyncs(data)
	evs, err := readJournal(c.relais, data, "instance.stored", "delivery.sent", "route.fired")
	if err != nil {
		rr.err = err
		return rr
	}
	arr := arrivals(store)
	if err := analyse(rr, evs, arr, c.n, warmEnd); err != nil {
		rr.err = err
		return rr
	}
	if route == "stable" {
		snaps = append(snaps, snap{startLoad(), cpuTicks(pid)})
		// The last snapshot at or before the fire and the first at or
		// after the last delivery (polls are 50 ms apart).
		a, b := snaps[0], snaps[len(snaps)-1]
		for _, sn := range snaps {
			if !sn.lm.at.After(rr.firedAt) {
				a = sn
			}
		}
		for i := len(snaps) - 1; i >= 0; i-- {
			if !snaps[i].lm.at.Before(rr.lastSentAt) {
				b = snaps[i]
			}
		}
		rr.busy, rr.psiCPU, rr.psiIO = between(a.lm, b.lm)
		if a.cpu >= 0 && b.cpu >= 0 {
			rr.fwdCPUMs = float64(b.cpu-a.cpu) * 10 / float64(c.n)
		}
	}
	return rr
}

// analyse computes the latencies and forwarding times from the journal.
func analyse(rr *result, evs []event, arr map[string]time.Time, n int, warmEnd time.Time) error {
	stored := map[string]time.Time{}
	sent := map[string]event{}
	var firstStored, lastStored, fired, firstSent, lastSent time.Time
	for _, ev := range evs {
		switch ev.Kind {
		case "instance.stored":
			stored[ev.SOP] = ev.Time
			if firstStored.IsZero() || ev.Time.Before(firstStored) {
				firstStored = ev.Time
			}
			if ev.Time.After(lastStored) {
				lastStored = ev.Time
			}
		case "route.fired":
			if fired.IsZero() || ev.Time.Before(fired) {
				fired = ev.Time
			}
		case "delivery.sent":
			rr.sentN++
			if _, dup := sent[ev.SOP]; dup {
				rr.dups++
				continue
			}
			sent[ev.SOP] = ev
			if firstSent.IsZero() || ev.Time.Before(firstSent) {
				firstSent = ev.Time
			}
			if ev.Time.After(lastSent) {
				lastSent = ev.Time
			}
		}
	}
	if len(stored) != n || len(sent) != n {
		return fmt.Errorf("journal: %d instance.stored, %d instances with delivery.sent, want %d", len(stored), len(sent), n)
	}
	if len(arr) != n {
		return fmt.Errorf("storescp holds %d files, want %d", len(arr), n)
	}
	var lastArr time.Time
	for sop, st := range stored {
		s, ok := sent[sop]
		if !ok {
			return fmt.Errorf("no delivery.sent for %s", sop)
		}
		a, ok := arr[sop]
		if !ok {
			return fmt.Errorf("storescp has no file for %s", sop)
		}
		if a.After(lastArr) {
			lastArr = a
		}
		rr.lat = append(rr.lat, ms(s.Time.Sub(st)))
		rr.latArr = append(rr.latArr, ms(a.Sub(st)))
		rr.latTask = append(rr.latTask, float64(s.Data.LatencyMS))
	}
	switch rr.phase {
	case "immediate":
		rr.fwd = lastSent.Sub(firstStored)
		rr.fwdArr = lastArr.Sub(firstStored)
		rr.e2e = lastSent.Sub(rr.sendAt)
	default:
		if fired.IsZero() {
			return fmt.Errorf("journal: no route.fired event")
		}
		rr.firedAt, rr.lastSentAt = fired, lastSent
		rr.fwd = lastSent.Sub(fired)
		rr.fwdArr = lastArr.Sub(fired)
		rr.quiet = fired.Sub(lastStored)
		rr.firstSent = firstSent.Sub(fired)
		rr.warmLate = !warmEnd.IsZero() && warmEnd.After(fired)
		rr.lat, rr.latArr, rr.latTask = nil, nil, nil // not an ack → arrival latency
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// send runs one storescu over one association with every file and returns
// its wall time.
func send(files []string, ae string, port int) (time.Duration, error) {
	args := []string{"-aet", "BENCH", "-aec", ae, "127.0.0.1", strconv.Itoa(port)}
	for _, f := range files {
		args = append(args, filepath.Base(f)) // relative: a short argument list
	}
	cmd := exec.Command("storescu", args...)
	cmd.Dir = filepath.Dir(files[0])
	cmd.Env = benchEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return wall, fmt.Errorf("storescu: %v: %s", err, tail(out.String(), 300))
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "F: ") {
			return wall, fmt.Errorf("storescu reported: %s", tail(out.String(), 300))
		}
	}
	return wall, nil
}
