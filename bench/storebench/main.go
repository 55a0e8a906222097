// Command storebench measures how fast DICOM storage SCPs ingest one CT study
// sent by dcmtk's storescu, over 1 association and over 4 parallel
// associations, against dcmtk storescp --fork, Orthanc and relais.
//
//	go run ./bench/storebench -n 500 -runs 3
//
// It only needs dcmtk (storescu, storescp, echoscu), Orthanc and optionally a
// relais binary; it does not import any relais package.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relais-health/relais/bench/internal/ctgen"
)

type config struct {
	n        int
	dataDir  string
	runs     int
	only     map[string]bool
	out      string
	relais   string
	orthanc  string
	assocs   []int
	workdir  string
	keep     bool
	startTO  time.Duration
	verbose  bool
	skipNote map[string]string
}

func main() {
	var c config
	var only, assocs string
	flag.IntVar(&c.n, "n", 500, "number of instances in the study")
	flag.StringVar(&c.dataDir, "data", "", "study directory (generated with -n instances if it holds no .dcm file; default: $TMPDIR/storebench-ct-N)")
	flag.IntVar(&c.runs, "runs", 3, "repetitions of each cell (the median is reported)")
	flag.StringVar(&only, "only", "storescp,orthanc,relais", "servers to measure, comma separated")
	flag.StringVar(&c.out, "out", "", "also write the Markdown report to this file")
	flag.StringVar(&c.relais, "relais", "", "relais binary (default: go build ./cmd/relais from the module root)")
	flag.StringVar(&c.orthanc, "orthanc", "Orthanc", "Orthanc binary")
	flag.StringVar(&assocs, "assoc", "1,4", "numbers of parallel associations to measure, comma separated")
	flag.StringVar(&c.workdir, "workdir", "", "where servers store data (default: a new temp dir, removed at the end)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work dir (server logs and storage of the last run)")
	flag.DurationVar(&c.startTO, "start-timeout", 60*time.Second, "how long to wait for a server to answer C-ECHO")
	flag.BoolVar(&c.verbose, "v", false, "print each run as it completes")
	flag.Parse()

	c.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(strings.ToLower(s)); s != "" {
			c.only[s] = true
		}
	}
	for _, s := range strings.Split(assocs, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			fatalf("bad -assoc %q", assocs)
		}
		c.assocs = append(c.assocs, k)
	}
	c.skipNote = map[string]string{}
	if err := run(&c); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "storebench: "+format+"\n", a...)
	os.Exit(1)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "storebench: "+format+"\n", a...)
}

func run(c *config) error {
	for _, tool := range []string{"storescu", "echoscu"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install dcmtk", tool)
		}
	}
	files, total, err := loadData(c)
	if err != nil {
		return err
	}
	logf("data: %d instances, %.1f MB in %s", len(files), float64(total)/1e6, c.dataDir)

	work := c.workdir
	if work == "" {
		work, err = os.MkdirTemp("", "storebench-")
		if err != nil {
			return err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if !c.keep && c.workdir == "" {
		defer os.RemoveAll(work)
	}
	stopOnSignal()

	servers := pickServers(c, work)
	if len(servers) == 0 {
		return fmt.Errorf("no server to measure (-only %v); notes: %v", keys(c.only), c.skipNote)
	}

	// Read every file once so the first measured run does not pay disk reads.
	for _, f := range files {
		if _, err := os.ReadFile(f); err != nil {
			return err
		}
	}

	res := map[cellKey][]runResult{}
	for r := 1; r <= c.runs; r++ {
		for _, s := range servers {
			for _, k := range c.assocs {
				if isInterrupted() {
					return fmt.Errorf("interrupted")
				}
				rr := measure(c, s, work, files, k)
				res[cellKey{s.Name(), k}] = append(res[cellKey{s.Name(), k}], rr)
				if c.verbose || rr.err != nil {
					logf("run %d %-8s assoc=%d: %s", r, s.Name(), k, rr)
				}
			}
		}
	}

	report := renderReport(c, servers, files, total, res)
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

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// loadData returns the study's files (generating them when the directory has
// none) and their total size in bytes.
func loadData(c *config) ([]string, int64, error) {
	if c.dataDir == "" {
		c.dataDir = filepath.Join(os.TempDir(), fmt.Sprintf("storebench-ct-%d", c.n))
	}
	files, _ := filepath.Glob(filepath.Join(c.dataDir, "*.dcm"))
	if len(files) == 0 {
		logf("generating %d instances in %s", c.n, c.dataDir)
		var err error
		files, err = ctgen.Generate(c.dataDir, ctgen.Options{N: c.n, Seed: 1})
		if err != nil {
			return nil, 0, err
		}
	} else if len(files) != c.n {
		logf("note: %s holds %d .dcm files (not -n %d); using them all", c.dataDir, len(files), c.n)
	}
	sort.Strings(files)
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, 0, err
		}
		total += st.Size()
	}
	c.n = len(files)
	return files, total, nil
}

func pickServers(c *config, work string) []server {
	var out []server
	if c.only["storescp"] {
		if _, err := exec.LookPath("storescp"); err != nil {
			c.skipNote["storescp"] = "storescp not found"
		} else {
			out = append(out, storescp{})
		}
	}
	if c.only["orthanc"] {
		if bin, err := exec.LookPath(c.orthanc); err != nil {
			c.skipNote["orthanc"] = fmt.Sprintf("%s not found", c.orthanc)
		} else {
			out = append(out, orthanc{bin: bin})
		}
	}
	if c.only["relais"] {
		bin, note := findRelais(c.relais, work)
		if bin == "" {
			c.skipNote["relais"] = note
			logf("skipping relais: %s", note)
		} else {
			out = append(out, relais{bin: bin})
		}
	}
	return out
}

// findRelais returns the relais binary to use, building ./cmd/relais from
// the module root when no -relais path is given, or "" and the reason.
func findRelais(flagPath, work string) (string, string) {
	if flagPath != "" {
		if st, err := os.Stat(flagPath); err != nil || st.IsDir() {
			return "", fmt.Sprintf("-relais %s: not a file", flagPath)
		}
		abs, _ := filepath.Abs(flagPath)
		return abs, ""
	}
	root := moduleRoot()
	if root == "" {
		return "", "not run from inside the relais module and no -relais PATH given"
	}
	srcs, _ := filepath.Glob(filepath.Join(root, "cmd", "relais", "*.go"))
	if len(srcs) == 0 {
		return "", "cmd/relais has no Go files yet (pass -relais PATH to use a built binary)"
	}
	bin := filepath.Join(work, "relais")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/relais")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.Join(strings.Fields(string(out)), " ")
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return "", fmt.Sprintf("go build ./cmd/relais failed: %v: %s", err, msg)
	}
	return bin, ""
}

// moduleRoot walks up from the working directory to the go.mod of the
// relais module.
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

type cellKey struct {
	server string
	assoc  int
}

type runResult struct {
	wall      time.Duration
	rss       int64         // root + max child, bytes
	rssSum    int64         // root + sum of children, bytes
	cpu       time.Duration // server CPU time during the send, -1 if unknown
	children  int
	count     int // instances the server reports, -1 when not checked
	err       error
	stderrOut string
}

func (r runResult) String() string {
	if r.err != nil {
		return "FAILED: " + r.err.Error()
	}
	return fmt.Sprintf("%.2fs, server CPU %.2fs, peak RSS %.1f MB, count %d", r.wall.Seconds(), r.cpu.Seconds(), float64(r.rss)/1e6, r.count)
}

// measure runs one cell once: fresh server, wait for C-ECHO, timed storescu
// run(s), verify, read peak RSS, stop, clean.
func measure(c *config, s server, work string, files []string, assoc int) (rr runResult) {
	dir, err := os.MkdirTemp(work, s.Name()+"-")
	if err != nil {
		return runResult{err: err}
	}
	defer func() {
		if !c.keep {
			os.RemoveAll(dir)
		}
	}()
	in, err := s.Start(dir)
	if err != nil {
		return runResult{err: err}
	}
	defer in.stop()
	if err := waitReady(in, s.AE(), c.startTO); err != nil {
		return runResult{err: err}
	}
	// Flush dirty pages left by earlier runs (and by data generation) so a
	// run does not pay for its predecessor's write-back.
	syscall.Sync()
	sampler := startSampler(in.cmd.Process.Pid, 20*time.Millisecond)
	wall, stderrOut, sendErr := send(files, s.AE(), in.dicomPort, assoc, c)
	select {
	case <-in.exited:
		sendErr = fmt.Errorf("server exited during the run (%v); see %s", in.waitErr, in.logPath)
	default:
	}
	sampler.finish()
	rr.rss, rr.rssSum, rr.children = sampler.peak()
	rr.cpu = sampler.cpu()
	rr.wall, rr.stderrOut, rr.err = wall, stderrOut, sendErr
	rr.count = -1
	if rr.err == nil {
		n, err := s.Count(in)
		switch {
		case err != nil:
			rr.err = fmt.Errorf("counting stored instances: %v", err)
		case n >= 0 && n != len(files):
			rr.err = fmt.Errorf("server holds %d instances, want %d", n, len(files))
		}
		rr.count = n
	}
	return rr
}

// send runs `assoc` storescu processes at once, each over its own association
// with a contiguous share of the files, and returns the wall time from the
// first start to the last exit.
func send(files []string, ae string, port, assoc int, c *config) (time.Duration, string, error) {
	sets := split(files, assoc)
	cmds := make([]*exec.Cmd, len(sets))
	outs := make([]*bytes.Buffer, len(sets))
	for i, set := range sets {
		args := []string{"-aet", "BENCH", "-aec", ae, "127.0.0.1", strconv.Itoa(port)}
		// Relative names from inside the data dir keep the argument list
		// short: ~14 bytes a file, far below ARG_MAX (2 MiB) for any study.
		rel := make([]string, len(set))
		argBytes := 0
		for j, f := range set {
			rel[j] = filepath.Base(f)
			argBytes += len(rel[j]) + 1
		}
		if argBytes > 1<<20 {
			return 0, "", fmt.Errorf("argument list too long (%d bytes): use fewer instances", argBytes)
		}
		cmd := exec.Command("storescu", append(args, rel...)...)
		cmd.Dir = filepath.Dir(set[0])
		cmd.Env = benchEnv()
		outs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		cmds[i] = cmd
	}
	t0 := time.Now()
	for i, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			for _, started := range cmds[:i] {
				_ = started.Process.Kill()
				_ = started.Wait()
			}
			return 0, "", err
		}
	}
	var firstErr error
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("storescu %d/%d: %v: %s", i+1, len(cmds), err, tail(outs[i].String(), 300))
		}
	}
	wall := time.Since(t0)
	var all strings.Builder
	for _, o := range outs {
		all.WriteString(o.String())
	}
	out := all.String()
	if firstErr == nil {
		// storescu logs failed C-STOREs (e.g. a refusal status) as E:/W: lines.
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "F: ") {
				firstErr = fmt.Errorf("storescu reported: %s", tail(out, 300))
				break
			}
		}
	}
	return wall, out, firstErr
}

func split(files []string, k int) [][]string {
	if k > len(files) {
		k = len(files)
	}
	var sets [][]string
	for i := 0; i < k; i++ {
		lo, hi := i*len(files)/k, (i+1)*len(files)/k
		sets = append(sets, files[lo:hi])
	}
	return sets
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// toolVersion returns the first line of `bin args...`.
func toolVersion(bin string, args ...string) string {
	cmd := exec.Command(bin, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, io.Discard
	_ = cmd.Run()
	line, _, _ := strings.Cut(strings.TrimSpace(b.String()), "\n")
	return strings.TrimSpace(strings.Trim(line, "$"))
}

func hostInfo() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPU (%s), Linux %s, %s", runtime.NumCPU(), model, kernel, runtime.Version())
}
