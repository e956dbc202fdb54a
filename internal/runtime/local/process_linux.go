package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// exitWatch watches a process that need not be a child for its end: a
// pidfd.
type exitWatch struct{ f *os.File }

// openExit starts watching process pid (ESRCH: there is none).
func openExit(pid int) (*exitWatch, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	// A non-blocking pidfd in an os.File is polled by the runtime's netpoller:
	// it becomes readable when the process ends, and Close wakes the reader.
	return &exitWatch{os.NewFile(uintptr(fd), fmt.Sprintf("pidfd %d", pid))}, nil
}

// wait blocks until the process ends (true) or close is called (false).
func (w *exitWatch) wait() bool {
	rc, err := w.f.SyscallConn()
	if err == nil {
		err = rc.Read(func(fd uintptr) bool {
			for {
				n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
				if err != unix.EINTR {
					return n > 0
				}
			}
		})
	}
	if err != nil { // closed
		return false
	}
	w.f.Close()
	return true
}

// close stops watching.
func (w *exitWatch) close() { w.f.Close() }

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	// pid (comm) state ppid pgrp … with starttime the 22nd field; comm may
	// hold anything, so fields are counted from its closing parenthesis.
	var f []string
	if i := bytes.LastIndexByte(b, ')'); i >= 0 {
		f = strings.Fields(string(b[i+1:]))
	}
	if len(f) < 20 {
		return stat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	pgid, err1 := strconv.Atoi(f[2])
	ticks, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return stat{state: f[0][0], pgid: pgid, ticks: ticks}, nil
}

// procs calls fn for every process of /proc that it can read.
func procs(fn func(pid int, st stat)) {
	entries, _ := os.ReadDir("/proc") // without /proc, nothing is found
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			fn(pid, st)
		}
	}
}

// sandboxed reports whether process pid is bwrap's: the leader of a
// sandboxed replica's group.
func sandboxed(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && string(comm) == "bwrap\n"
}

// markerOf returns the value of the marker variable of process pid, if it has
// one and may be read.
func markerOf(pid int) (string, bool) {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return "", false // another user's, or gone
	}
	for kv := range strings.SplitSeq(string(env), "\x00") {
		if dir, ok := strings.CutPrefix(kv, markerVar+"="); ok {
			return dir, true
		}
	}
	return "", false
}
