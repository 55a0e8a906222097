package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The running server, stopped if storebench is interrupted: servers run in
// their own process group, so a terminal's Ctrl-C does not reach them.
var (
	currentMu   sync.Mutex
	current     *instance
	interrupted bool
)

// isInterrupted reports whether SIGINT or SIGTERM arrived.
func isInterrupted() bool {
	currentMu.Lock()
	defer currentMu.Unlock()
	return interrupted
}

// stopOnSignal makes SIGINT/SIGTERM stop the running server and prevents new
// ones from starting; the measurement loop then ends and cleans up.
func stopOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "storebench: %v: stopping\n", sig)
		currentMu.Lock()
		interrupted = true
		in := current
		currentMu.Unlock()
		if in != nil {
			in.stop()
		}
	}()
}

// server is one DICOM storage SCP under test.
type server interface {
	Name() string
	AE() string
	// Start launches a fresh instance whose storage lives under dir (empty).
	Start(dir string) (*instance, error)
	// Count returns how many instances the server holds, or -1 when the
	// server cannot be asked (then only storescu's success is checked).
	Count(in *instance) (int, error)
}

// instance is one running server process.
type instance struct {
	cmd       *exec.Cmd
	dicomPort int
	httpPort  int
	storeDir  string
	logPath   string
	exited    chan struct{}
	waitErr   error
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

// benchEnv is the environment for every dcmtk tool and server: Debian's
// dcmtk (and Orthanc, which links it) leave Nagle's algorithm on unless
// TCP_NODELAY=1, which caps C-STORE at a few tens of instances per second.
func benchEnv() []string {
	return append(os.Environ(), "TCP_NODELAY=1")
}

// launch starts argv in its own process group with output to logPath.
func launch(argv []string, logPath string, dicomPort, httpPort int, storeDir string) (*instance, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = benchEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	currentMu.Lock()
	defer currentMu.Unlock()
	if interrupted {
		logf.Close()
		return nil, fmt.Errorf("interrupted")
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	in := &instance{cmd: cmd, dicomPort: dicomPort, httpPort: httpPort, storeDir: storeDir, logPath: logPath, exited: make(chan struct{})}
	current = in
	go func() {
		in.waitErr = cmd.Wait()
		logf.Close()
		close(in.exited)
	}()
	return in, nil
}

// waitReady polls with echoscu until the server answers a C-ECHO.
func waitReady(in *instance, ae string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-in.exited:
			return fmt.Errorf("server exited during start-up (%v); see %s", in.waitErr, in.logPath)
		default:
		}
		cmd := exec.Command("echoscu", "-to", "5", "-aet", "BENCH", "-aec", ae, "127.0.0.1", strconv.Itoa(in.dicomPort))
		cmd.Env = benchEnv()
		if cmd.Run() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no C-ECHO answer within %v; see %s", timeout, in.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the server's process group (SIGTERM, then SIGKILL after 15 s).
func (in *instance) stop() {
	pgid := in.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-in.exited
	}
	// Leftover children (storescp --fork) share the group: make sure they go.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	currentMu.Lock()
	if current == in {
		current = nil
	}
	currentMu.Unlock()
}

// --- dcmtk storescp --fork ---------------------------------------------------

type storescp struct{}

func (storescp) Name() string { return "storescp" }
func (storescp) AE() string   { return "STORESCP" }

func (storescp) Start(dir string) (*instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, err
	}
	argv := []string{"storescp", "--fork", "-aet", "STORESCP", "-od", store, strconv.Itoa(port)}
	return launch(argv, filepath.Join(dir, "storescp.log"), port, 0, store)
}

func (storescp) Count(in *instance) (int, error) {
	n := 0
	err := filepath.WalkDir(in.storeDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n, err
}

// --- Orthanc -------------------------------------------------------------------

type orthanc struct{ bin string }

func (orthanc) Name() string { return "orthanc" }
func (orthanc) AE() string   { return "ORTHANC" }

func (o orthanc) Start(dir string) (*instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	hport, err := freePort()
	if err != nil {
		return nil, err
	}
	store, index := filepath.Join(dir, "storage"), filepath.Join(dir, "index")
	for _, d := range []string{store, index} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Minimal configuration: everything else keeps Orthanc's built-in
	// defaults (no plugins, StorageCompression false, DicomCheckCalledAet
	// false, DicomAlwaysAllowStore true, DicomThreadsCount 4, SQLite index).
	cfg := map[string]any{
		"Name":             "storebench",
		"DicomAet":         "ORTHANC",
		"DicomPort":        port,
		"HttpPort":         hport,
		"StorageDirectory": store,
		"IndexDirectory":   index,
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	in, err := launch([]string{o.bin, cfgPath}, filepath.Join(dir, "orthanc.log"), port, hport, store)
	if err != nil {
		return nil, err
	}
	return in, nil
}

func (orthanc) Count(in *instance) (int, error) {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/statistics", in.httpPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /statistics: %s", resp.Status)
	}
	var st struct{ CountInstances int }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.CountInstances, nil
}

// --- relais ----------------------------------------------------------------------

type relais struct{ bin string }

func (relais) Name() string { return "relais" }
func (relais) AE() string   { return "RELAIS" }

func (r relais) Start(dir string) (*instance, error) {
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
	argv := []string{r.bin, "serve", "--data", data,
		"--dicom-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", hport),
		"--ae", "RELAIS"}
	return launch(argv, filepath.Join(dir, "relais.log"), port, hport, data)
}

// Count is not implemented for relais on purpose: the benchmark relies on
// storescu's success only, so it does not depend on relais' HTTP API.
func (relais) Count(*instance) (int, error) { return -1, nil }
