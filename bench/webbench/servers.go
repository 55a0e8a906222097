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

// server is one DICOMweb server under test: a process started (and
// restarted) on the same data directory and ports.
type server struct {
	name      string // "orthanc" or "relais"
	display   string
	ae        string
	dir       string // everything the server stores (evicted for cold runs)
	argv      []string
	dicomPort int
	httpPort  int
	readyPath string // HTTP path answering 200 once the server is up
	base      string // DICOMweb root, no trailing slash
	client    *http.Client

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	starts int
}

var (
	runningMu sync.Mutex
	running   = map[*server]bool{}
	stopping  bool
)

// stopOnSignal stops the servers on SIGINT/SIGTERM: they run in their own
// process group, so a terminal's Ctrl-C does not reach them.
func stopOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "webbench: %v: stopping servers\n", sig)
		runningMu.Lock()
		stopping = true
		var list []*server
		for s := range running {
			list = append(list, s)
		}
		runningMu.Unlock()
		for _, s := range list {
			s.stop()
		}
		os.Exit(1)
	}()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// benchEnv: Debian's dcmtk, and Orthanc built on it, leave Nagle's
// algorithm on for DICOM unless TCP_NODELAY=1.
func benchEnv() []string { return append(os.Environ(), "TCP_NODELAY=1") }

func newClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        16,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true, // Accept-Encoding is set by hand; bodies are read as sent
		},
	}
}

// newOrthanc writes the configuration of Orthanc with the DICOMweb plugin.
func newOrthanc(bin, plugin, work string) (*server, error) {
	s := &server{name: "orthanc", display: "Orthanc + DICOMweb", ae: "ORTHANC", dir: filepath.Join(work, "orthanc"), readyPath: "/system"}
	var err error
	if s.dicomPort, err = freePort(); err != nil {
		return nil, err
	}
	if s.httpPort, err = freePort(); err != nil {
		return nil, err
	}
	store, index := filepath.Join(s.dir, "storage"), filepath.Join(s.dir, "index")
	for _, d := range []string{store, index} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Orthanc's defaults otherwise (SQLite index, no storage compression,
	// 128 MB storage cache, DICOMweb "StudiesMetadata": "Full"); auth off
	// for the bench; HTTP compression on so that Accept-Encoding: gzip is
	// honoured as relais does (it only applies when the client asks).
	cfg := map[string]any{
		"Name":                   "webbench",
		"DicomAet":               "ORTHANC",
		"DicomPort":              s.dicomPort,
		"HttpPort":               s.httpPort,
		"StorageDirectory":       store,
		"IndexDirectory":         index,
		"Plugins":                []string{plugin},
		"AuthenticationEnabled":  false,
		"RemoteAccessAllowed":    true,
		"HttpCompressionEnabled": true,
		"KeepAlive":              true,
		"TcpNoDelay":             true,
		"DicomWeb": map[string]any{
			"Enable": true,
			"Root":   "/dicom-web/",
			"Host":   fmt.Sprintf("127.0.0.1:%d", s.httpPort),
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	p := filepath.Join(work, "orthanc.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return nil, err
	}
	s.argv = []string{bin, p}
	s.base = fmt.Sprintf("http://127.0.0.1:%d/dicom-web", s.httpPort)
	s.client = newClient()
	return s, nil
}

// newRelais writes a relais configuration with http.auth: none.
func newRelais(bin, work string, pprof bool) (*server, error) {
	s := &server{name: "relais", display: "relais", ae: "RELAIS", dir: filepath.Join(work, "relais"), readyPath: "/healthz"}
	var err error
	if s.dicomPort, err = freePort(); err != nil {
		return nil, err
	}
	if s.httpPort, err = freePort(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`ae_title: RELAIS
data_dir: %s
listen:
  dicom: 127.0.0.1:%d
  http: 127.0.0.1:%d
http:
  auth: none
log:
  level: warn
`, s.dir, s.dicomPort, s.httpPort)
	p := filepath.Join(work, "relais.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s.argv = []string{bin, "serve", "--config", p}
	if pprof {
		s.argv = append(s.argv, "--pprof")
	}
	s.base = fmt.Sprintf("http://127.0.0.1:%d/dicom-web", s.httpPort)
	s.client = newClient()
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) logPath() string { return filepath.Join(filepath.Dir(s.dir), s.name+".log") }

// start launches the server and waits until its HTTP side answers.
func (s *server) start(timeout time.Duration) error {
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n===== start %d: %v\n", s.starts+1, s.argv)
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = benchEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	runningMu.Lock()
	if stopping {
		runningMu.Unlock()
		logf.Close()
		return fmt.Errorf("interrupted")
	}
	if err := cmd.Start(); err != nil {
		runningMu.Unlock()
		logf.Close()
		return err
	}
	s.cmd, s.exited, s.err = cmd, make(chan struct{}), nil
	s.starts++
	running[s] = true
	runningMu.Unlock()
	exited := s.exited
	go func() {
		s.err = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	deadline := time.Now().Add(timeout)
	url := fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, s.readyPath)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start-up (%v); see %s", s.name, s.err, s.logPath())
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no answer on %s within %v; see %s", s.name, url, timeout, s.logPath())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server's process group (SIGTERM, SIGKILL after 30 s) and
// drops the client's idle connections.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	pg := s.cmd.Process.Pid
	_ = syscall.Kill(-pg, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pg, syscall.SIGKILL)
		<-s.exited
	}
	_ = syscall.Kill(-pg, syscall.SIGKILL)
	runningMu.Lock()
	delete(running, s)
	runningMu.Unlock()
	s.client.CloseIdleConnections()
}

func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// waitDICOM polls with echoscu until the DICOM side answers.
func (s *server) waitDICOM(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cmd := exec.Command("echoscu", "-to", "5", "-aet", "BENCH", "-aec", s.ae, "127.0.0.1", strconv.Itoa(s.dicomPort))
		cmd.Env = benchEnv()
		if cmd.Run() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no C-ECHO answer within %v", s.name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// load sends the files with storescu over one association (not timed).
func (s *server) load(files []string) error {
	if err := s.waitDICOM(60 * time.Second); err != nil {
		return err
	}
	rel := make([]string, len(files))
	for i, f := range files {
		rel[i] = filepath.Base(f)
	}
	args := append([]string{"-aet", "BENCH", "-aec", s.ae, "127.0.0.1", strconv.Itoa(s.dicomPort)}, rel...)
	cmd := exec.Command("storescu", args...)
	cmd.Dir = filepath.Dir(files[0])
	cmd.Env = benchEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("storescu to %s: %v: %s", s.name, err, tail(string(out), 400))
	}
	return nil
}
