package main

// QIDO-RS over HTTP: the same index served by a dicomweb.Server on a
// loopback listener, searched by concurrent clients with a mix of study
// queries.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/relais-health/relais/bench/internal/machine"
	"github.com/relais-health/relais/dicomweb"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/fsblob"
)

// qidoKind is one kind of study search: it returns the query string.
type qidoKind struct {
	name string
	gen  func(r *rand.Rand) string
}

func qidoKinds(studies int) []qidoKind {
	base := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	return []qidoKind{
		{"PatientID exact", func(r *rand.Rand) string {
			return "PatientID=" + fmt.Sprintf("PID%07d", r.IntN(studies/2))
		}},
		{"PatientName prefix (DUP*, MAR*...)", func(r *rand.Rand) string {
			return "PatientName=" + url.QueryEscape(surnames[r.IntN(len(surnames))][:3]+"*")
		}},
		{"StudyDate 7-day range", func(r *rand.Rand) string {
			d := base.AddDate(0, 0, r.IntN(5*365))
			return "StudyDate=" + d.Format("20060102") + "-" + d.AddDate(0, 0, 6).Format("20060102")
		}},
		{"AccessionNumber", func(r *rand.Rand) string {
			return "AccessionNumber=" + fmt.Sprintf("A%08d", r.IntN(studies))
		}},
		{"ModalitiesInStudy=CT, limit=100", func(r *rand.Rand) string {
			return "ModalitiesInStudy=CT&limit=100"
		}},
		{"StudyInstanceUID", func(r *rand.Rand) string {
			return "StudyInstanceUID=" + fmt.Sprintf("1.2.826.0.1.3680043.10.1.%d", r.IntN(studies))
		}},
	}
}

type qidoReq struct {
	kind int
	path string
}

type qidoRes struct {
	kind int
	dur  time.Duration
	rows int
	err  error
}

// runQIDO serves ix over HTTP and times n requests of every kind sent by
// `clients` concurrent clients, the kinds interleaved at random.
func runQIDO(ix storage.Index, studies, n, clients int, log *slog.Logger, note string) error {
	tmp, err := os.MkdirTemp("", "findbench-qido-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	blobs, err := fsblob.New(filepath.Join(tmp, "blobs"))
	if err != nil {
		return err
	}
	// The journal, as in a node: every QIDO-RS answer is audited.
	jl, err := journal.Open(filepath.Join(tmp, "journal"), journal.Options{})
	if err != nil {
		return err
	}
	defer jl.Close()
	srv := &dicomweb.Server{Index: ix, Blobs: blobs, Journal: jl, Logger: log, MaxResults: 10000}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The time spent in the handler, per kind (the client sets X-Kind):
	// the client's latency minus connection queueing and the HTTP client.
	kinds := qidoKinds(studies)
	h := srv.Handler()
	var hmu sync.Mutex
	handlerLat := make([][]time.Duration, len(kinds))
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(t)
		var k int
		if _, err := fmt.Sscan(r.Header.Get("X-Kind"), &k); err == nil && k >= 0 && k < len(kinds) {
			hmu.Lock()
			handlerLat[k] = append(handlerLat[k], d)
			hmu.Unlock()
		}
	})}
	go hs.Serve(l)
	defer hs.Shutdown(context.Background())
	base := "http://" + l.Addr().String() + dicomweb.DefaultBasePath + "/studies?"

	r := rand.New(rand.NewPCG(2024, 11))
	var reqs []qidoReq
	for k, kd := range kinds {
		for i := 0; i < n; i++ {
			reqs = append(reqs, qidoReq{k, base + kd.gen(r)})
		}
	}
	r.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })

	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DisableCompression: true}}
	// Warm-up: one request of each kind (connections, first Badger reads).
	for _, kd := range kinds {
		if _, err := qidoGet(client, base+kd.gen(r), -1); err != nil {
			return err
		}
	}
	loadBefore := machine.LoadAvg()
	ch := make(chan qidoReq)
	out := make(chan qidoRes, len(reqs))
	var wg sync.WaitGroup
	t0 := time.Now()
	load0 := machine.Sample()
	self0 := selfCPU()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range ch {
				s := time.Now()
				rows, err := qidoGet(client, q.path, q.kind)
				out <- qidoRes{q.kind, time.Since(s), rows, err}
			}
		}()
	}
	for _, q := range reqs {
		ch <- q
	}
	close(ch)
	wg.Wait()
	wall := time.Since(t0)
	self := selfCPU() - self0
	close(out)

	lat := make([][]time.Duration, len(kinds))
	rows := make([]int, len(kinds))
	var all []time.Duration
	for res := range out {
		if res.err != nil {
			return res.err
		}
		lat[res.kind] = append(lat[res.kind], res.dur)
		rows[res.kind] += res.rows
		all = append(all, res.dur)
	}
	fmt.Printf("\nQIDO-RS over HTTP (dicomweb.Server on loopback, %d concurrent clients, %d requests of each kind interleaved, GOMAXPROCS %d, %s in %s = %.0f requests/s):\n\n",
		clients, n, runtime.GOMAXPROCS(0), fmt.Sprint(len(reqs)), wall.Round(time.Millisecond), float64(len(reqs))/wall.Seconds())
	fmt.Println("| QIDO-RS /studies? | requests | p50 ms | p90 ms | p99 ms | max ms | handler p50 / p99 ms | mean rows |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	var allH []time.Duration
	for k, kd := range kinds {
		line(kd.name, lat[k], handlerLat[k], float64(rows[k])/float64(len(lat[k])))
		allH = append(allH, handlerLat[k]...)
	}
	total := 0
	for _, n := range rows {
		total += n
	}
	line("**all kinds**", all, allH, float64(total)/float64(len(all)))
	busy := machine.Busy(load0, machine.Sample())
	fmt.Printf("\nload average before / after: %s / %s; machine CPU busy during the run: %.0f%% of %d cores, this process (server + clients) %.0f%% (%.2f ms CPU per request)",
		loadBefore, machine.LoadAvg(), 100*busy, runtime.NumCPU(), 100*self.Seconds()/(wall.Seconds()*float64(runtime.NumCPU())), float64(self.Microseconds())/1000/float64(len(reqs)))
	if note != "" {
		fmt.Printf("; %s", note)
	}
	fmt.Println()
	return nil
}

func line(name string, d, h []time.Duration, rows float64) {
	q := func(d []time.Duration, p float64) string {
		if len(d) == 0 {
			return "-"
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		i := int(p*float64(len(d))+0.999999) - 1
		return fmt.Sprintf("%.2f", float64(d[min(max(i, 0), len(d)-1)].Microseconds())/1000)
	}
	fmt.Printf("| %s | %d | %s | %s | %s | %s | %s / %s | %.1f |\n", name, len(d), q(d, 0.5), q(d, 0.9), q(d, 0.99), q(d, 1), q(h, 0.5), q(h, 0.99), rows)
}

var studyUIDAttr = []byte(`"0020000D"`)

// qidoGet sends one QIDO-RS request, reads the whole answer and counts the
// studies in it (no JSON decoding).
func qidoGet(c *http.Client, u string, kind int) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("X-Kind", fmt.Sprint(kind))
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return bytes.Count(b, studyUIDAttr), nil
	case http.StatusNoContent:
		return 0, nil
	}
	return 0, fmt.Errorf("GET %s: HTTP %d: %.200s", u, resp.StatusCode, b)
}
