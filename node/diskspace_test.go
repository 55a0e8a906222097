package node

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/internal/testdicom"
	"golang.org/x/sys/unix"
)

// TestDiskFull: below min_free_space an open association's C-STOREs get
// A700 and new associations are refused (transient); when space comes
// back, both work again. Nothing acknowledged is at risk: the refused
// instance is not stored.
func TestDiskFull(t *testing.T) {
	n := startNode(t, nil)
	var free atomic.Uint64
	free.Store(10 << 30)
	n.disk.mu.Lock()
	n.disk.statfs = func(_ string, st *unix.Statfs_t) error {
		st.Bsize = 4096
		st.Bavail = free.Load() / 4096
		return nil
	}
	n.disk.min = 1 << 30
	n.disk.mu.Unlock()
	n.disk.recheck()
	ctx := context.Background()
	dial := func() (*dimse.Association, error) {
		return dimse.Dial(ctx, n.DICOMAddr().String(), dimse.DialOptions{CallingAE: "CT", CalledAE: "RELAIS",
			Contexts: []dimse.ProposedContext{{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}})
	}
	store := func(a *dimse.Association) (uint16, string) {
		c := &testdicom.CT{PatientID: "D1", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(), Instance: 1}
		ds, _ := c.Dataset()
		pc, _ := a.FindContext(dicom.CTImageStorage, dicom.ExplicitVRLittleEndian)
		st, err := a.Store(ctx, pc, dicom.CTImageStorage, c.SOPUID, bytes.NewReader(ds))
		if err != nil {
			t.Fatal(err)
		}
		return st.Code, c.SOPUID
	}
	a, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := store(a); code != dimse.StatusSuccess {
		t.Fatalf("with room: %04X", code)
	}
	free.Store(100 << 20)
	n.disk.recheck()
	code, sop := store(a)
	if code != 0xA700 {
		t.Fatalf("disk full: C-STORE status %04X, want A700", code)
	}
	if _, err := n.Index.GetInstance(ctx, sop); err == nil {
		t.Fatal("instance refused for lack of space was stored")
	}
	a.Release(ctx)
	var rj *dimse.Rejection
	if _, err := dial(); !errors.As(err, &rj) || rj.Result != dimse.RejectedTransient {
		t.Fatalf("disk full: association %v, want a transient rejection", err)
	}
	free.Store(10 << 30)
	n.disk.recheck()
	a, err = dial()
	if err != nil {
		t.Fatalf("space back: %v", err)
	}
	defer a.Release(ctx)
	if code, _ := store(a); code != dimse.StatusSuccess {
		t.Fatalf("space back: %04X", code)
	}
}
