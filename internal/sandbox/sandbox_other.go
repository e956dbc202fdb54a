//go:build !linux

package sandbox

import "syscall"

// dieWithParent does nothing: only Linux has a parent-death signal (and
// bwrap).
func dieWithParent(*syscall.SysProcAttr) {}
