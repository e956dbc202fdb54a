package sandbox

import "syscall"

// dieWithParent makes the process get SIGKILL when socle dies.
func dieWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
