package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

type cellKey struct{ server, kind string }

type sample struct {
	res          result
	rss          int64         // cold: VmHWM of the fresh process after the call
	cpu          time.Duration // cold: server CPU during the call
	cachedBefore int64         // cold: bytes of the server's files still cached after eviction
}

type report struct {
	study          *study
	servers        []*server
	kinds          []kind
	unsupported    map[string]map[string]string
	checks         []string
	cold, warm     map[cellKey][]sample
	warmRSS        map[cellKey]int64
	warmCPU        map[cellKey]time.Duration
	coldRuns, runs int
	hwmNote        string
	loadBefore     string
	loadAfter      string
	busy           float64 // fraction of the machine's CPU busy during the timed runs
	orthancVersion string
}

// quantile of sorted durations: the median (mean of the middle two for an
// even count) for 0.5, else the nearest rank.
func quantile(d []time.Duration, q float64) time.Duration {
	n := len(d)
	if n == 0 {
		return 0
	}
	if q == 0.5 {
		if n%2 == 0 {
			return (d[n/2-1] + d[n/2]) / 2
		}
		return d[n/2]
	}
	i := int(math.Ceil(q*float64(n))) - 1
	return d[min(max(i, 0), n-1)]
}

type stats struct {
	n         int
	med, p90  time.Duration
	bytes     int64 // median body bytes
	enc       string
	cpu       time.Duration // per request
	client    time.Duration // median client CPU per request
	rss       int64
	cachedMax int64
}

func summarize(ss []sample) stats {
	var st stats
	st.n = len(ss)
	if st.n == 0 {
		return st
	}
	var d []time.Duration
	var b []int64
	var rss []int64
	var cpu, cl []time.Duration
	for _, s := range ss {
		cl = append(cl, s.res.client)
		d = append(d, s.res.dur)
		b = append(b, s.res.bytes)
		rss = append(rss, s.rss)
		cpu = append(cpu, s.cpu)
		st.cachedMax = max(st.cachedMax, s.cachedBefore)
		if s.res.encoding != "" {
			st.enc = s.res.encoding
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	sort.Slice(cpu, func(i, j int) bool { return cpu[i] < cpu[j] })
	st.med, st.p90 = quantile(d, 0.5), quantile(d, 0.9)
	st.bytes = b[len(b)/2]
	st.rss = rss[len(rss)-1]
	st.cpu = cpu[len(cpu)/2]
	sort.Slice(cl, func(i, j int) bool { return cl[i] < cl[j] })
	st.client = cl[len(cl)/2]
	return st
}

func secs(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s >= 10:
		return fmt.Sprintf("%.1f", s)
	case s >= 1:
		return fmt.Sprintf("%.2f", s)
	case s >= 0.1:
		return fmt.Sprintf("%.3f", s)
	case s >= 0.01:
		return fmt.Sprintf("%.4f", s)
	}
	return fmt.Sprintf("%.5f", s)
}

func mbps(b int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	v := float64(b) / 1e6 / d.Seconds()
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func mb(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(b)/1e6)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

func (r *report) render() string {
	var b strings.Builder
	o, rl := r.servers[0], r.servers[1]
	fmt.Fprintf(&b, "\n## DICOMweb: relais vs %s\n\n", o.display)
	fmt.Fprintf(&b, "%s; %s; study of %d CT instances, %.1f MB; %s.\n\n", hostInfo(), r.orthancVersion, r.study.n, float64(r.study.bytes)/1e6, time.Now().UTC().Format("2006-01-02 15:04 UTC"))

	row := func(title string, sts map[string]stats, cpu map[string]time.Duration, rss map[string]int64, reqs string) {
		so, sr := sts[o.name], sts[rl.name]
		ratio := "-"
		if so.n > 0 && sr.n > 0 && sr.med > 0 {
			ratio = fmt.Sprintf("**%.2f**", so.med.Seconds()/sr.med.Seconds())
		}
		cell := func(s stats) (string, string, string) {
			if s.n == 0 {
				return "n/a", "n/a", "-"
			}
			return secs(s.med), secs(s.p90), mbps(s.bytes, s.med)
		}
		om, op, omb := cell(so)
		rm, rp, rmb := cell(sr)
		fmt.Fprintf(&b, "| %s | %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s |\n", title, reqs,
			om, op, rm, rp, ratio, omb, rmb, mb(rss[o.name]), mb(rss[rl.name]), ms(cpu[o.name]), ms(cpu[rl.name]),
			ms(so.client), ms(sr.client), bodySize(so, sr))
	}
	header := func() {
		fmt.Fprintf(&b, "| request | n | Orthanc median / p90 s | relais median / p90 s | speed-up (Orthanc s / relais s) | MB/s Orthanc / relais | peak RSS MB Orthanc / relais | server CPU ms/request Orthanc / relais | client CPU ms/request (to Orthanc / to relais) | body (Orthanc / relais) |\n")
		fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	}

	fmt.Fprintf(&b, "### Warm (after one untimed call; %d runs alternating the servers; small requests ×%s per run)\n\n", r.runs, repsNote(r.kinds))
	header()
	for _, k := range r.kinds {
		sts := map[string]stats{}
		cpu := map[string]time.Duration{}
		rss := map[string]int64{}
		n := 0
		for _, s := range r.servers {
			key := cellKey{s.name, k.name}
			sts[s.name] = summarize(r.warm[key])
			cpu[s.name] = r.warmCPU[key]
			rss[s.name] = r.warmRSS[key]
			n = max(n, sts[s.name].n)
		}
		row(k.label, sts, cpu, rss, fmt.Sprint(n))
	}
	if r.coldRuns > 0 {
		fmt.Fprintf(&b, "\n### Cold (first request after a restart, the server's files dropped from the page cache; %d runs)\n\n", r.coldRuns)
		header()
		for _, k := range r.kinds {
			if !k.cold {
				continue
			}
			sts := map[string]stats{}
			cpu := map[string]time.Duration{}
			rss := map[string]int64{}
			n := 0
			for _, s := range r.servers {
				st := summarize(r.cold[cellKey{s.name, k.name}])
				sts[s.name], cpu[s.name], rss[s.name] = st, st.cpu, st.rss
				n = max(n, st.n)
			}
			row(k.label, sts, cpu, rss, fmt.Sprint(n))
		}
	}
	fmt.Fprintf(&b, "\nChecks and notes:\n\n")
	for _, l := range r.checks {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	for k, m := range r.unsupported {
		for s, e := range m {
			fmt.Fprintf(&b, "- %s: %s not measured: %s\n", s, k, e)
		}
	}
	var cached []string
	for _, s := range r.servers {
		var mx int64
		for _, k := range r.kinds {
			mx = max(mx, summarize(r.cold[cellKey{s.name, k.name}]).cachedMax)
		}
		cached = append(cached, fmt.Sprintf("%s %.1f MB", s.name, float64(mx)/1e6))
	}
	if r.coldRuns > 0 {
		fmt.Fprintf(&b, "- cold runs: at most %s of the server's files were still in the page cache after eviction (mincore)\n", strings.Join(cached, ", "))
	}
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) before / after the timed runs: %s / %s; machine CPU busy during them: %.0f%% of %d cores (servers, client and any other work)\n", r.loadBefore, r.loadAfter, 100*r.busy, runtime.NumCPU())
	fmt.Fprintf(&b, "- peak RSS: warm rows, VmHWM reset (clear_refs 5) before each kind; cold rows, VmHWM of the fresh process after its first request\n")
	if r.hwmNote != "" {
		fmt.Fprintf(&b, "- %s\n", r.hwmNote)
	}
	return b.String()
}

func repsNote(ks []kind) string {
	n := 1
	for _, k := range ks {
		n = max(n, k.reps)
	}
	return fmt.Sprint(n)
}

func bodySize(so, sr stats) string {
	f := func(s stats) string {
		if s.n == 0 {
			return "n/a"
		}
		v := float64(s.bytes)
		enc := ""
		if s.enc != "" {
			enc = " " + s.enc
		}
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.1f MB%s", v/1e6, enc)
		case v >= 1e3:
			return fmt.Sprintf("%.1f kB%s", v/1e3, enc)
		}
		return fmt.Sprintf("%.0f B%s", v, enc)
	}
	return f(so) + " / " + f(sr)
}

func orthancVersion(o *server) string {
	v := "Orthanc"
	c := &http.Client{Timeout: 5 * time.Second}
	if resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/system", o.httpPort)); err == nil {
		var sys struct{ Version string }
		_ = json.NewDecoder(resp.Body).Decode(&sys)
		resp.Body.Close()
		v += " " + sys.Version
	}
	if resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/plugins/dicom-web", o.httpPort)); err == nil {
		var p struct{ Version string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		v += ", DICOMweb plugin " + p.Version
	}
	if out, err := exec.Command("storescu", "--version").Output(); err == nil {
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		v += ", " + strings.TrimSpace(strings.Trim(line, "$"))
	}
	return v
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
