package main

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/relais-health/relais/bench/internal/machine"
	"golang.org/x/sys/unix"
)

// --- processes -----------------------------------------------------------------

// proc is one server process (storescp --fork or relais), in its own
// process group so that a terminal's Ctrl-C does not reach it and stop()
// also ends storescp's association children.
type proc struct {
	name    string
	cmd     *exec.Cmd
	port    int // DICOM
	hport   int // HTTP (relais)
	dir     string
	logPath string
	exited  chan struct{}
	waitErr error
}

var (
	procsMu     sync.Mutex
	procs       = map[*proc]bool{}
	interrupted bool
)

func isInterrupted() bool {
	procsMu.Lock()
	defer procsMu.Unlock()
	return interrupted
}

// stopOnSignal makes SIGINT/SIGTERM stop every running server; the
// measurement loop then ends and cleans up.
func stopOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		logf("%v: stopping", sig)
		procsMu.Lock()
		interrupted = true
		var all []*proc
		for p := range procs {
			all = append(all, p)
		}
		procsMu.Unlock()
		for _, p := range all {
			p.stop()
		}
	}()
}

// freePort asks the kernel for an unused loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// benchEnv is the environment of every dcmtk tool: Debian's dcmtk leaves
// Nagle's algorithm on unless TCP_NODELAY=1 (~20 instances/s otherwise).
func benchEnv() []string { return append(os.Environ(), "TCP_NODELAY=1") }

func launch(name string, argv []string, dir string, port, hport int) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = benchEnv()
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	procsMu.Lock()
	defer procsMu.Unlock()
	if interrupted {
		lf.Close()
		return nil, fmt.Errorf("interrupted")
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, port: port, hport: hport, dir: dir, logPath: logPath, exited: make(chan struct{})}
	procs[p] = true
	go func() {
		p.waitErr = cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process group (SIGTERM, SIGKILL after 15 s).
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // storescp --fork children
	procsMu.Lock()
	delete(procs, p)
	procsMu.Unlock()
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitEcho polls with echoscu until the server answers a C-ECHO.
func (p *proc) waitEcho(ae string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !p.alive() {
			return fmt.Errorf("%s exited during start-up (%v); see %s: %s", p.name, p.waitErr, p.logPath, tailFile(p.logPath, 400))
		}
		cmd := exec.Command("echoscu", "-to", "5", "-aet", "BENCH", "-aec", ae, "127.0.0.1", strconv.Itoa(p.port))
		cmd.Env = benchEnv()
		if cmd.Run() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no C-ECHO answer within %v; see %s", p.name, timeout, p.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), n)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// startStorescp starts `storescp --fork` writing into dir/store.
func startStorescp(dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, "", err
	}
	p, err := launch("storescp", []string{"storescp", "--fork", "-aet", "STORESCP", "-od", store, strconv.Itoa(port)}, dir, port, 0)
	return p, store, err
}

// startRelais starts `relais serve --config dir/relais.yaml` on dir/data.
// destPort > 0 adds the destination "dest" (that storescp); route is "",
// "immediate" or "stable".
func startRelais(bin, dir string, destPort int, destAssoc int, route string, stableAfter time.Duration) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	hport, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ae_title: RELAIS\ndata_dir: %q\n", data)
	fmt.Fprintf(&b, "listen: {dicom: \"127.0.0.1:%d\", http: \"127.0.0.1:%d\"}\n", port, hport)
	b.WriteString("log: {level: warn}\n")
	if destPort > 0 {
		fmt.Fprintf(&b, "destinations:\n  dest: {dicom: {ae: STORESCP, host: 127.0.0.1, port: %d}", destPort)
		if destAssoc > 0 {
			fmt.Fprintf(&b, ", associations: %d", destAssoc)
		}
		b.WriteString("}\n")
	}
	switch route {
	case "immediate":
		b.WriteString("routes:\n  - name: bench\n    mode: immediate\n    forward: [dest]\n")
	case "stable":
		fmt.Fprintf(&b, "routes:\n  - name: bench\n    mode: stable\n    stable_after: %s\n    forward: [dest]\n", stableAfter)
	}
	cfg := filepath.Join(dir, "relais.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return launch("relais", []string{bin, "serve", "--config", cfg}, dir, port, hport)
}

// --- CPU accounting --------------------------------------------------------------

// machineCPU returns the total and busy jiffies of the machine (/proc/stat).
func machineCPU() (total, busy uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var idle uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal
			total += n
		}
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return total, total - idle
}

// psiTotal returns the "some" total (µs) of /proc/pressure/KIND (cpu, io),
// or -1 without PSI.
func psiTotal(kind string) int64 {
	b, err := os.ReadFile("/proc/pressure/" + kind)
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	_, v, ok := strings.Cut(line, "total=")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// loadMeter measures the machine's CPU busy share, and the share of time
// some task waited for CPU or I/O (pressure stall information), over an
// interval.
type loadMeter struct {
	t0, b0      uint64
	at          time.Time
	cpuPS, ioPS int64
}

func startLoad() loadMeter {
	t, b := machineCPU()
	return loadMeter{t0: t, b0: b, at: time.Now(), cpuPS: psiTotal("cpu"), ioPS: psiTotal("io")}
}

// between returns the busy share and the CPU and I/O stall shares from
// snapshot a to snapshot b (both taken with startLoad).
func between(a, b loadMeter) (busy, cpu, io float64) {
	if b.t0 > a.t0 {
		busy = float64(b.b0-a.b0) / float64(b.t0-a.t0)
	}
	el := float64(b.at.Sub(a.at).Microseconds())
	cpu, io = -1, -1
	if el > 0 && a.cpuPS >= 0 && b.cpuPS >= 0 {
		cpu = float64(b.cpuPS-a.cpuPS) / el
	}
	if el > 0 && a.ioPS >= 0 && b.ioPS >= 0 {
		io = float64(b.ioPS-a.ioPS) / el
	}
	return busy, cpu, io
}

// pressure returns the share (0..1) of the interval during which some task
// was stalled on CPU and on I/O (-1: no PSI).
func (m loadMeter) pressure() (cpu, io float64) {
	el := float64(time.Since(m.at).Microseconds())
	f := func(k0 int64, kind string) float64 {
		k1 := psiTotal(kind)
		if k0 < 0 || k1 < 0 || el <= 0 {
			return -1
		}
		return float64(k1-k0) / el
	}
	return f(m.cpuPS, "cpu"), f(m.ioPS, "io")
}

// busy returns the busy share (0..1) since start.
func (m loadMeter) busy() float64 {
	t, b := machineCPU()
	if t <= m.t0 {
		return 0
	}
	return float64(b-m.b0) / float64(t-m.t0)
}

// waitQuiet waits (at most max) until, over 2 s, the machine is less than
// `below` busy and less than 20% of the time stalled on I/O (PSI); it
// returns the busy share it last saw.
func waitQuiet(below float64, max time.Duration) float64 {
	deadline := time.Now().Add(max)
	for {
		m := startLoad()
		time.Sleep(2 * time.Second)
		b := m.busy()
		_, io := m.pressure()
		if (b < below && io < 0.2) || time.Now().After(deadline) || isInterrupted() {
			return b
		}
	}
}

// cpuTicks is the utime+stime+cutime+cstime of pid in clock ticks, or -1.
func cpuTicks(pid int) int64 { return machine.CPUTicks(pid, true) }

// vmHWM is machine.PeakRSS.
func vmHWM(pid int) int64 { return machine.PeakRSS(pid) }

// --- page cache ------------------------------------------------------------------

// cachedBytes returns the bytes of regular files under dir in the page cache
// (mincore over a read-only mapping) and the files' total size.
func cachedBytes(dir string) (cached, total int64) {
	page := int64(os.Getpagesize())
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.Size() == 0 {
			return nil
		}
		total += st.Size()
		m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil
		}
		defer unix.Munmap(m)
		vec := make([]byte, (st.Size()+page-1)/page)
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			return nil
		}
		for _, v := range vec {
			if v&1 != 0 {
				cached += page
			}
		}
		return nil
	})
	return cached, total
}

// readAll reads every regular file under dir (into the page cache).
func readAll(dir string) int64 {
	var n int64
	buf := make([]byte, 1<<20)
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		for {
			k, err := f.Read(buf)
			n += int64(k)
			if err != nil {
				return nil
			}
		}
	})
	return n
}
