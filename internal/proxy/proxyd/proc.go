package proxyd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var buildOnce = sync.OnceValues(readBuildID)

// BuildID identifies the running binary: the Go build ID (in its ELF
// notes on Linux, at the start of its text section on macOS), which
// changes with any change to the binary's content, or failing that a
// SHA-256 of the file. socle compares its own with the proxy process's
// to tell whether the proxy runs another build.
func BuildID() (string, error) { return buildOnce() }

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
