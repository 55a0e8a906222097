package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/retrieve"
)

// scrape returns the node's /metrics exposition.
func scrape(t *testing.T, n *Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestQueryRetrieveMetrics(t *testing.T) {
	dest := startDestination(t, 0, nil)
	n := startNode(t, func(c *config.Config) {
		c.RemoteAEs = []config.RemoteAE{dest.remote("dest", "DEST", 1)}
	})
	s := storeStudy(t, n, 4, dicom.ExplicitVRLittleEndian)

	a := dialFind(t, n)
	pc, ok := a.FindContext(query.StudyRootFind, dicom.ExplicitVRLittleEndian)
	if !ok {
		t.Fatal("FIND context not accepted")
	}
	id := identifier(t, kv{dicom.TagQueryRetrieveLevel, "CS", "SERIES"}, kv{dicom.TagStudyInstanceUID, "UI", s.study}, kv{dicom.TagSeriesInstanceUID, "UI", ""})
	st, err := a.Find(context.Background(), pc, id, func(dimse.Status, []byte) bool { return true })
	if err != nil || st.Code != dimse.StatusSuccess {
		t.Fatalf("C-FIND: %v %v", st, err)
	}
	final, _ := moveSCU(t, context.Background(), n, "VIEWER", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, nil)
	if final.Status.Code != dimse.StatusSuccess {
		t.Fatalf("C-MOVE: %v", final.Status)
	}
	final, _ = moveSCU(t, context.Background(), n, "VIEWER", retrieve.StudyRootMove, "NOWHERE", retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, nil)
	if final.Status.Code != dimse.StatusMoveDestinationUnknown {
		t.Fatalf("C-MOVE to an unknown destination: %v", final.Status)
	}
	// A C-GET whose SCU takes JPEG only: every sub-operation fails.
	res, err := retrieve.Get(context.Background(), n.DICOMAddr().String(), retrieve.GetOptions{
		ClientOptions:  retrieve.ClientOptions{CallingAE: "VIEWER", CalledAE: "RELAIS"},
		StorageClasses: []string{dicom.CTImageStorage}, TransferSyntaxes: [][]string{{dicom.JPEGBaseline8Bit}},
	}, retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, func(context.Context, *retrieve.Received) error { return nil })
	if err != nil || res.Status.Code != dimse.StatusWarningSubOpsFailed {
		t.Fatalf("C-GET: %v %v", res.Status, err)
	}

	got := scrape(t, n)
	for _, want := range []string{
		`relais_queries_total{level="SERIES",model="study",status="0000"} 1`,
		`relais_query_results_total{level="SERIES",model="study"} 2`,
		`relais_query_duration_seconds_count{level="SERIES",model="study"} 1`,
		`relais_retrieves_total{op="move",status="0000"} 1`,
		`relais_retrieves_total{op="move",status="A801"} 1`,
		`relais_retrieve_suboperations_total{destination="DEST",op="move",outcome="completed"} 4`,
		`relais_retrieves_total{op="get",status="B000"} 1`,
		`relais_retrieve_suboperations_total{destination="VIEWER",op="get",outcome="failed"} 4`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(got, `op="move",outcome="failed"`) || strings.Contains(got, `op="get",outcome="completed"`) {
		t.Errorf("/metrics counts sub-operations that did not happen:\n%s", got)
	}
}
