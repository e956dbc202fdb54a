package pgtest

import "syscall"

// procAttr runs the server as cred, and has the kernel stop it if the
// test binary dies first: no server outlives its test.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM}
}
