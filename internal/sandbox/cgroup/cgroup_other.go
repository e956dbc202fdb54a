//go:build !linux

package cgroup

import (
	"errors"
	"os/exec"
	"runtime"
)

// cloneInto fails: control groups are Linux's (Detect finds none
// elsewhere, so no Group is made there).
func (g *Group) cloneInto(*exec.Cmd) (func(), error) {
	return nil, errors.New("cgroup v2 is Linux's, and this is " + runtime.GOOS)
}
