// Command worklistbench measures the time from the last image of a STAT
// study acknowledged (storescu's last C-STORE response) to the item
// visible on the reader's open worklist: an `item` event on
// /api/worklist/events (Server-Sent Events, as the web app listens),
// assigned to the reader on call. The route is immediate (the stable-study
// timer is excluded) and its pool an on-call rota whose night shift covers
// the injected clock (RELAIS_CLOCK).
//
//	go run ./bench/worklistbench -runs 50
//
// It needs dcmtk's storescu and builds relais from ./cmd/relais unless
// -relais is given. With -n > 1 the item usually appears before the last
// image is acknowledged (an immediate route makes the study ready at its
// first image): the figures are then negative, and "first ack → visible"
// is the path's latency.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/internal/testdicom"
)

const ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//relais bench//EN\r\n" +
	"BEGIN:VEVENT\r\nUID:pds-nuit\r\nDTSTART;TZID=Europe/Paris:20261101T200000\r\nDTEND;TZID=Europe/Paris:20261102T080000\r\n" +
	"RRULE:FREQ=DAILY\r\nSUMMARY:PDS nuit\r\nATTENDEE;CN=Dr Claire Martin:mailto:cmartin@telerad.example\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

func main() {
	runs := flag.Int("runs", 30, "STAT studies sent (one storescu each)")
	n := flag.Int("n", 1, "instances per study")
	relais := flag.String("relais", "", "relais binary (default: go build ./cmd/relais)")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.Parse()
	if err := run(*runs, *n, *relais, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "worklistbench:", err)
		os.Exit(1)
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func run(runs, n int, bin string, keep bool) error {
	work, err := os.MkdirTemp("", "worklistbench")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if bin == "" {
		bin = filepath.Join(work, "relais")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/relais").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	data := filepath.Join(work, "data")
	tok, err := exec.Command(bin, "token", "create", "--data", data, "--user", "cmartin", "--role", "radiologist").Output()
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	token := strings.TrimSpace(string(tok))
	if err := os.WriteFile(filepath.Join(work, "pds.ics"), []byte(ics), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`ae_title: RELAIS
calendars:
  pds: {ics: %s}
routes:
  - name: stroke
    when: stroke()
    priority: STAT
    mode: immediate
    ready: true
    pool: pds
organisations:
  teleradio: {finess: "750000001", name: "Téléradiologie"}
professionals:
  dr-martin: {user: cmartin, rpps: "10001234567", given: "Claire", family: "MARTIN", organisation: teleradio}
log: {level: warn}
`, filepath.Join(work, "pds.ics"))
	cfgPath := filepath.Join(work, "relais.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	dport, hport := freePort(), freePort()
	srv := exec.Command(bin, "serve", "--data", data, "--config", cfgPath,
		"--dicom-addr", fmt.Sprintf("127.0.0.1:%d", dport), "--http-addr", fmt.Sprintf("127.0.0.1:%d", hport))
	srv.Env = append(os.Environ(), "RELAIS_CLOCK=2026-11-24T03:00:00+01:00")
	logf, _ := os.Create(filepath.Join(work, "relais.log"))
	defer logf.Close()
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", hport)
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 400 {
			b, _ := os.ReadFile(filepath.Join(work, "relais.log"))
			return fmt.Errorf("relais not healthy:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The reader's open worklist: an SSE subscriber.
	seen := map[string]time.Time{}
	var mu sync.Mutex
	arrived := make(chan string, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rq, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/worklist/events", nil)
	rq.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(rq)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("events: HTTP %s: %s", resp.Status, b)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			d, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			now := time.Now()
			var it struct {
				Study  string `json:"study_instance_uid"`
				Reader string `json:"reader"`
				Prio   string `json:"priority"`
				Change string `json:"change"`
			}
			if json.Unmarshal([]byte(d), &it) != nil || it.Reader != "cmartin" || it.Prio != "STAT" {
				continue
			}
			mu.Lock()
			if _, ok := seen[it.Study]; !ok {
				seen[it.Study] = now
				arrived <- it.Study
			}
			mu.Unlock()
		}
	}()

	fx := filepath.Join(work, "studies")
	os.MkdirAll(fx, 0o750)
	var lastLat, firstLat []time.Duration
	for r := 0; r < runs; r++ {
		study, series := testdicom.UID(), testdicom.UID()
		var files []string
		for i := 1; i <= n; i++ {
			c := &testdicom.CT{PatientName: "BENCH^Stroke", PatientID: fmt.Sprintf("B%04d", r), StudyUID: study, SeriesUID: series,
				SOPUID: testdicom.UID(), AccessionNumber: fmt.Sprintf("BENCH%04d", r), StudyDescription: "SCANNER CEREBRAL AVC", Instance: i}
			b, err := c.File()
			if err != nil {
				return err
			}
			p := filepath.Join(fx, fmt.Sprintf("%d-%d.dcm", r, i))
			if err := os.WriteFile(p, b, 0o600); err != nil {
				return err
			}
			files = append(files, p)
		}
		first, last, err := storescu(dport, files)
		if err != nil {
			return err
		}
		deadline := time.After(10 * time.Second)
	wait:
		for {
			mu.Lock()
			at, ok := seen[study]
			mu.Unlock()
			if ok {
				lastLat = append(lastLat, at.Sub(last))
				firstLat = append(firstLat, at.Sub(first))
				break
			}
			select {
			case <-arrived:
			case <-deadline:
				break wait
			}
		}
		if len(lastLat) != r+1 {
			return fmt.Errorf("run %d: the STAT item did not reach the reader's worklist within 10 s", r+1)
		}
	}
	fmt.Printf("worklistbench: %d STAT studies of %d instance(s), immediate route, pool on call at the injected night; SSE subscriber on /api/worklist/events\n", runs, n)
	report("last image acknowledged → item on the reader's worklist", lastLat)
	report("first image acknowledged → item on the reader's worklist", firstLat)
	return nil
}

// storescu sends files in one association and returns when the first and
// the last C-STORE responses were received (its verbose log, line by line).
func storescu(port int, files []string) (first, last time.Time, err error) {
	cmd := exec.Command("storescu", append([]string{"-v", "-aet", "CT_URG", "-aec", "RELAIS", "127.0.0.1", fmt.Sprint(port)}, files...)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return first, last, err
	}
	done := make(chan struct{})
	var out strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			out.WriteString(l + "\n")
			if strings.Contains(l, "Received Store Response") {
				now := time.Now()
				if first.IsZero() {
					first = now
				}
				last = now
			}
		}
	}()
	err = cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return first, last, fmt.Errorf("storescu: %v\n%s", err, out.String())
	}
	if last.IsZero() {
		return first, last, fmt.Errorf("storescu printed no store response:\n%s", out.String())
	}
	return first, last, nil
}

func report(what string, d []time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	fmt.Printf("  %s: p50 %s, p99 %s, min %s, max %s (n=%d)\n", what,
		fmtD(q(0.50)), fmtD(q(0.99)), fmtD(s[0]), fmtD(s[len(s)-1]), len(s))
}

func fmtD(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
