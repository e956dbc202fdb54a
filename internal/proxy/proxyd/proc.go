package proxyd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var buildOnce = sync.OnceValues(readBuildID)

// BuildID identifies the running binary: the Go build ID in its ELF notes
// (which changes with any change to the binary's content), or failing that
// a SHA-256 of the file. socle compares its own with the proxy process's
// to tell whether the proxy runs another build.
func BuildID() (string, error) { return buildOnce() }

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

// fetchListener asks the proxy process on socket for a descriptor of its
// listening socket (GET /v1/listener, answered with SCM_RIGHTS) and
// returns it with the process's Info.
func fetchListener(ctx context.Context, socket string) (*os.File, Info, error) {
	return fetchListenerAt(ctx, socket, "/v1/listener")
}

// fetchListenerAt is fetchListener for the socket that path sends
// (/v1/listener, /v1/tls-listener).
func fetchListenerAt(ctx context.Context, socket, path string) (*os.File, Info, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, Info{}, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	uc := c.(*net.UnixConn)
	if _, err := io.WriteString(uc, "GET "+path+" HTTP/1.1\r\nHost: proxy\r\n\r\n"); err != nil {
		return nil, Info{}, err
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, Info{}, fmt.Errorf("receiving the listener: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, Info{}, fmt.Errorf("receiving the listener: no descriptor came (%q)", buf[:n])
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, Info{}, errors.New("receiving the listener: want one descriptor")
	}
	unix.CloseOnExec(fds[0])
	f := os.NewFile(uintptr(fds[0]), "proxy listener")
	var info Info
	if err := json.Unmarshal(bytes.TrimSpace(buf[:n]), &info); err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("receiving the listener: %w", err)
	}
	return f, info, nil
}
