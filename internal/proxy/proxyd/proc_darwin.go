package proxyd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/procexit"
)

func readBuildID() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if id, err := machoBuildID(exe); err == nil {
		return id, nil
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// szomb is a zombie's p_stat (<sys/proc.h>).
const szomb = 5

// startTicks reads a process's start time (kern.proc.pid's p_starttime, in
// microseconds since the epoch: on macOS the "ticks" of the record are
// these), and whether it is a zombie.
func startTicks(pid int) (ticks uint64, zombie bool, err error) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if errors.Is(err, unix.EIO) { // the answer is empty: no such process
		return 0, false, fmt.Errorf("process %d: %w", pid, unix.ESRCH)
	}
	if err != nil {
		return 0, false, fmt.Errorf("process %d: %w", pid, err)
	}
	if k.Proc.P_pid != int32(pid) {
		return 0, false, fmt.Errorf("process %d: %w", pid, unix.ESRCH)
	}
	t := k.Proc.P_starttime
	return uint64(t.Sec)*1_000_000 + uint64(t.Usec), k.Proc.P_stat == szomb, nil
}

// watchPID returns a channel closed when the process pid ends, watched
// through a kqueue (package procexit: it need not be a child); ctx's end
// stops watching. The kqueue watches the process before its start time is
// checked, so that it watches the process of that start time and not a
// later one of the same pid.
func watchPID(ctx context.Context, pid int, ticks uint64) (<-chan struct{}, error) {
	w, err := procexit.Open(pid)
	if err != nil {
		return nil, err
	}
	t, zombie, err := startTicks(pid)
	if err != nil || t != ticks || zombie {
		w.Close()
		if err == nil {
			err = fmt.Errorf("process %d is not the one recorded", pid)
		}
		return nil, err
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, w.Close)
	go func() {
		defer stop()
		if w.Wait() {
			close(done)
		}
	}()
	return done, nil
}
