package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/internal/testdicom"
)

// startNode runs a node in-process on loopback ports.
func startNode(t *testing.T, mod func(*config.Config)) *Node {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen.DICOM = "127.0.0.1:0"
	cfg.Listen.HTTP = "127.0.0.1:0"
	if mod != nil {
		mod(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("node did not stop")
		}
		n.Close()
	})
	return n
}

// TestCStoreStatuses drives the C-STORE SCP with our own SCU, which can send
// what no well-behaved modality sends, and checks each DIMSE status.
func TestCStoreStatuses(t *testing.T) {
	n := startNode(t, nil)
	ctx := context.Background()
	a, err := dimse.Dial(ctx, n.DICOMAddr().String(), dimse.DialOptions{
		CallingAE: "TESTSCU", CalledAE: "RELAIS",
		Contexts: []dimse.ProposedContext{
			{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
			{AbstractSyntax: dicom.MRImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
			{AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	ctPC, ok := a.FindContext(dicom.CTImageStorage, dicom.ExplicitVRLittleEndian)
	if !ok {
		t.Fatal("CT context not accepted")
	}
	mrPC, _ := a.FindContext(dicom.MRImageStorage, dicom.ExplicitVRLittleEndian)
	mk := func(mod func(*testdicom.CT)) (*testdicom.CT, []byte) {
		c := &testdicom.CT{PatientName: "Status^Test", PatientID: "S1", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(), Instance: 1}
		if mod != nil {
			mod(c)
		}
		ds, err := c.Dataset()
		if err != nil {
			t.Fatal(err)
		}
		return c, ds
	}
	good, goodDS := mk(nil)
	_, noStudy := mk(func(c *testdicom.CT) { c.StudyUID = "" })
	mismatch, mismatchDS := mk(nil)
	cases := []struct {
		name     string
		pc       dimse.PresentationContext
		class    string
		instance string
		data     []byte
		want     uint16
	}{
		{"stored", ctPC, dicom.CTImageStorage, good.SOPUID, goodDS, dimse.StatusSuccess},
		{"duplicate, identical: kept, success", ctPC, dicom.CTImageStorage, good.SOPUID, goodDS, dimse.StatusSuccess},
		{"SOP instance mismatch", ctPC, dicom.CTImageStorage, testdicom.UID(), mismatchDS, dimse.StatusSOPInstanceMismatch},
		{"truncated data set", ctPC, dicom.CTImageStorage, mismatch.SOPUID, mismatchDS[:len(mismatchDS)/2], dimse.StatusCannotUnderstand},
		{"garbage", ctPC, dicom.CTImageStorage, testdicom.UID(), bytes.Repeat([]byte{0xFE}, 4096), dimse.StatusCannotUnderstand},
		{"no Study Instance UID", ctPC, dicom.CTImageStorage, func() string { c, _ := mk(nil); return c.SOPUID }(), noStudy, dimse.StatusSOPInstanceMismatch},
		{"announced MR, data set says CT: stored with warning", mrPC, dicom.MRImageStorage, mismatch.SOPUID, mismatchDS, dimse.StatusWarningDataSetMismatch},
	}
	// The no-study case announces a UID that differs from its data set's:
	// rebuild it so only the missing study UID is wrong.
	c, ds := mk(func(c *testdicom.CT) { c.StudyUID = "" })
	cases[5].instance, cases[5].data = c.SOPUID, ds
	for _, tc := range cases {
		st, err := a.Store(ctx, tc.pc, tc.class, tc.instance, bytes.NewReader(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if st.Code != tc.want {
			t.Errorf("%s: status %04X (%s), want %04X", tc.name, st.Code, st.Comment, tc.want)
		}
		if st.Code != dimse.StatusSuccess && st.Comment == "" {
			t.Errorf("%s: status %04X without an error comment", tc.name, st.Code)
		}
	}
	// The association survived every refusal: an echo still works.
	if st, err := a.Echo(ctx); err != nil || st.Code != dimse.StatusSuccess {
		t.Errorf("echo after refusals: %04X %v", st.Code, err)
	}
	st, _ := n.Index.Stats(ctx)
	if st.Instances != 2 {
		t.Errorf("index holds %d instances, want 2 (the good one and the warned one)", st.Instances)
	}
}
