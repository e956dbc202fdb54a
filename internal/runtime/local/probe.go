package local

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/runtime"
)

// Exec runs an exec probe's command as the replica's processes run, until
// ctx ends; see supervise.Runner.
func (r *replica) Exec(ctx context.Context, e *runtime.ExecAction) error {
	path, err := resolve(r.Spec, e.Command[0], r.d.sandbox.Enabled())
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	if r.d.sandbox.Enabled() {
		// A sandbox of its own, like the replica's: the same files, the
		// same user, its own processes. It dies with socle.
		spec := r.sandboxSpec(path, e.Command[1:])
		spec.Die = true
		// Without the marker: a probe is not the replica's process.
		spec.Env = slices.DeleteFunc(slices.Clone(spec.Env), func(kv string) bool { return strings.HasPrefix(kv, markerVar+"=") })
		if cmd, err = r.d.sandbox.Command(spec); err != nil {
			return err
		}
	} else {
		cmd = exec.Command(path, e.Command[1:]...)
		cmd.Args[0] = e.Command[0]
		cmd.Env, cmd.Dir = r.env, inRoot(r.Spec.Root, r.Spec.WorkingDir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	cmd.WaitDelay = time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Start()
	if err == nil {
		// The context ends the probe: kill its whole group.
		stop := context.AfterFunc(ctx, func() { signalGroup(cmd.Process.Pid, unix.SIGKILL) })
		err = cmd.Wait()
		stop()
	}
	out := buf.Bytes()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: timed out", e.Command[0])
	}
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 200 {
			msg = "…" + msg[len(msg)-200:]
		}
		return fmt.Errorf("%s: %w: %s", e.Command[0], err, msg)
	}
	return nil
}
