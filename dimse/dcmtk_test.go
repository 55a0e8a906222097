package dimse_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

const secondaryCapture = "1.2.840.10008.5.1.4.1.1.7"

func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not found: install dcmtk (apt-get install dcmtk); .ci/run does", n)
		}
	}
}

// tool runs a dcmtk tool with TCP_NODELAY=1 (without it dcmtk waits on
// Nagle's algorithm).
func tool(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	return cmd
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := tool(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dicomFile is a test DICOM file and what the test needs to know of it.
type dicomFile struct {
	path, ts string
	dataset  []byte // the data set after the file meta information
}

// readPart10 splits a Part 10 file: the meta group length (0002,0000) is
// the first element after the 128-byte preamble and "DICM", explicit VR
// little endian, so the data set starts at 132 + 12 + its value.
func readPart10(t *testing.T, path string) dicomFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 144 || string(b[128:132]) != "DICM" || !bytes.Equal(b[132:138], []byte{2, 0, 0, 0, 'U', 'L'}) {
		t.Fatalf("%s: not a Part 10 file with a meta group length", path)
	}
	gl := binary.LittleEndian.Uint32(b[140:144])
	meta := b[144 : 144+gl]
	off := 144 + int(gl)
	// Transfer Syntax UID (0002,0010) from the meta group.
	ts := ""
	for p := 0; p+8 <= len(meta); {
		g, e := binary.LittleEndian.Uint16(meta[p:]), binary.LittleEndian.Uint16(meta[p+2:])
		vr := string(meta[p+4 : p+6])
		var n, hdr int
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN":
			n, hdr = int(binary.LittleEndian.Uint32(meta[p+8:])), 12
		default:
			n, hdr = int(binary.LittleEndian.Uint16(meta[p+6:])), 8
		}
		if g == 2 && e == 0x10 {
			ts = strings.TrimRight(string(meta[p+hdr:p+hdr+n]), "\x00 ")
		}
		p += hdr + n
	}
	return dicomFile{path: path, ts: ts, dataset: b[off:]}
}

var (
	fixturesOnce sync.Once
	fixtures     map[string]dicomFile // by name: jpeg, explicit, implicit, bigendian
	fixturesErr  error
)

// makeFixtures builds DICOM files with dcmtk from a JPEG made here:
// img2dcm (JPEG baseline), dcmdjpeg (explicit LE), dcmconv +ti/+tb.
func makeFixtures(t *testing.T) map[string]dicomFile {
	t.Helper()
	needTool(t, "img2dcm", "dcmdjpeg", "dcmconv")
	fixturesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dimse-fixtures")
		if err != nil {
			fixturesErr = err
			return
		}
		im := image.NewGray(image.Rect(0, 0, 512, 400)) // 200 KB uncompressed: many PDUs
		for y := 0; y < 400; y++ {
			for x := 0; x < 512; x++ {
				im.SetGray(x, y, color.Gray{uint8(x*x + 3*y)})
			}
		}
		var jb bytes.Buffer
		jpeg.Encode(&jb, im, nil)
		p := func(n string) string { return filepath.Join(dir, n) }
		os.WriteFile(p("a.jpg"), jb.Bytes(), 0o644)
		steps := [][]string{
			{"img2dcm", p("a.jpg"), p("jpeg.dcm")},
			{"dcmdjpeg", p("jpeg.dcm"), p("explicit.dcm")},
			{"dcmconv", "+ti", p("explicit.dcm"), p("implicit.dcm")},
			{"dcmconv", "+tb", p("explicit.dcm"), p("bigendian.dcm")},
		}
		for _, s := range steps {
			if out, err := tool(context.Background(), s[0], s[1:]...).CombinedOutput(); err != nil {
				fixturesErr = fmt.Errorf("%v: %v\n%s", s, err, out)
				return
			}
		}
		fixtures = map[string]dicomFile{}
		for _, n := range []string{"jpeg", "explicit", "implicit", "bigendian"} {
			fixtures[n] = readPart10(t, p(n+".dcm"))
		}
	})
	if fixturesErr != nil {
		t.Fatal(fixturesErr)
	}
	return fixtures
}

func hostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}

func TestDcmtkEchoscu(t *testing.T) {
	needTool(t, "echoscu")
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil)})
	h, p := hostPort(srv.Addr)
	run(t, "echoscu", "-aet", "ECHOSCU", "-aec", "RELAIS", h, p)
	ev := srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationAccepted))
	if ev.Assoc.CallingAE != "ECHOSCU" || !strings.HasPrefix(ev.Assoc.ImplementationVersionName, "OFFIS_DCMTK") {
		t.Errorf("association info: %+v", ev.Assoc)
	}
	srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationReleased))
}

// fileSink writes each received data set to a file named after the
// transfer syntax it arrived in.
type fileSink struct {
	dir string
	mu  sync.Mutex
	got map[string]string // ts → path
}

func (s *fileSink) ServeDIMSE(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	f, err := os.CreateTemp(s.dir, "rx-*.bin")
	if err != nil {
		w.Respond(dimse.Status{Code: dimse.StatusOutOfResources, Comment: err.Error()}, nil)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, r.Data); err != nil {
		w.Respond(dimse.Status{Code: dimse.StatusOutOfResources, Comment: err.Error()}, nil)
		return
	}
	s.mu.Lock()
	s.got[r.Context.TransferSyntax] = f.Name()
	s.mu.Unlock()
	w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
}

func TestDcmtkStorescu(t *testing.T) {
	needTool(t, "storescu")
	fx := makeFixtures(t)
	for _, name := range []string{"jpeg", "explicit", "implicit", "bigendian"} {
		t.Run(name, func(t *testing.T) {
			f := fx[name]
			sink := &fileSink{dir: t.TempDir(), got: map[string]string{}}
			mux := newMux(nil)
			mux.Handle(dimse.CStore, secondaryCapture, sink)
			// The file's syntax first in our preference, so storescu sends
			// the file's bytes unchanged.
			srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux, MaxPDULength: 8192,
				TransferSyntaxes: append([]string{f.ts}, dimse.DefaultTransferSyntaxes...)})
			if name != "jpeg" && len(f.dataset) < 100_000 {
				t.Fatalf("fixture too small to need many PDUs: %d", len(f.dataset))
			}
			h, p := hostPort(srv.Addr)
			args := []string{"-aet", "STORESCU", "-aec", "RELAIS"}
			if name == "jpeg" {
				args = append(args, "-xy") // propose JPEG baseline for 8-bit data
			}
			run(t, "storescu", append(args, h, p, f.path)...)
			ev := srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationAccepted))
			// storescu proposes every storage SOP class it knows; only ours
			// (and Verification) are accepted, the rest rejected one by one.
			if n := len(ev.Assoc.Contexts); n == 0 || n > 4 {
				t.Errorf("accepted %d contexts: %s", n, ev.Detail)
			}
			t.Logf("%s: %s %+v", name, ev.Detail, ev.Assoc.Contexts)
			sink.mu.Lock()
			path := sink.got[f.ts]
			sink.mu.Unlock()
			if path == "" {
				t.Fatalf("nothing received in %s; got %v", f.ts, sink.got)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, f.dataset) {
				t.Fatalf("received %d bytes, file data set has %d; equal=%v", len(got), len(f.dataset), bytes.Equal(got, f.dataset))
			}
		})
	}
}

func TestDcmtkStorescuUnsupportedClassRejectedAlone(t *testing.T) {
	needTool(t, "storescu", "dcmodify")
	fx := makeFixtures(t)
	dir := t.TempDir()
	other := filepath.Join(dir, "other.dcm")
	data, _ := os.ReadFile(fx["explicit"].path)
	os.WriteFile(other, data, 0o644)
	// Make it an Ultrasound image, a class the server does not serve.
	run(t, "dcmodify", "-nb", "-m", "(0008,0016)=1.2.840.10008.5.1.4.1.1.6.1", "-m", "(0008,0018)=1.2.3.999", other)
	sink := &fileSink{dir: t.TempDir(), got: map[string]string{}}
	mux := newMux(nil)
	mux.Handle(dimse.CStore, secondaryCapture, sink)
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux})
	h, p := hostPort(srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -R: propose only the classes of the files given.
	out, _ := tool(ctx, "storescu", "-R", "-aet", "STORESCU", "-aec", "RELAIS", h, p, fx["explicit"].path, other).CombinedOutput()
	ev := srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationAccepted))
	for _, pc := range ev.Assoc.Contexts {
		if pc.AbstractSyntax != secondaryCapture {
			t.Errorf("accepted %+v", pc)
		}
	}
	if len(ev.Assoc.Contexts) != 2 || !strings.HasPrefix(ev.Detail, "2 of 4") {
		t.Fatalf("accepted %+v (%s)\n%s", ev.Assoc.Contexts, ev.Detail, out)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) != 1 {
		t.Fatalf("stored %v\n%s", sink.got, out)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p := hostPort(l.Addr().String())
	return p
}

func TestDcmtkStorescp(t *testing.T) {
	needTool(t, "storescp")
	fx := makeFixtures(t)
	out := t.TempDir()
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := tool(ctx, "storescp", "--fork", "+B", "+xa", "-aet", "STORESCP", "-od", out, port)
	logf, err := os.Create(filepath.Join(t.TempDir(), "storescp.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := logText{logf}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 2 * time.Second
	defer func() { cancel(); cmd.Wait() }()
	addr := "127.0.0.1:" + port
	var as *dimse.Association
	for i := 0; i < 100; i++ {
		as, err = dimse.Dial(context.Background(), addr, dimse.DialOptions{CallingAE: "RELAIS", CalledAE: "STORESCP",
			Contexts: []dimse.ProposedContext{
				{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}},
				{AbstractSyntax: secondaryCapture, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}},
				{AbstractSyntax: secondaryCapture, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.50"}},
			}, MaxPDULength: 4096})
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Dial storescp: %v\n%s", err, log.String())
	}
	defer as.Abort()
	if st, err := as.Echo(context.Background()); err != nil || st.Code != 0 {
		t.Fatalf("Echo: %v %v", st, err)
	}
	for _, name := range []string{"explicit", "jpeg"} {
		f := fx[name]
		pc, ok := as.FindContext(secondaryCapture, f.ts)
		if !ok {
			t.Fatalf("no context for %s: %+v", f.ts, as.Accepted())
		}
		uid := "1.2.826.0.1.3680043.9.9999." + fmt.Sprint(len(name))
		// storescp names files after the SOP instance UID of the command;
		// the data set keeps its own, which is fine in bit-preserving mode.
		st, err := as.Store(context.Background(), pc, secondaryCapture, uid, bytes.NewReader(f.dataset))
		if err != nil || st.Code != 0 {
			t.Fatalf("Store %s: %v %v\n%s", name, st, err, log.String())
		}
		matches, _ := filepath.Glob(filepath.Join(out, "*"+uid+"*"))
		if len(matches) != 1 {
			entries, _ := os.ReadDir(out)
			t.Fatalf("storescp files for %s: %v (dir: %v)\n%s", uid, matches, entries, log.String())
		}
		got := readPart10(t, matches[0])
		if got.ts != f.ts || !bytes.Equal(got.dataset, f.dataset) {
			t.Fatalf("%s: storescp wrote %d bytes in %s, sent %d in %s", name, len(got.dataset), got.ts, len(f.dataset), f.ts)
		}
	}
	if err := as.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

type logText struct{ f *os.File }

func (l logText) String() string { b, _ := os.ReadFile(l.f.Name()); return string(b) }

func TestDcmtkEchoscuAbortAndRepeat(t *testing.T) {
	needTool(t, "echoscu")
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil)})
	h, p := hostPort(srv.Addr)
	run(t, "echoscu", "--repeat", "3", "--abort", "-pdu", "4096", "-aec", "RELAIS", h, p)
	ev := srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationAborted))
	if !ev.ByPeer || ev.AbortSource != uint8(dimse.AbortServiceUser) || ev.Assoc.PeerMaxPDULength != 4096 {
		t.Errorf("event %+v assoc %+v", ev, ev.Assoc)
	}
}

func TestDcmtkStorescuManyFilesOneAssociation(t *testing.T) {
	needTool(t, "storescu")
	fx := makeFixtures(t)
	sink := newSink()
	mux := newMux(nil)
	mux.Handle(dimse.CStore, secondaryCapture, sink)
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux, MaxPDULength: 8192})
	h, p := hostPort(srv.Addr)
	var files []string
	for _, n := range []string{"explicit", "implicit", "bigendian", "explicit", "implicit"} {
		files = append(files, fx[n].path)
	}
	run(t, "storescu", append([]string{"-aec", "RELAIS", "-pdu", "16384", h, p}, files...)...)
	srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationReleased))
	if n := len(srv.Events()); n != 2 { // accepted, released
		t.Errorf("events: %+v", srv.Events())
	}
}
