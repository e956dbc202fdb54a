package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/supervise"
)

// lostReason is the reason of the exit of a container that was gone when
// the driver looked for it.
const lostReason = "ended while socle was not supervising it"

// killWait bounds the wait for a container to end after SIGKILL.
const killWait = 10 * time.Second

// replica is one replica the driver knows: what package supervise keeps of
// it, whose ID is its container's name. It is its own supervise.Runner.
type replica struct {
	*supervise.Replica[*supervise.Run]
	d *Driver
}

var _ supervise.Runner[*supervise.Run] = (*replica)(nil)

func (d *Driver) newReplica(spec runtime.ReplicaSpec, id string) *replica {
	r := &replica{d: d}
	log := d.log.With("app", spec.App, "env", spec.Env, "release", spec.Release, "replica", spec.Index, "container", id)
	r.Replica = d.sup.NewReplica(id, spec, log, r)
	return r
}

func (r *replica) recordPath() string {
	return filepath.Join(r.d.opts.StateDir, replicasDir, r.ID+".json")
}

// PersistLocked replaces the replica's record; see supervise.Runner.
func (r *replica) PersistLocked() error {
	rec := record{Spec: r.Spec, Container: r.ID, Ports: r.Ports, Restarts: r.Restarts, Failures: r.Failures, LastExit: r.LastExit}
	if r.Run != nil {
		rec.StartedAt = r.Run.StartedAt
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.recordPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.recordPath())
}

// create creates the replica's container: its labels, its ports published
// on loopback, its environment with PORT and PORT_<NAME> (the container
// ports), its limits, Podman's init as PID 1 (which passes signals on and
// reaps), and logs in a file Podman rotates.
func (r *replica) create(ctx context.Context) error {
	s := r.Spec.ExpandPorts(func(p runtime.Port) int { return p.Port })
	args := []string{"create", "--name", r.ID, "--init", "--pull", "never",
		"--label", OwnerLabel + "=" + r.d.owner,
		"--label", AppLabel + "=" + s.App,
		"--label", EnvLabel + "=" + s.Env,
		"--label", ReleaseLabel + "=" + s.Release,
		"--label", IndexLabel + "=" + strconv.Itoa(s.Index),
		"--log-driver", "k8s-file", "--log-opt", "max-size=10mb",
		"--workdir", s.WorkingDir,
	}
	for _, b := range r.Ports {
		args = append(args, "--publish", fmt.Sprintf("%s:%d/tcp", b.Address, b.Port))
	}
	if l := s.Limits; l.MilliCPU > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(float64(l.MilliCPU)/1000, 'f', 3, 64))
	}
	if l := s.Limits; l.Memory > 0 {
		args = append(args, "--memory", strconv.FormatInt(l.Memory, 10))
	}
	// Variables go in a file of socle's user, removed once the container
	// exists, never on podman's command line, which every user of the
	// machine reads. A value of several lines, which an env-file cannot
	// hold, is handed through podman's own environment (--env NAME).
	env := maps.Clone(s.Variables)
	if env == nil {
		env = map[string]string{}
	}
	for i, p := range s.Ports {
		port := strconv.Itoa(p.Port)
		if i == 0 {
			env["PORT"] = port
		}
		env[supervise.PortVar(p.Name)] = port
	}
	f, err := os.CreateTemp(r.d.opts.StateDir, "env-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	var lines strings.Builder
	var inherit []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if strings.ContainsAny(env[k], "\r\n") {
			inherit = append(inherit, k+"="+env[k])
			args = append(args, "--env", k)
			continue
		}
		fmt.Fprintf(&lines, "%s=%s\n", k, env[k])
	}
	_, err = f.WriteString(lines.String())
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	entrypoint, err := json.Marshal(s.Command)
	if err != nil {
		return err
	}
	args = append(args, "--env-file", f.Name(), "--entrypoint", string(entrypoint), s.Image)
	args = append(args, s.Args...)
	if _, err := r.d.pm.runEnv(ctx, inherit, args...); err != nil {
		return err
	}
	return nil
}

// RestartLocked starts the replica's container again; see
// supervise.Runner.
func (r *replica) RestartLocked(ctx context.Context) (*supervise.Run, error) { return r.start(ctx) }

// start starts the replica's container, creating it again if it is gone
// (removed by hand), and watches it until it ends.
func (r *replica) start(ctx context.Context) (*supervise.Run, error) {
	if _, err := r.d.pm.run(ctx, "start", r.ID); err != nil {
		if _, gone := r.d.pm.run(ctx, "container", "exists", r.ID); gone == nil {
			return nil, err
		}
		r.Log.Warn("the replica's container is gone: creating it again")
		if err := r.create(ctx); err != nil {
			return nil, err
		}
		if _, err := r.d.pm.run(ctx, "start", r.ID); err != nil {
			return nil, err
		}
	}
	p := supervise.NewRun(0, r.d.opts.Clock.Now(), time.Now())
	if out, err := r.d.pm.run(ctx, "inspect", "--format", "{{.State.Pid}}", r.ID); err == nil {
		p.PID, _ = strconv.Atoi(out)
	}
	r.wait(p)
	return p, nil
}

// wait watches p, a run of the replica's container, with podman wait, until
// it ends or the driver closes.
func (r *replica) wait(p *supervise.Run) {
	ctx := r.d.sup.Context()
	r.d.sup.Go(func() {
		out, err := r.d.pm.run(ctx, "wait", "--interval", "100ms", r.ID)
		if ctx.Err() != nil {
			return // closing: supervision ends
		}
		if err != nil {
			p.Finish(runtime.Exit{At: time.Now(), Code: -1, Reason: "the container vanished: " + err.Error()})
			return
		}
		code, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			p.Finish(runtime.Exit{At: time.Now(), Code: -1, Reason: "podman wait: " + out})
			return
		}
		p.Finish(exitOf(code))
	})
}

// exitOf describes a container's exit status: above 128, the number of the
// signal that killed its process, as shells (and Podman's init) report it.
func exitOf(code int) runtime.Exit {
	e := runtime.Exit{At: time.Now(), Code: code, Reason: fmt.Sprintf("exit status %d", code)}
	if code > 128 && code < 128+65 {
		e.Code, e.Signal = -1, unix.SignalName(unix.Signal(code-128))
		e.Reason = "killed by " + e.Signal
	}
	return e
}

// adopt returns the run of a replica found in the state directory: its
// container's, watched, if it runs; an ended one otherwise.
func (d *Driver) adopt(r *replica, startedAt time.Time) *supervise.Run {
	out, err := d.pm.run(d.sup.Context(), "inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}", r.ID)
	f := strings.Fields(out)
	if err != nil || len(f) != 3 {
		return r.Failed(runtime.Exit{At: time.Now(), Code: -1, Reason: lostReason + "; its container is gone"})
	}
	if f[0] != "true" {
		code, _ := strconv.Atoi(f[2])
		e := exitOf(code)
		e.Reason += ", " + lostReason
		return r.Failed(e)
	}
	pid, _ := strconv.Atoi(f[1])
	began := time.Now().Add(-clock.Since(d.opts.Clock, startedAt))
	p := supervise.NewRun(pid, startedAt, began)
	r.wait(p)
	return p
}

// Failed returns a run that ended with exit; see supervise.Runner. Unlike
// the local driver's, it has no start on the driver's clock.
func (r *replica) Failed(exit runtime.Exit) *supervise.Run {
	return supervise.EndedRun(exit, time.Time{})
}

// Describe names p in events.
func (r *replica) Describe(p *supervise.Run) string {
	return fmt.Sprintf("container %s, pid %d", r.ID, p.PID)
}

// tailLines and tailBytes bound Exit.LogTail.
const (
	tailLines = 20
	tailBytes = 4 << 10
)

// LogTail returns the end of the container's log; see supervise.Runner.
func (r *replica) LogTail(ctx context.Context) string {
	out, err := r.d.pm.combined(ctx, "logs", "--tail", strconv.Itoa(tailLines), r.ID)
	if err != nil {
		return ""
	}
	if len(out) > tailBytes {
		out = out[len(out)-tailBytes:]
	}
	return out
}

// Terminate ends p: SIGTERM to the container (Podman's init passes it to
// the app), SIGKILL once the grace period or ctx ends. It returns once p has
// ended, and whether SIGKILL was needed.
func (r *replica) Terminate(ctx context.Context, p *supervise.Run) (killed bool, err error) {
	if p.Ended() {
		return false, nil
	}
	bg := context.WithoutCancel(ctx)
	if _, err := r.d.pm.run(bg, "kill", "--signal", "TERM", r.ID); err != nil && !p.Ended() {
		r.Log.Warn("sending SIGTERM", "err", err)
	}
	grace := time.NewTimer(r.Spec.GracePeriod)
	defer grace.Stop()
	select {
	case <-p.Exited():
		return false, nil
	case <-grace.C:
	case <-ctx.Done():
	}
	if _, err := r.d.pm.run(bg, "kill", "--signal", "KILL", r.ID); err != nil && !p.Ended() {
		r.Log.Warn("sending SIGKILL", "err", err)
	}
	select {
	case <-p.Exited():
		return true, nil
	case <-time.After(killWait):
		return true, fmt.Errorf("container %s still runs after SIGKILL", r.ID)
	}
}

// Remove removes the replica's container, then its record; see
// supervise.Runner. A record stays while its container may exist: the next
// driver finds the container by it.
func (r *replica) Remove(ctx context.Context) error {
	if _, err := r.d.pm.run(context.WithoutCancel(ctx), "rm", "--force", "--ignore", "--time", "0", r.ID); err != nil {
		return err
	}
	if err := os.Remove(r.recordPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Exec runs an exec probe's command in the container with podman exec,
// until ctx ends; see supervise.Runner.
func (r *replica) Exec(ctx context.Context, e *runtime.ExecAction) error {
	if _, err := r.d.pm.combined(ctx, append([]string{"exec", r.ID}, e.Command...)...); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: timed out", e.Command[0])
		}
		msg := err.Error()
		if len(msg) > 200 {
			msg = "…" + msg[len(msg)-200:]
		}
		return errors.New(msg)
	}
	return nil
}
