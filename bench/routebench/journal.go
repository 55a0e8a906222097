package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// event is the part of a relais journal event (`relais journal --json`)
// the benchmark reads.
type event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	SOP  string    `json:"sop"`
	Data struct {
		Destination string `json:"destination"`
		Route       string `json:"route"`
		Attempt     int    `json:"attempt"`
		Redelivery  bool   `json:"redelivery"`
		LatencyMS   int64  `json:"latency_ms"`
	} `json:"data"`
}

// readJournal runs `relais journal --data DATA --json --kind ...` (it works
// while relais serve runs on the same data).
func readJournal(bin, data string, kinds ...string) ([]event, error) {
	cmd := exec.Command(bin, "journal", "--data", data, "--json", "--kind", strings.Join(kinds, ","))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("relais journal: %v: %s", err, tail(errb.String(), 300))
	}
	var evs []event
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("relais journal: bad line %q: %v", tail(sc.Text(), 200), err)
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// sentCount reads relais_deliveries_total{outcome="sent"} (all
// destinations) from /metrics, or -1.
func sentCount(c *http.Client, hport int) (int, map[string]float64) {
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", hport))
	if err != nil {
		return -1, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, nil
	}
	n := 0.0
	other := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "relais_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		if strings.HasPrefix(l, "relais_deliveries_total{") && strings.Contains(l, `outcome="sent"`) {
			n += v
		}
		other[l[:i]] = v
	}
	return int(n), other
}

// histMean returns the mean of a histogram in /metrics (sum/count over all
// label sets), in ms, or -1.
func histMean(m map[string]float64, name string) float64 {
	var sum, count float64
	for k, v := range m {
		if k == name+"_sum" || strings.HasPrefix(k, name+"_sum{") {
			sum += v
		}
		if k == name+"_count" || strings.HasPrefix(k, name+"_count{") {
			count += v
		}
	}
	if count == 0 {
		return -1
	}
	return sum / count * 1000
}

// scrape reads relais' /metrics (relais_* samples only).
func scrape(p *proc) map[string]float64 {
	_, m := sentCount(&http.Client{Timeout: 5 * time.Second}, p.hport)
	return m
}

// waitSent polls /metrics every 50 ms until n deliveries were sent.
func waitSent(p *proc, n int, timeout time.Duration, onPoll func()) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if onPoll != nil {
			onPoll()
		}
		got, m := sentCount(c, p.hport)
		if got >= n {
			return m, nil
		}
		if !p.alive() {
			return m, fmt.Errorf("relais exited (%v): %s", p.waitErr, tailFile(p.logPath, 400))
		}
		if time.Now().After(deadline) || isInterrupted() {
			return m, fmt.Errorf("only %d/%d deliveries sent after %v (metrics: %v)", got, n, timeout, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// arrivals returns the modification time of every file storescp wrote,
// by SOP Instance UID (storescp names files <modality>.<SOP Instance UID>).
func arrivals(store string) map[string]time.Time {
	out := map[string]time.Time{}
	ents, _ := os.ReadDir(store)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		_, sop, ok := strings.Cut(e.Name(), ".")
		if !ok {
			continue
		}
		out[sop] = info.ModTime()
	}
	return out
}

func countFiles(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// journalSyncs counts the synced writes (one fdatasync each) in relais'
// journal under data: the journal marks the last line of every synced
// write with '|' after its 8-digit checksum (journal/journal.go,
// markBatchEnd). It also returns the number of events.
func journalSyncs(data string) (syncs, events int) {
	segs, _ := filepath.Glob(filepath.Join(data, "journal", "journal-*.log"))
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			continue
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(l) < 10 {
				continue
			}
			events++
			if l[8] == '|' {
				syncs++
			}
		}
	}
	return syncs, events
}
