// Package peak reads the peak memory of a process, as the benches print
// it: Linux's VmHWM, the high-water mark of its resident set.
package peak

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// KB returns the process's peak resident set size in kB, -1 when the
// system does not say (not Linux).
func KB() int64 { return fromStatus("/proc/self/status") }

// OfPID returns the peak resident set size in kB of the running process
// pid (of that process alone, not of its children), -1 when the system
// does not say or the process has exited.
func OfPID(pid int) int64 { return fromStatus("/proc/" + strconv.Itoa(pid) + "/status") }

func fromStatus(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// String is KB for people: "219080 kB", or "unknown".
func String() string { return Format(KB()) }

// Format writes a peak in kB (KB's or OfPID's) for people: "219080 kB",
// or "unknown" when it is -1.
func Format(kb int64) string {
	if kb >= 0 {
		return fmt.Sprintf("%d kB", kb)
	}
	return "unknown"
}
