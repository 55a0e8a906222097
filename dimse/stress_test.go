package dimse_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

// TestConcurrentAssociations: many associations storing at once, each
// with its own data, all bytes accounted for.
func TestConcurrentAssociations(t *testing.T) {
	sink := newSink()
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(sink), MaxPDULength: 32768})
	const n, per = 16, 5
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			as, err := dimse.Dial(context.Background(), srv.Addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "RELAIS", Contexts: storeContexts(), MaxPDULength: 8192})
			if err != nil {
				errc <- err
				return
			}
			pc, _ := as.FindContext(ctImageStorage, "")
			for j := 0; j < per; j++ {
				size := int64(1000*i + 77777*j)
				st, err := as.Store(context.Background(), pc, ctImageStorage, fmt.Sprintf("1.2.%d.%d", i, j), &patterned{n: size})
				if err != nil || st.Code != 0 {
					errc <- fmt.Errorf("store %d/%d: %v %v", i, j, st, err)
					return
				}
			}
			errc <- as.Release(context.Background())
		}(i)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Error(err)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for i := 0; i < n; i++ {
		for j := 0; j < per; j++ {
			size := int64(1000*i + 77777*j)
			uid := fmt.Sprintf("1.2.%d.%d", i, j)
			if sink.sizes[uid] != size || sink.got[uid] != hashOf(size) {
				t.Errorf("%s: %d bytes", uid, sink.sizes[uid])
			}
		}
	}
}

// TestNoGoroutineLeak: associations ending in every way leave no
// goroutine behind once the server is shut down.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		srv := &dimse.Server{AETitle: "RELAIS", Handler: newMux(newSink()), ARTIMTimeout: 300 * time.Millisecond}
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		addr := l.Addr().String()
		for i := 0; i < 3; i++ {
			as := dial(t, addr, 0)
			as.Echo(context.Background())
			if i == 0 {
				as.Abort()
			} else {
				as.Release(context.Background())
			}
		}
		p := dimsetest.DialPeer(t, addr)
		p.Send([]byte{0xFF, 0, 0, 0, 0, 0})
		p.Expect(dimse.PDUAbort)
		p.Close()
		silent := dimsetest.DialPeer(t, addr) // closed by Shutdown
		_ = silent
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, dimse.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		silent.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+1 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, had %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdownWaitsForAssociations: Shutdown returns nil once the
// association in progress is released.
func TestShutdownWaitsForAssociations(t *testing.T) {
	s := &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil)}
	srv := dimsetest.NewServer(t, s)
	as := dial(t, srv.Addr, 0)
	go func() {
		time.Sleep(200 * time.Millisecond)
		as.Echo(context.Background())
		as.Release(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Errorf("Shutdown did not wait")
	}
	if _, err := dimse.Dial(context.Background(), srv.Addr, dimse.DialOptions{}); err == nil {
		t.Errorf("Dial after Shutdown succeeded")
	}
}
