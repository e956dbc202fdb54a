package cgroup

import (
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// cloneInto makes cmd start in the v2 group: cloned into it (clone3's
// CLONE_INTO_CGROUP). It returns what to call once cmd has started.
func (g *Group) cloneInto(cmd *exec.Cmd) (done func(), err error) {
	fd, err := syscall.Open(g.dirs[0], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening cgroup: %w", err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	return func() { syscall.Close(fd) }, nil
}
