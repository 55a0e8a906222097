package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/bench/internal/machine"
)

// vmHWM is machine.PeakRSS.
func vmHWM(pid int) int64 { return machine.PeakRSS(pid) }

// cpuTicks is machine.CPUTicks.
func cpuTicks(pid int, withReaped bool) int64 { return machine.CPUTicks(pid, withReaped) }

// treeCPU is the CPU time used so far by pid, its reaped children and its
// live (or zombie) descendants, in clock ticks.
func treeCPU(pid int) int64 {
	total := cpuTicks(pid, true)
	if total < 0 {
		return -1
	}
	seen := map[int]bool{}
	queue := children(pid)
	for len(queue) > 0 && len(seen) < 10000 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		if v := cpuTicks(p, false); v > 0 {
			total += v
		}
		queue = append(queue, children(p)...)
	}
	return total
}

// children lists the direct children of pid (all its threads).
func children(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// rssSampler polls the VmHWM of a server process and of all its descendants
// (storescp --fork runs each association in a short-lived child, which has
// exited by the time the run ends, so its peak must be caught while it lives).
type rssSampler struct {
	root int
	stop chan struct{}
	done chan struct{}

	cpu0, cpu1 int64 // treeCPU at start and at finish

	mu       sync.Mutex
	rootHWM  int64
	childHWM map[int]int64 // peak seen per descendant pid
}

func startSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{root: pid, stop: make(chan struct{}), done: make(chan struct{}), childHWM: map[int]int64{}}
	s.cpu0 = treeCPU(pid)
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	root := vmHWM(s.root)
	seen := map[int]int64{}
	queue := children(s.root)
	for len(queue) > 0 && len(seen) < 10000 {
		p := queue[0]
		queue = queue[1:]
		if _, ok := seen[p]; ok {
			continue
		}
		seen[p] = vmHWM(p)
		queue = append(queue, children(p)...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if root > s.rootHWM {
		s.rootHWM = root
	}
	for p, v := range seen {
		if v > s.childHWM[p] {
			s.childHWM[p] = v
		}
	}
}

// finish takes a last sample and stops polling. It must be called while the
// server is still alive.
func (s *rssSampler) finish() {
	close(s.stop)
	<-s.done
	s.sample()
	s.cpu1 = treeCPU(s.root)
}

// cpu returns the server's CPU time (user+system, whole process tree)
// between start and finish, or -1.
func (s *rssSampler) cpu() time.Duration {
	if s.cpu0 < 0 || s.cpu1 < 0 {
		return -1
	}
	return time.Duration(s.cpu1-s.cpu0) * time.Second / machine.ClockTicks
}

// peak returns root+max(child) and root+sum(children) in bytes.
func (s *rssSampler) peak() (rootPlusMax, rootPlusSum int64, nChildren int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var maxc, sum int64
	for _, v := range s.childHWM {
		if v > maxc {
			maxc = v
		}
		if v > 0 {
			sum += v
		}
	}
	return s.rootHWM + maxc, s.rootHWM + sum, len(s.childHWM)
}
