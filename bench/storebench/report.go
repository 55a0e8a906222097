package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// cell is the summary of one (server, associations) cell over its runs.
type cell struct {
	ok        int           // successful runs
	runs      int           // all runs
	wall      time.Duration // median wall time of the successful runs
	instPerS  float64
	mbPerS    float64
	rssMB     float64 // median peak RSS (root + max child), MB
	rssSumMB  float64 // median root + sum of children, MB
	children  int
	cpuMsPer  float64 // median server CPU ms per instance, -1 if unknown
	firstFail string
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(rs []runResult, n int, total int64) cell {
	var c cell
	c.runs = len(rs)
	var walls, rss, rssSum, cpu []float64
	for _, r := range rs {
		if r.err != nil {
			if c.firstFail == "" {
				c.firstFail = r.err.Error()
			}
			continue
		}
		c.ok++
		walls = append(walls, r.wall.Seconds())
		rss = append(rss, float64(r.rss)/1e6)
		rssSum = append(rssSum, float64(r.rssSum)/1e6)
		if r.cpu >= 0 {
			cpu = append(cpu, float64(r.cpu)/float64(time.Millisecond)/float64(n))
		}
		if r.children > c.children {
			c.children = r.children
		}
	}
	if c.ok == 0 {
		return c
	}
	w := median(walls)
	c.wall = time.Duration(w * float64(time.Second))
	c.instPerS = float64(n) / w
	c.mbPerS = float64(total) / 1e6 / w
	c.rssMB = median(rss)
	c.rssSumMB = median(rssSum)
	c.cpuMsPer = -1
	if len(cpu) > 0 {
		c.cpuMsPer = median(cpu)
	}
	return c
}

var displayName = map[string]string{"storescp": "dcmtk storescp --fork", "orthanc": "Orthanc", "relais": "relais"}

func renderReport(c *config, servers []server, files []string, total int64, res map[cellKey][]runResult) string {
	n := len(files)
	cells := map[cellKey]cell{}
	for k, rs := range res {
		cells[k] = summarize(rs, n, total)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## storebench: C-STORE ingest, %d CT instances\n\n", n)
	fmt.Fprintf(&b, "- date: %s\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- host: %s\n", hostInfo())
	fmt.Fprintf(&b, "- data: %d instances, %.1f MB (%.0f KB each), explicit VR little endian, from %s\n",
		n, float64(total)/1e6, float64(total)/float64(n)/1e3, c.dataDir)
	fmt.Fprintf(&b, "- client: %s, `storescu -aet BENCH -aec <AE> 127.0.0.1 <port> files...`, TCP_NODELAY=1\n", toolVersion("storescu", "--version"))
	for _, s := range servers {
		switch s := s.(type) {
		case storescp:
			fmt.Fprintf(&b, "- storescp: %s, `storescp --fork -od DIR`\n", toolVersion("storescp", "--version"))
		case orthanc:
			fmt.Fprintf(&b, "- Orthanc: %s, built-in defaults + DicomAet/DicomPort/HttpPort/StorageDirectory/IndexDirectory\n", toolVersion(s.bin, "--version"))
		case relais:
			fmt.Fprintf(&b, "- relais: %s, `relais serve --data DIR --dicom-addr ... --http-addr ... --ae RELAIS`\n", s.bin)
		}
	}
	fmt.Fprintf(&b, "- %d run(s) per cell, median shown; each run starts the server on empty storage\n\n", c.runs)

	b.WriteString("| server | associations | instances/s | MB/s | peak RSS MB | ratio vs storescp |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, s := range servers {
		for _, k := range c.assocs {
			ce := cells[cellKey{s.Name(), k}]
			if ce.ok == 0 {
				fmt.Fprintf(&b, "| %s | %d | FAILED | | | |\n", displayName[s.Name()], k)
				continue
			}
			ratio := "n/a"
			if ref, ok := cells[cellKey{"storescp", k}]; ok && ref.ok > 0 {
				ratio = fmt.Sprintf("%.2f", ce.instPerS/ref.instPerS)
			}
			fail := ""
			if ce.ok < ce.runs {
				fail = fmt.Sprintf(" (%d/%d runs ok)", ce.ok, ce.runs)
			}
			fmt.Fprintf(&b, "| %s | %d | %.1f%s | %.1f | %.1f | %s |\n",
				displayName[s.Name()], k, ce.instPerS, fail, ce.mbPerS, ce.rssMB, ratio)
		}
	}
	b.WriteString("\nThroughput ratios (instances/s, higher is better for relais):\n\n")
	for _, k := range c.assocs {
		for _, ref := range []string{"storescp", "orthanc"} {
			fmt.Fprintf(&b, "- relais/%s, %d association(s): %s\n", ref, k, ratio(cells, "relais", ref, k, c.skipNote))
		}
	}

	b.WriteString("\nRuns (wall time of the send, s) and server CPU time (user+system, whole process tree, during the send):\n\n")
	b.WriteString("| server | associations | runs s | median s | server CPU ms/instance |\n|---|---:|---|---:|---:|\n")
	for _, s := range servers {
		for _, k := range c.assocs {
			var parts []string
			for _, r := range res[cellKey{s.Name(), k}] {
				if r.err != nil {
					parts = append(parts, "FAIL")
				} else {
					parts = append(parts, fmt.Sprintf("%.2f", r.wall.Seconds()))
				}
			}
			ce := cells[cellKey{s.Name(), k}]
			cpu, med := "n/a", "n/a"
			if ce.ok > 0 {
				med = fmt.Sprintf("%.2f", ce.wall.Seconds())
			}
			if ce.ok > 0 && ce.cpuMsPer >= 0 {
				cpu = fmt.Sprintf("%.2f", ce.cpuMsPer)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", displayName[s.Name()], k, strings.Join(parts, ", "), med, cpu)
		}
	}

	b.WriteString("\nNotes:\n\n")
	b.WriteString("- MB = 10^6 bytes of Part 10 files sent; wall time runs from the first storescu start to the last storescu exit.\n")
	b.WriteString("- Checks: every storescu exits 0 with no E:/F: log line; storescp must hold N files, Orthanc `GET /statistics` must report N instances; relais is checked through storescu's success only.\n")
	b.WriteString("- Peak RSS = VmHWM from /proc/PID/status, read just before the server is stopped. storescp --fork runs each association in a child process: its figure is parent + the largest child (children polled every 20 ms while alive).")
	for _, k := range c.assocs {
		if ce, ok := cells[cellKey{"storescp", k}]; ok && ce.ok > 0 && k > 1 {
			fmt.Fprintf(&b, " With %d associations, parent + all %d children would be %.1f MB (forked pages are shared, so this overcounts).", k, ce.children, ce.rssSumMB)
		}
	}
	b.WriteString("\n")
	for _, name := range []string{"storescp", "orthanc", "relais"} {
		if note, ok := c.skipNote[name]; ok {
			fmt.Fprintf(&b, "- %s skipped: %s\n", name, note)
		}
	}
	for _, s := range servers {
		for _, k := range c.assocs {
			if ce := cells[cellKey{s.Name(), k}]; ce.firstFail != "" {
				fmt.Fprintf(&b, "- %s, %d association(s): %d/%d runs failed, first: %s\n", s.Name(), k, ce.runs-ce.ok, ce.runs, ce.firstFail)
			}
		}
	}
	return b.String()
}

func ratio(cells map[cellKey]cell, a, b string, k int, skip map[string]string) string {
	ca, okA := cells[cellKey{a, k}]
	cb, okB := cells[cellKey{b, k}]
	switch {
	case !okA:
		if _, ok := skip[a]; ok {
			return "n/a (" + a + " skipped, see notes)"
		}
		return "n/a (" + a + " not measured)"
	case !okB:
		return "n/a (" + b + " not measured)"
	case ca.ok == 0 || cb.ok == 0:
		return "n/a (failed runs)"
	}
	return fmt.Sprintf("%.2f", ca.instPerS/cb.instPerS)
}
