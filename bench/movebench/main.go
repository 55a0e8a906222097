// Command movebench measures C-MOVE throughput: one CT study, already
// stored in the server, is moved with dcmtk's movescu to a dcmtk
// storescp --fork destination, from relais (with 1 and with 4 sub-operation
// associations) and from Orthanc (which uses one).
//
//	go run ./bench/movebench -n 500 -runs 3
//
// It needs dcmtk (storescu, storescp, movescu, echoscu, dcmdump) and
// Orthanc; relais is built from the module unless -relais is given. Like
// storebench it talks to the servers only through DICOM.
package main

import (
	"encoding/json"
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
	n       int
	runs    int
	dataDir string
	relais  string
	orthanc string
	workdir string
	keep    bool
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 500, "number of instances in the study")
	flag.IntVar(&c.runs, "runs", 3, "repetitions (the median is reported)")
	flag.StringVar(&c.dataDir, "data", "", "study directory (generated if it holds no .dcm file; default $TMPDIR/storebench-ct-N)")
	flag.StringVar(&c.relais, "relais", "", "relais binary (default: go build ./cmd/relais)")
	flag.StringVar(&c.orthanc, "orthanc", "Orthanc", "Orthanc binary")
	flag.StringVar(&c.workdir, "workdir", "", "work directory (default: a new temp dir, removed at the end)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.Parse()
	if err := run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "movebench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "movebench: "+format+"\n", a...)
}

func env() []string { return append(os.Environ(), "TCP_NODELAY=1") }

// proc is a running server.
type proc struct {
	cmd    *exec.Cmd
	port   int
	exited chan struct{}
}

func start(dir, name, ae string, port int, argv ...string) (*proc, error) {
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, port: port, exited: make(chan struct{})}
	go func() { cmd.Wait(); logFile.Close(); close(p.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		e := exec.Command("echoscu", "-to", "5", "-aet", "BENCH", "-aec", ae, "127.0.0.1", strconv.Itoa(port))
		e.Env = env()
		if e.Run() == nil {
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited at start; see %s.log", name, filepath.Join(dir, name))
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s: no C-ECHO answer", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func freePort() int {
	l, err := netListen()
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.port
}

func tool(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// source is a server the study is moved from.
type source struct {
	name   string
	assocs string // sub-operation associations, as reported
	ae     string // called AE title
	dest   string // move destination AE title it knows
	p      *proc
}

func run(c *config) error {
	work := c.workdir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "movebench"); err != nil {
			return err
		}
		if !c.keep {
			defer os.RemoveAll(work)
		}
	}
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
	}
	sort.Strings(files)
	c.n = len(files)
	var total int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	out, err := tool("dcmdump", "+P", "0020,000d", "-q", files[0])
	if err != nil {
		return fmt.Errorf("dcmdump: %v: %s", err, out)
	}
	study := out[strings.Index(out, "[")+1 : strings.Index(out, "]")]

	relaisBin := c.relais
	if relaisBin == "" {
		relaisBin = filepath.Join(work, "relais")
		b := exec.Command("go", "build", "-o", relaisBin, "./cmd/relais")
		if out, err := b.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/relais (run from the module root): %v: %s", err, out)
		}
	}

	// The destination.
	dstDir := filepath.Join(work, "dest")
	os.MkdirAll(dstDir, 0o755)
	dport := freePort()
	dst, err := start(work, "storescp", "STORESCP", dport, "storescp", "--fork", "-aet", "STORESCP", "-od", dstDir, strconv.Itoa(dport))
	if err != nil {
		return err
	}
	defer dst.stop()

	// relais, with two names for the destination: 4 and 1 associations.
	rdir := filepath.Join(work, "relais-node")
	os.MkdirAll(rdir, 0o755)
	rport, rhttp := freePort(), freePort()
	rcfg := fmt.Sprintf(`remote_aes:
  - {name: dest4, ae: STORESCP, host: 127.0.0.1, port: %d, associations: 4}
  - {name: dest1, ae: STORESCP1, host: 127.0.0.1, port: %d, associations: 1}
`, dport, dport)
	os.WriteFile(filepath.Join(rdir, "relais.yaml"), []byte(rcfg), 0o644)
	rp, err := start(work, "relais", "RELAIS", rport, relaisBin, "serve", "--config", filepath.Join(rdir, "relais.yaml"), "--data", filepath.Join(rdir, "data"),
		"--dicom-addr", fmt.Sprintf("127.0.0.1:%d", rport), "--http-addr", fmt.Sprintf("127.0.0.1:%d", rhttp), "--ae", "RELAIS")
	if err != nil {
		return err
	}
	defer rp.stop()

	// Orthanc, knowing the destination and letting BENCH move.
	odir := filepath.Join(work, "orthanc")
	os.MkdirAll(odir, 0o755)
	oport, ohttp := freePort(), freePort()
	ocfg, _ := json.MarshalIndent(map[string]any{
		"Name": "movebench", "DicomAet": "ORTHANC", "DicomPort": oport, "HttpPort": ohttp,
		"StorageDirectory": filepath.Join(odir, "storage"), "IndexDirectory": filepath.Join(odir, "index"),
		"DicomModalities": map[string]any{
			"dest":  []any{"STORESCP", "127.0.0.1", dport},
			"bench": []any{"BENCH", "127.0.0.1", 1},
		},
		"DicomAlwaysAllowMove": true,
	}, "", "  ")
	os.WriteFile(filepath.Join(odir, "orthanc.json"), ocfg, 0o644)
	op, err := start(work, "orthanc", "ORTHANC", oport, c.orthanc, filepath.Join(odir, "orthanc.json"))
	if err != nil {
		return err
	}
	defer op.stop()

	sources := []source{
		{"relais", "4", "RELAIS", "STORESCP", rp},
		{"relais", "1", "RELAIS", "STORESCP1", rp},
		{"Orthanc", "1", "ORTHANC", "STORESCP", op},
	}
	for _, s := range []source{sources[0], sources[2]} {
		logf("loading %d instances into %s", c.n, s.name)
		args := append([]string{"-aet", "BENCH", "-aec", s.ae, "127.0.0.1", strconv.Itoa(s.p.port)}, files...)
		if out, err := tool("storescu", args...); err != nil {
			return fmt.Errorf("storescu into %s: %v: %s", s.name, err, out)
		}
	}

	results := make([][]float64, len(sources))
	cpus := make([][]float64, len(sources))
	for r := 0; r < c.runs; r++ {
		for i, s := range sources {
			os.RemoveAll(dstDir)
			os.MkdirAll(dstDir, 0o755)
			cpu0 := cpuTicks(s.p.cmd.Process.Pid)
			t0 := time.Now()
			out, err := tool("movescu", "-aet", "BENCH", "-aec", s.ae, "-aem", s.dest, "-S",
				"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "127.0.0.1", strconv.Itoa(s.p.port))
			if err != nil || strings.Contains(out, "E: ") {
				return fmt.Errorf("movescu from %s: %v: %s", s.name, err, out)
			}
			// The final response comes after every sub-operation's
			// response, and storescp answers once the file is written.
			el := time.Since(t0)
			if got := countFiles(dstDir); got != c.n {
				return fmt.Errorf("%s: %d of %d instances arrived", s.name, got, c.n)
			}
			cpuMS := float64(cpuTicks(s.p.cmd.Process.Pid)-cpu0) * 10 / float64(c.n) // 100 ticks/s
			results[i] = append(results[i], float64(c.n)/el.Seconds())
			cpus[i] = append(cpus[i], cpuMS)
			logf("run %d: %s (%s assoc): %d instances in %s: %.0f instances/s, %.2f CPU ms/instance", r+1, s.name, s.assocs, c.n,
				el.Round(time.Millisecond), float64(c.n)/el.Seconds(), cpuMS)
		}
	}
	med := func(xs []float64) float64 {
		s := append([]float64(nil), xs...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	orth := med(results[2])
	mb := float64(total) / 1e6
	fmt.Printf("C-MOVE of one study (%d instances, %.0f MB) to dcmtk storescp --fork, movescu, median of %d runs\n\n", c.n, mb, c.runs)
	fmt.Println("| source | sub-operation associations | instances/s | MB/s | source CPU ms/instance | vs Orthanc |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for i, s := range sources {
		m := med(results[i])
		fmt.Printf("| %s | %s | %.0f | %.0f | %.2f | %.2f× |\n", s.name, s.assocs, m, m*mb/float64(c.n), med(cpus[i]), m/orth)
	}
	return nil
}

// cpuTicks is the user+system CPU time of a process, in clock ticks
// (/proc/PID/stat fields 14 and 15; 0 if unreadable).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}
