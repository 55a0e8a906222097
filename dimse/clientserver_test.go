package dimse_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

const (
	ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"
	studyRootFind  = "1.2.840.10008.5.1.4.1.2.2.1"
)

// storeSink is a C-STORE handler that hashes what it receives.
type storeSink struct {
	mu    sync.Mutex
	got   map[string][32]byte
	sizes map[string]int64
}

func newSink() *storeSink { return &storeSink{got: map[string][32]byte{}, sizes: map[string]int64{}} }

func (s *storeSink) ServeDIMSE(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Data)
	if err != nil {
		w.Respond(dimse.Status{Code: dimse.StatusOutOfResources, Comment: err.Error()}, nil)
		return
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	s.mu.Lock()
	s.got[r.Command.AffectedSOPInstanceUID] = sum
	s.sizes[r.Command.AffectedSOPInstanceUID] = n
	s.mu.Unlock()
	w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
}

func newMux(sink dimse.Handler) *dimse.ServeMux {
	mux := dimse.NewServeMux()
	mux.Handle(dimse.CEcho, dimse.VerificationSOPClass, dimse.EchoHandler)
	if sink != nil {
		mux.Handle(dimse.CStore, ctImageStorage, sink)
	}
	return mux
}

func storeContexts() []dimse.ProposedContext {
	return []dimse.ProposedContext{
		{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}},
		{AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian, dimse.ExplicitVRLittleEndian}},
	}
}

func dial(t testing.TB, addr string, maxPDU uint32) *dimse.Association {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	as, err := dimse.Dial(ctx, addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "RELAIS", Contexts: storeContexts(), MaxPDULength: maxPDU})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return as
}

func TestEchoAndRelease(t *testing.T) {
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil)})
	as := dial(t, srv.Addr, 0)
	// Storage is not served by the mux: only Verification accepted.
	if got := len(as.Accepted()); got != 1 {
		t.Fatalf("accepted %d contexts, want 1: %+v", got, as.Accepted())
	}
	for i := 0; i < 3; i++ {
		st, err := as.Echo(context.Background())
		if err != nil || st.Code != dimse.StatusSuccess {
			t.Fatalf("Echo: %v %v", st, err)
		}
	}
	if err := as.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationReleased))
	if _, err := as.Echo(context.Background()); !errors.Is(err, dimse.ErrAssociationEnded) {
		t.Fatalf("Echo after release: %v", err)
	}
}

// patterned is a deterministic pseudo-random data source that is not held
// in memory.
type patterned struct {
	n, off int64
	x      uint64
}

func (p *patterned) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		p.x = p.x*6364136223846793005 + 1442695040888963407
		b[i] = byte(p.x >> 56)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func hashOf(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, &patterned{n: n})
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func TestStoreSizesAndPDULengths(t *testing.T) {
	for _, tc := range []struct {
		name             string
		serverMax, clMax uint32
		size             int64
	}{
		{"1KB/default", 0, 0, 1000},
		{"10MB/default", 0, 0, 10 << 20},
		{"10MB/small4K", 4096, 4096, 10<<20 + 3},
		{"3MB/large1M", 1 << 20, 1 << 20, 3<<20 + 1},
		{"odd/server4K-client1M", 4096, 1 << 20, 100001},
		{"empty", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newSink()
			srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(sink), MaxPDULength: tc.serverMax})
			as := dial(t, srv.Addr, tc.clMax)
			defer as.Release(context.Background())
			pc, ok := as.FindContext(ctImageStorage, "")
			if !ok {
				t.Fatal("no storage context")
			}
			if pc.TransferSyntax != dimse.ExplicitVRLittleEndian {
				t.Errorf("negotiated %s, want server preference explicit LE", pc.TransferSyntax)
			}
			st, err := as.Store(context.Background(), pc, ctImageStorage, "1.2.3.4", &patterned{n: tc.size})
			if err != nil || st.Code != dimse.StatusSuccess {
				t.Fatalf("Store: %v %v", st, err)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if sink.sizes["1.2.3.4"] != tc.size || sink.got["1.2.3.4"] != hashOf(tc.size) {
				t.Fatalf("received %d bytes, want %d (hash match %v)", sink.sizes["1.2.3.4"], tc.size, sink.got["1.2.3.4"] == hashOf(tc.size))
			}
		})
	}
}

func TestStoreStreamsWithBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("300 MB transfer")
	}
	sink := newSink()
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(sink)})
	as := dial(t, srv.Addr, 0)
	defer as.Release(context.Background())
	pc, _ := as.FindContext(ctImageStorage, "")
	const size = 300 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				peak = m.HeapInuse
			}
		}
	}()
	start := time.Now()
	st, err := as.Store(context.Background(), pc, ctImageStorage, "1.2.3.300", &patterned{n: size})
	close(stop)
	wg.Wait()
	if err != nil || st.Code != dimse.StatusSuccess {
		t.Fatalf("Store: %v %v", st, err)
	}
	el := time.Since(start)
	delta := int64(peak) - int64(before.HeapInuse)
	t.Logf("300 MB in %v (%.0f MB/s incl. generating data), HeapInuse delta peak %.1f MiB", el, float64(size)/el.Seconds()/1e6, float64(delta)/(1<<20))
	if delta > 64<<20 {
		t.Errorf("HeapInuse grew by %d MiB", delta>>20)
	}
	if sink.sizes["1.2.3.300"] != size || sink.got["1.2.3.300"] != hashOf(size) {
		t.Fatalf("data mismatch: %d bytes", sink.sizes["1.2.3.300"])
	}
}

var _ = bytes.Equal
