// Package s3test starts a real, local S3 server (versitygw with its posix
// backend) for tests of S3-backed code.
//
// versitygw must be installed:
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// It is looked up in $PATH, then in $(go env GOPATH)/bin. If it is missing,
// Start FAILS the test (it never skips: an S3 backend that is not tested is
// not a backend we ship).
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relais-health/relais/storage/s3blob"
)

// Credentials of the root user of the test server.
const (
	AccessKey = "relaistest"
	SecretKey = "relaistestsecret"
)

// Binary returns the path of versitygw, or an error explaining how to
// install it.
func Binary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.SplitList(gp)...)
	}
	dirs = append(dirs, build.Default.GOPATH)
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.SplitList(strings.TrimSpace(string(out)))...)
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "bin", "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("versitygw not found in $PATH nor in $(go env GOPATH)/bin; install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
}

// Server is a running versitygw.
type Server struct {
	// Endpoint is host:port.
	Endpoint string
	// Dir is the posix root (buckets are its subdirectories).
	Dir string

	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 64<<10 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start starts versitygw on a free local port with a fresh posix root and
// returns a Config for bucket "relais-test" (created by s3blob.New). The
// server is stopped at the end of the test.
func Start(t testing.TB) s3blob.Config {
	t.Helper()
	srv := StartServer(t)
	return s3blob.Config{
		Endpoint:  srv.Endpoint,
		Bucket:    "relais-test",
		Region:    "us-east-1",
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		Secure:    false,
	}
}

// StartServer starts versitygw and returns it; see Start.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		srv, err := start(bin, t.TempDir())
		if err == nil {
			t.Cleanup(srv.Stop)
			return srv
		}
		lastErr = err
	}
	t.Fatalf("s3test: cannot start versitygw: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin,
		"--access", AccessKey, "--secret", SecretKey,
		"--port", addr, "--quiet",
		"posix", dir)
	stderr := &syncBuffer{}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	srv := &Server{Endpoint: addr, Dir: dir, cmd: cmd, stderr: stderr, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(srv.exited) }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-srv.exited:
			return nil, fmt.Errorf("versitygw exited: %s", stderr.String())
		default:
		}
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return srv, nil // any HTTP answer (403 without credentials) means ready
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Stop()
	return nil, fmt.Errorf("versitygw did not answer on %s within 15s: %s", addr, stderr.String())
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s).
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-s.exited:
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Log returns what the server printed so far (for failing tests).
func (s *Server) Log() string { return s.stderr.String() }
