//go:build !unix

package artifact

import "os/exec"

// ownProcessGroup leaves cmd as it is: without process groups, only the
// command itself is killed when a build is cancelled.
func ownProcessGroup(cmd *exec.Cmd) {}
