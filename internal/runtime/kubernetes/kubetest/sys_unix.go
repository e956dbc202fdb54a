//go:build unix && !linux

package kubetest

import "syscall"

// sysProcAttr puts a component in a process group of its own, so that Stop
// kills whatever it started. Without Pdeathsig outside Linux, a test binary
// killed before Stop leaves its components running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
