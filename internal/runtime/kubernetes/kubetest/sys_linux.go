package kubetest

import "syscall"

// sysProcAttr puts a component in a process group of its own, so that Stop
// kills whatever it started, and has the kernel kill it when the test binary
// dies, even by SIGKILL or a panic that skips every cleanup.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
