//go:build !unix

package kubetest

import (
	"errors"
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func lockFile(string, func()) (func(), error) {
	return nil, errors.New("kubetest runs on unix systems only")
}

func killGroup(p *os.Process) { p.Kill() }
