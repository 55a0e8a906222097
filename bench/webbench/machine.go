package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuStat returns the total and idle (idle+iowait) jiffies of the machine
// from the first line of /proc/stat.
func cpuStat() (total, idle uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal (guest is in user)
			total += n
		}
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return total, idle
}

// waitQuiet waits (at most max) until the machine's CPU is less than
// `below` busy over 3 s, so that a run does not start in the middle of
// someone else's build; it reports what it saw.
func waitQuiet(below float64, max time.Duration) string {
	deadline := time.Now().Add(max)
	for {
		t0, i0 := cpuStat()
		time.Sleep(3 * time.Second)
		t1, i1 := cpuStat()
		busy := 1 - float64(i1-i0)/float64(max1(t1-t0))
		if busy < below {
			return fmt.Sprintf("machine %.0f%% busy before the start", 100*busy)
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("machine still %.0f%% busy after waiting %v: started anyway", 100*busy, max)
		}
	}
}

func max1(v uint64) uint64 {
	if v == 0 {
		return 1
	}
	return v
}
