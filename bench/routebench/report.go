package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// pct is the p-th percentile (nearest rank) of xs; p = 100 is the max.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	k = max(0, min(k, len(s)-1))
	return s[k]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ok(rs []*result) []*result {
	var out []*result
	for _, r := range rs {
		if r.err == nil {
			out = append(out, r)
		}
	}
	return out
}

// col returns f over the successful runs.
func col(rs []*result, f func(*result) float64) []float64 {
	var out []float64
	for _, r := range ok(rs) {
		out = append(out, f(r))
	}
	return out
}

func list(xs []float64, format string) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf(format, x))
	}
	return strings.Join(s, ", ")
}

func okNote(rs []*result) string {
	if n := len(ok(rs)); n < len(rs) {
		return fmt.Sprintf(" (%d/%d runs ok)", n, len(rs))
	}
	return ""
}

func toolVersion(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(strings.Trim(line, "$"))
}

func hostInfo() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPU (%s), Linux %s, %s", runtime.NumCPU(), model, kernel, runtime.Version())
}

func renderReport(c *config, res map[string][]*result) string {
	n := float64(c.n)
	mb := float64(c.total) / 1e6
	var b strings.Builder
	fmt.Fprintf(&b, "## routebench: routing %d CT instances to dcmtk storescp\n\n", c.n)
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- host: %s\n", hostInfo())
	fmt.Fprintf(&b, "- data: %d instances, %.1f MB, from %s\n", c.n, mb, c.dataDir)
	fmt.Fprintf(&b, "- dcmtk: %s; `storescu` 1 association, `storescp --fork`, TCP_NODELAY=1\n", toolVersion("storescu", "--version"))
	assoc := "relais' default (2)"
	if c.destAssoc > 0 {
		assoc = fmt.Sprint(c.destAssoc)
	}
	fmt.Fprintf(&b, "- relais: %s; destination associations: %s; stable route: stable_after %v\n", c.relais, assoc, c.stableAfter)
	fmt.Fprintf(&b, "- %d run(s), phases rotated from run to run, every phase on fresh servers and empty storage\n\n", c.runs)

	// 1. latency
	if rs := ok(res["immediate"]); len(rs) > 0 {
		var lat, arr, task, route, p99s []float64
		for _, r := range rs {
			for i := range r.lat {
				route = append(route, r.lat[i]-r.latTask[i])
			}
			lat = append(lat, r.lat...)
			arr = append(arr, r.latArr...)
			task = append(task, r.latTask...)
			p99s = append(p99s, pct(r.lat, 99))
		}
		fmt.Fprintf(&b, "### 1. Acknowledgement → destination, immediate route (%d instances × %d runs)\n\n", c.n, len(rs))
		b.WriteString("| latency, ms | p50 | p90 | p99 | max | target |\n|---|---:|---:|---:|---:|---|\n")
		fmt.Fprintf(&b, "| `delivery.sent` − `instance.stored` (journal) | %.1f | %.1f | **%.1f** | %.1f | p99 < 200 ms: %s |\n",
			pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100), verdict(pct(lat, 99) < 200))
		fmt.Fprintf(&b, "| file written by storescp (mtime) − `instance.stored` | %.1f | %.1f | %.1f | %.1f | |\n",
			pct(arr, 50), pct(arr, 90), pct(arr, 99), pct(arr, 100))
		fmt.Fprintf(&b, "| task created → accepted (`latency_ms` of delivery.sent) | %.0f | %.0f | %.0f | %.0f | |\n",
			pct(task, 50), pct(task, 90), pct(task, 99), pct(task, 100))
		fmt.Fprintf(&b, "| of which `instance.stored` → task created (routing engine; the difference of the rows above, ±1 ms) | %.0f | %.0f | %.0f | %.0f | |\n",
			pct(route, 50), pct(route, 90), pct(route, 99), pct(route, 100))
		fmt.Fprintf(&b, "\np99 of each run (journal): %s ms%s.\n\n", list(p99s, "%.1f"), okNote(res["immediate"]))
	}

	// 2. forwarding throughput
	direct := median(col(res["direct"], func(r *result) float64 { return r.send.Seconds() }))
	b.WriteString("### 2. Forwarding throughput to one storescp\n\n")
	b.WriteString("| path | timed | median s | instances/s | MB/s | ratio vs direct | runs s | machine busy (CPU / I/O stall) |\n|---|---|---:|---:|---:|---:|---|---:|\n")
	type row struct{ phase, name, timed string }
	for _, rw := range []row{
		{"direct", "storescu → storescp (direct)", "storescu start → exit"},
		{"immediate", "relais, immediate route, during the ingest", "first `instance.stored` → last `delivery.sent`"},
		{"stable-cold", "relais, stable route, blobs as ingested (not in page cache)", "`route.fired` → last `delivery.sent`"},
		{"stable-warm", "relais, stable route, blobs read into page cache first", "`route.fired` → last `delivery.sent`"},
	} {
		rs, present := res[rw.phase]
		if !present {
			continue
		}
		f := func(r *result) float64 { return r.fwd.Seconds() }
		if rw.phase == "direct" {
			f = func(r *result) float64 { return r.send.Seconds() }
		}
		xs := col(rs, f)
		if len(xs) == 0 {
			fmt.Fprintf(&b, "| %s | %s | FAILED | | | | | |\n", rw.name, rw.timed)
			continue
		}
		m := median(xs)
		fmt.Fprintf(&b, "| %s%s | %s | %.2f | %.0f | %.0f | **%s** | %s | %s |\n", rw.name, okNote(rs), rw.timed, m, n/m, mb/m,
			ratio(direct, m), list(xs, "%.2f"), loadCell(rs))
	}
	if rs := ok(res["immediate"]); len(rs) > 0 {
		e2e := median(col(rs, func(r *result) float64 { return r.e2e.Seconds() }))
		fa := median(col(rs, func(r *result) float64 { return r.fwdArr.Seconds() }))
		fmt.Fprintf(&b, "\nImmediate route: storescu start → last `delivery.sent` %.2f s (ratio vs direct %s); first `instance.stored` → last file written at the destination %.2f s.\n", e2e, ratio(direct, e2e), fa)
	}
	for _, ph := range []string{"stable-cold", "stable-warm"} {
		if rs := ok(res[ph]); len(rs) > 0 {
			late := 0
			for _, r := range rs {
				if r.warmLate {
					late++
				}
			}
			fmt.Fprintf(&b, "%s: last `instance.stored` → `route.fired` %.2f s (stable_after %v); `route.fired` → first `delivery.sent` %.0f ms; `route.fired` → last file at the destination %.2f s; blobs in the page cache when the route fired: %s%%",
				ph, median(col(rs, func(r *result) float64 { return r.quiet.Seconds() })), c.stableAfter,
				median(col(rs, func(r *result) float64 { return ms(r.firstSent) })),
				median(col(rs, func(r *result) float64 { return r.fwdArr.Seconds() })),
				list(col(rs, func(r *result) float64 { return 100 * min(1, r.cachedFrac) }), "%.0f"))
			fmt.Fprintf(&b, "; relais CPU while forwarding %.2f ms/instance", median(col(rs, func(r *result) float64 { return r.fwdCPUMs })))
			if late > 0 {
				fmt.Fprintf(&b, " (in %d run(s) the warming ended after the fire)", late)
			}
			b.WriteString(".\n")
		}
	}
	b.WriteString("\n")

	// 3. ingest
	if _, present := res["off"]; present {
		b.WriteString("### 3. Ingest throughput, routing off vs on (storescu → relais, 1 association)\n\n")
		b.WriteString("| relais | median s | instances/s | MB/s | ratio vs off | relais CPU ms/instance | relais ingest ms/instance (fsync wait) | runs s | machine busy (CPU / I/O stall) |\n|---|---:|---:|---:|---:|---:|---:|---|---:|\n")
		off := median(col(res["off"], func(r *result) float64 { return r.send.Seconds() }))
		for _, rw := range []row{{"off", "no route", ""}, {"immediate", "immediate route to storescp (forwarding while ingesting)", ""},
			{"immediate-down", "immediate route, destination down (tasks created, attempts refused)", ""},
			{"stable", "stable route (fires 3 s after the study; no forwarding during the ingest)", ""}} {
			rs, present := res[rw.phase]
			if rw.phase == "stable" {
				rs = append(append([]*result(nil), res["stable-cold"]...), res["stable-warm"]...)
				present = len(rs) > 0
			}
			if !present {
				continue
			}
			xs := col(rs, func(r *result) float64 { return r.send.Seconds() })
			if len(xs) == 0 {
				fmt.Fprintf(&b, "| %s | FAILED | | | | | | | |\n", rw.name)
				continue
			}
			m := median(xs)
			fmt.Fprintf(&b, "| %s%s | %.2f | %.0f | %.0f | **%s** | %.2f | %.2f (%.2f) | %s | %s |\n", rw.name, okNote(rs), m, n/m, mb/m, ratio(off, m),
				median(col(rs, func(r *result) float64 { return r.cpuMs })),
				median(col(rs, func(r *result) float64 { return r.ingestMs })), median(col(rs, func(r *result) float64 { return r.durableMs })),
				list(xs, "%.2f"), sendLoadCell(rs))
		}
		for _, ph := range []string{"off", "immediate", "immediate-down"} {
			if rs := ok(res[ph]); len(rs) > 0 {
				fmt.Fprintf(&b, "\nJournal of relais over the %s phase (ingest and forwarding): %.0f events in %.0f fdatasyncs (medians).", ph,
					median(col(rs, func(r *result) float64 { return float64(r.jEvents) })), median(col(rs, func(r *result) float64 { return float64(r.jSyncs) })))
			}
		}
		b.WriteString("\n")
		if d := ok(res["direct"]); len(d) > 0 {
			fmt.Fprintf(&b, "\nFor reference, storescu → storescp directly: %.0f instances/s.\n", n/direct)
		}
		b.WriteString("\n")
	}

	b.WriteString("Notes:\n\n")
	b.WriteString("- Latency uses relais' journal: `instance.stored` is appended just before the fdatasync that precedes the C-STORE response (ack ≈ its time + one fdatasync); `delivery.sent` is appended when the dispatcher records the outcome of the batch (≤ 32 tasks) that held the instance, i.e. after the destination's C-STORE response. Both are relais' clock; the storescp file mtimes are the same machine's clock.\n")
	b.WriteString("- relais writes blobs with O_DIRECT: after ingest they are not in the page cache, so `stable-cold` reads them from the disk (mincore column); `stable-warm` reads them once beforehand. The immediate route reads each blob right after it was written, also not from the page cache. storescu (direct) sends from the page cache.\n")
	b.WriteString("- machine busy = share of both CPUs busy (/proc/stat) during the timed window, everything on the machine included (storescu, storescp, relais, others); CPU / I/O stall = share of that window during which some task waited for a CPU / for I/O (PSI, /proc/pressure \"some\"). Timed window: the storescu run for direct, off and immediate (relais goes on forwarding ~0.05 s after it); \"route.fired\" → last \"delivery.sent\" for the stable routes (load sampled every 50 ms). Medians over the runs.\n")
	b.WriteString("- relais peak RSS (VmHWM) per phase, median MB: ")
	var parts []string
	for _, ph := range []string{"off", "immediate", "immediate-down", "stable-cold", "stable-warm"} {
		if rs := ok(res[ph]); len(rs) > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", ph, median(col(rs, func(r *result) float64 { return r.rssMB }))))
		}
	}
	b.WriteString(strings.Join(parts, ", ") + ".\n")
	for _, ph := range c.phases {
		for _, r := range res[ph] {
			if r.err != nil {
				fmt.Fprintf(&b, "- run %d %s FAILED: %s\n", r.run, ph, r.err)
			}
			if r.dups > 0 {
				fmt.Fprintf(&b, "- run %d %s: %d duplicate delivery.sent\n", r.run, ph, r.dups)
			}
		}
	}
	return b.String()
}

// loadCell is the median machine busy share and CPU / I/O stall shares.
func loadCell(rs []*result) string {
	busy := median(col(rs, func(r *result) float64 { return r.busy }))
	pc := median(col(rs, func(r *result) float64 { return r.psiCPU }))
	pi := median(col(rs, func(r *result) float64 { return r.psiIO }))
	if pc < 0 || pi < 0 {
		return fmt.Sprintf("%.0f%%", 100*busy)
	}
	return fmt.Sprintf("%.0f%% (%.0f%% / %.0f%%)", 100*busy, 100*pc, 100*pi)
}

// sendLoadCell is loadCell over the storescu run (ingest) of relais phases.
func sendLoadCell(rs []*result) string {
	var cp []*result
	for _, r := range rs {
		c := *r
		c.busy, c.psiCPU, c.psiIO = r.sendBusy, r.sendPsiCPU, r.sendPsiIO
		cp = append(cp, &c)
	}
	return loadCell(cp)
}

func ratio(ref, m float64) string {
	if math.IsNaN(ref) || math.IsNaN(m) || m == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", ref/m)
}

func verdict(okk bool) string {
	if okk {
		return "met"
	}
	return "**missed**"
}
