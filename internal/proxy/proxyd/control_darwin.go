package proxyd

import (
	"net"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest path of a Unix socket (sun_path, less its
// terminating zero: 104 bytes on macOS).
const maxSocketPath = 103

// peerUID returns the effective uid of the process at the other end of c
// (LOCAL_PEERCRED).
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Xucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}
