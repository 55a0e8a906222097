package dimse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

func findServer(t *testing.T) *dimsetest.Server {
	mux := newMux(nil)
	mux.Handle(dimse.CFind, studyRootFind, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		for i := 0; i < 5; i++ {
			select {
			case <-ctx.Done():
				w.Respond(dimse.Status{Code: dimse.StatusCancel}, nil)
				return
			case <-time.After(20 * time.Millisecond):
			}
			w.Pending(dimse.Status{Code: dimse.StatusPending}, []byte(fmt.Sprintf("match%d", i)))
		}
		w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
	}))
	return dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux})
}

func dialFind(t *testing.T, addr string) (*dimse.Association, dimse.PresentationContext) {
	as, err := dimse.Dial(context.Background(), addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "RELAIS",
		Contexts: []dimse.ProposedContext{{AbstractSyntax: studyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	pc, ok := as.FindContext(studyRootFind, "")
	if !ok {
		t.Fatal("no find context")
	}
	return as, pc
}

func TestFind(t *testing.T) {
	srv := findServer(t)
	as, pc := dialFind(t, srv.Addr)
	defer as.Release(context.Background())
	var got []string
	st, err := as.Find(context.Background(), pc, []byte{8, 0, 0x52, 0, 0, 0, 0, 0}, func(st dimse.Status, id []byte) bool {
		got = append(got, string(id))
		return true
	})
	if err != nil || st.Code != 0 || len(got) != 5 || got[4] != "match4" {
		t.Fatalf("Find: %v %v %q", st, err, got)
	}
	// Stop after the first match: C-CANCEL-RQ, final status Cancel.
	got = nil
	st, err = as.Find(context.Background(), pc, nil, func(st dimse.Status, id []byte) bool {
		got = append(got, string(id))
		return false
	})
	if err != nil || st.Code != dimse.StatusCancel || len(got) != 1 {
		t.Fatalf("cancelled Find: %v %v %q", st, err, got)
	}
	// ctx ending: C-CANCEL-RQ too, and the association stays usable.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	st, err = as.Find(ctx, pc, nil, nil)
	if err != nil || st.Code != dimse.StatusCancel {
		t.Fatalf("Find with ctx timeout: %v %v", st, err)
	}
	st, err = as.Find(context.Background(), pc, nil, nil)
	if err != nil || st.Code != 0 {
		t.Fatalf("Find after cancels: %v %v", st, err)
	}
}
