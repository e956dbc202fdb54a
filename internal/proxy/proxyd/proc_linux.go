package proxyd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func readBuildID() (string, error) {
	f, err := elf.Open("/proc/self/exe")
	if err == nil {
		defer f.Close()
		if s := f.Section(".note.go.buildid"); s != nil {
			if data, err := s.Data(); err == nil && len(data) > 16 {
				// namesz, descsz, type, "Go\0\0", then the ID.
				descsz := int(f.ByteOrder.Uint32(data[4:8]))
				if 16+descsz <= len(data) {
					return "go:" + string(data[16:16+descsz]), nil
				}
			}
		}
	}
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", err
	}
	defer exe.Close()
	h := sha256.New()
	if _, err := io.Copy(h, exe); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// startTicks reads a process's start time, in clock ticks after boot
// (the 22nd field of /proc/<pid>/stat), and whether it is a zombie.
func startTicks(pid int) (ticks uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// comm may hold anything: fields are counted from its closing parenthesis.
	var f []string
	if i := bytes.LastIndexByte(b, ')'); i >= 0 {
		f = strings.Fields(string(b[i+1:]))
	}
	if len(f) < 20 {
		return 0, false, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ticks, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ticks, f[0] == "Z" || f[0] == "X", nil
}

// watchPID returns a channel closed when the process pid ends, watched
// through a pidfd (it need not be a child); ctx's end stops watching. The
// pidfd is opened before the start time is checked, so that it refers to
// the process of that start time and not to a later one of the same pid.
func watchPID(ctx context.Context, pid int, ticks uint64) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	t, zombie, err := startTicks(pid)
	if err != nil || t != ticks || zombie {
		unix.Close(fd)
		if err == nil {
			err = fmt.Errorf("process %d is not the one recorded", pid)
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "pidfd "+strconv.Itoa(pid))
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		defer stop()
		rc, err := f.SyscallConn()
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
		if err != nil { // closed: no longer watched
			return
		}
		f.Close()
		close(done)
	}()
	return done, nil
}
