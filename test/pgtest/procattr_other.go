//go:build !linux

package pgtest

import "syscall"

// procAttr runs the server as cred. Without Linux's parent-death signal,
// a test binary killed mid-way may leave its server running.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
