// Package machine reads how busy the benchmark machine is (/proc/stat,
// /proc/loadavg), so that benchmarks can wait for a quiet machine and say
// how loaded it was while they ran.
package machine

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU is a reading of the machine's CPU time counters.
type CPU struct{ total, idle uint64 }

// Sample reads the total and idle (idle+iowait) jiffies of the machine from
// the first line of /proc/stat (zero when unreadable).
func Sample() CPU {
	var c CPU
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) == 0 {
		return c
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal (guest is in user)
			c.total += n
		}
		if i == 3 || i == 4 {
			c.idle += n
		}
	}
	return c
}

// Busy is the share of all CPUs busy between two readings.
func Busy(from, to CPU) float64 {
	total := to.total - from.total
	if total == 0 {
		total = 1
	}
	return 1 - float64(to.idle-from.idle)/float64(total)
}

// WaitQuiet waits (at most max) until the machine's CPU is less than below
// busy over 3 s, so that a run does not start in the middle of someone
// else's build; it says what it saw.
func WaitQuiet(below float64, max time.Duration) string {
	deadline := time.Now().Add(max)
	for {
		c0 := Sample()
		time.Sleep(3 * time.Second)
		busy := Busy(c0, Sample())
		if busy < below {
			return fmt.Sprintf("machine %.0f%% busy before the start", 100*busy)
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("machine still %.0f%% busy after waiting %v: started anyway", 100*busy, max)
		}
	}
}

// LoadAvg is the first three fields of /proc/loadavg ("?" if unreadable).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ClockTicks is USER_HZ, the unit of the times in /proc/PID/stat (100 on
// every Linux architecture Go supports).
const ClockTicks = 100

// CPUTicks returns utime+stime of pid, plus cutime+cstime (its reaped
// children) when withReaped is set, in clock ticks; -1 when unreadable.
func CPUTicks(pid int, withReaped bool) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return -1
	}
	n := 2 // utime, stime
	if withReaped {
		n = 4 // and cutime, cstime
	}
	var sum int64
	for _, s := range f[11 : 11+n] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return -1
		}
		sum += v
	}
	return sum
}

// PeakRSS returns the peak resident set size (VmHWM) of pid in bytes, or -1.
func PeakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return -1
}
