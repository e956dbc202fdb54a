package local

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/procexit"
)

// exitWatch watches a process that need not be a child for its end: a
// kqueue (package procexit).
type exitWatch struct{ w *procexit.Watch }

// openExit starts watching process pid (ESRCH: there is none).
func openExit(pid int) (*exitWatch, error) {
	w, err := procexit.Open(pid)
	if err != nil {
		return nil, err
	}
	return &exitWatch{w}, nil
}

// wait blocks until the process ends (true) or close is called (false).
func (w *exitWatch) wait() bool { return w.w.Wait() }

// close stops watching.
func (w *exitWatch) close() { w.w.Close() }

// szomb is a zombie's p_stat (<sys/proc.h>).
const szomb = 5

// statOf is the stat of a kern.proc entry: its start time, in microseconds
// since the epoch, stands for Linux's clock ticks.
func statOf(k *unix.KinfoProc) stat {
	state := byte('R')
	if k.Proc.P_stat == szomb {
		state = 'Z'
	}
	t := k.Proc.P_starttime
	return stat{state: state, pgid: int(k.Eproc.Pgid), ticks: uint64(t.Sec)*1_000_000 + uint64(t.Usec)}
}

// readStat reads process pid's entry of kern.proc.
func readStat(pid int) (stat, error) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if errors.Is(err, unix.EIO) || err == nil && int(k.Proc.P_pid) != pid { // an empty answer: no such process
		return stat{}, fmt.Errorf("process %d: %w", pid, unix.ESRCH)
	}
	if err != nil {
		return stat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return statOf(k), nil
}

// procs calls fn for every process of kern.proc.all.
func procs(fn func(pid int, st stat)) {
	all, _ := unix.SysctlKinfoProcSlice("kern.proc.all")
	for i := range all {
		if pid := int(all[i].Proc.P_pid); pid > 0 {
			fn(pid, statOf(&all[i]))
		}
	}
}

// sandboxed is false: there is no bwrap on macOS.
func sandboxed(int) bool { return false }

// markerOf returns the value of the marker variable of process pid, if it has
// one and may be read: from kern.procargs2.
func markerOf(pid int) (string, bool) {
	b, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil {
		return "", false // another user's, or gone
	}
	return procargsVar(b, markerVar)
}
