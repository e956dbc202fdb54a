package container

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
)

// lostReason is the reason of the exit of a container that was gone when
// the driver looked for it.
const lostReason = "ended while socle was not supervising it"

// killWait bounds the wait for a container to end after SIGKILL.
const killWait = 10 * time.Second

// run is one run of a replica's container, from podman start to its end.
type run struct {
	pid       int       // the container's first process, on the host
	startedAt time.Time // on the driver's clock
	began     time.Time // on the system's, for probe delays and ResetAfter
	exited    chan struct{}
	exit      runtime.Exit // set before exited is closed
	once      sync.Once
}

func (p *run) ended() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *run) finish(e runtime.Exit) {
	p.once.Do(func() {
		p.exit = e
		close(p.exited)
	})
}

// endedRun is a run that is over already.
func (d *Driver) endedRun(e runtime.Exit) *run {
	p := &run{exited: make(chan struct{}), began: time.Now()}
	p.finish(e)
	return p
}

// replica is one replica the driver knows.
type replica struct {
	d     *Driver
	id    string // the container's name, and the handle's ID
	spec  runtime.ReplicaSpec
	ports []runtime.PortBinding
	log   *slog.Logger
	gone  chan struct{} // closed once Stop has forgotten the replica

	mu         sync.Mutex
	run        *run
	restarts   int
	failures   int
	lastExit   *runtime.Exit
	next       time.Time
	state      runtime.State
	ready      bool
	message    string
	killReason string
	stopping   bool
	stopCh     chan struct{}
	done       chan struct{} // closed when the supervisor returns; nil until supervised
}

func (d *Driver) newReplica(spec runtime.ReplicaSpec, id string) *replica {
	return &replica{
		d: d, id: id, spec: spec,
		log:    d.log.With("app", spec.App, "env", spec.Env, "release", spec.Release, "replica", spec.Index, "container", id),
		gone:   make(chan struct{}),
		stopCh: make(chan struct{}),
	}
}

func (r *replica) handle() runtime.Handle { return runtime.Handle{Driver: r.d.Name(), ID: r.id} }

func (r *replica) recordPath() string {
	return filepath.Join(r.d.opts.StateDir, replicasDir, r.id+".json")
}

// persistLocked replaces the replica's record.
func (r *replica) persistLocked() error {
	rec := record{Spec: r.spec, Container: r.id, Ports: r.ports, Restarts: r.restarts, Failures: r.failures, LastExit: r.lastExit}
	if r.run != nil {
		rec.StartedAt = r.run.startedAt
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
	s := r.spec.ExpandPorts(func(p runtime.Port) int { return p.Port })
	args := []string{"create", "--name", r.id, "--init", "--pull", "never",
		"--label", OwnerLabel + "=" + r.d.owner,
		"--label", AppLabel + "=" + s.App,
		"--label", EnvLabel + "=" + s.Env,
		"--label", ReleaseLabel + "=" + s.Release,
		"--label", IndexLabel + "=" + strconv.Itoa(s.Index),
		"--log-driver", "k8s-file", "--log-opt", "max-size=10mb",
		"--workdir", s.WorkingDir,
	}
	for _, b := range r.ports {
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
		env["PORT_"+envName(p.Name)] = port
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

// start starts the replica's container, creating it again if it is gone
// (removed by hand), and watches it until it ends.
func (r *replica) start(ctx context.Context) (*run, error) {
	if _, err := r.d.pm.run(ctx, "start", r.id); err != nil {
		if _, gone := r.d.pm.run(ctx, "container", "exists", r.id); gone == nil {
			return nil, err
		}
		r.log.Warn("the replica's container is gone: creating it again")
		if err := r.create(ctx); err != nil {
			return nil, err
		}
		if _, err := r.d.pm.run(ctx, "start", r.id); err != nil {
			return nil, err
		}
	}
	p := &run{startedAt: r.d.opts.Clock.Now(), began: time.Now(), exited: make(chan struct{})}
	if out, err := r.d.pm.run(ctx, "inspect", "--format", "{{.State.Pid}}", r.id); err == nil {
		p.pid, _ = strconv.Atoi(out)
	}
	r.wait(p)
	return p, nil
}

// wait watches p, a run of the replica's container, with podman wait, until
// it ends or the driver closes.
func (r *replica) wait(p *run) {
	r.d.wg.Go(func() {
		out, err := r.d.pm.run(r.d.ctx, "wait", "--interval", "100ms", r.id)
		if r.d.ctx.Err() != nil {
			return // closing: supervision ends
		}
		if err != nil {
			p.finish(runtime.Exit{At: time.Now(), Code: -1, Reason: "the container vanished: " + err.Error()})
			return
		}
		code, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			p.finish(runtime.Exit{At: time.Now(), Code: -1, Reason: "podman wait: " + out})
			return
		}
		p.finish(exitOf(code))
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
func (d *Driver) adopt(r *replica, startedAt time.Time) *run {
	out, err := d.pm.run(d.ctx, "inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}", r.id)
	f := strings.Fields(out)
	if err != nil || len(f) != 3 {
		return d.endedRun(runtime.Exit{At: time.Now(), Code: -1, Reason: lostReason + "; its container is gone"})
	}
	if f[0] != "true" {
		code, _ := strconv.Atoi(f[2])
		e := exitOf(code)
		e.Reason += ", " + lostReason
		return d.endedRun(e)
	}
	pid, _ := strconv.Atoi(f[1])
	began := time.Now().Add(-clock.Since(d.opts.Clock, startedAt))
	p := &run{pid: pid, startedAt: startedAt, began: began, exited: make(chan struct{})}
	r.wait(p)
	return p
}

// setRunLocked makes p, just started, the replica's current run.
func (r *replica) setRunLocked(p *run) {
	r.run = p
	r.next = time.Time{}
	r.startingLocked()
	if err := r.persistLocked(); err != nil {
		r.log.Warn("recording the replica's start", "err", err)
	}
	if !p.ended() {
		r.log.Info("replica started", "pid", p.pid, "restarts", r.restarts)
		r.emitLocked(runtime.EventStarted, fmt.Sprintf("container %s, pid %d", r.id, p.pid))
	}
}

func (r *replica) startingLocked() {
	r.state, r.ready, r.message = runtime.Starting, false, "waiting for the readiness probe"
	if r.spec.Readiness == nil {
		r.state, r.ready, r.message = runtime.Running, true, ""
	}
}

func (r *replica) superviseLocked() {
	r.done = make(chan struct{})
	r.d.wg.Add(1)
	go r.supervise(r.d.ctx)
}

// supervise keeps the replica running until Stop or Close.
func (r *replica) supervise(ctx context.Context) {
	defer r.d.wg.Done()
	defer close(r.done)
	for {
		r.mu.Lock()
		p := r.run
		r.mu.Unlock()
		if !r.watch(ctx, p) {
			return
		}
		r.mu.Lock()
		delay := r.failedLocked(ctx, p)
		r.mu.Unlock()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.stopCh:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
		r.mu.Lock()
		if r.stopping {
			r.mu.Unlock()
			return
		}
		r.restarts++
		p, err := r.start(ctx)
		if err != nil {
			if ctx.Err() != nil {
				r.mu.Unlock()
				return
			}
			p = r.d.endedRun(runtime.Exit{At: time.Now(), Code: -1, Reason: "could not start: " + err.Error()})
		}
		r.setRunLocked(p)
		r.mu.Unlock()
	}
}

// watch probes p until it ends, which it reports with true, or until Stop
// or Close, which it reports with false.
func (r *replica) watch(ctx context.Context, p *run) bool {
	ready, live := r.spec.Readiness, r.spec.Liveness
	var readyC, liveC <-chan time.Time
	firstProbe := func(pr *runtime.Probe) *time.Timer {
		return time.NewTimer(max(0, pr.InitialDelay-time.Since(p.began)))
	}
	var readyT, liveT *time.Timer
	if ready != nil {
		readyT = firstProbe(ready)
		defer readyT.Stop()
		readyC = readyT.C
	}
	startLiveness := func() {
		if live != nil && liveT == nil {
			liveT = firstProbe(live)
			liveC = liveT.C
		}
	}
	defer func() {
		if liveT != nil {
			liveT.Stop()
		}
	}()
	if ready == nil {
		startLiveness()
	}
	readyFails, liveFails := 0, 0
	for {
		select {
		case <-p.exited:
			r.mu.Lock()
			defer r.mu.Unlock()
			return !r.stopping
		case <-r.stopCh:
			return false
		case <-ctx.Done():
			return false
		case <-readyC:
			err := r.probe(ctx, ready)
			if err == nil {
				readyFails = 0
				startLiveness()
			} else {
				readyFails++
			}
			r.mu.Lock()
			r.readinessLocked(err, readyFails)
			r.mu.Unlock()
			readyT.Reset(ready.Period)
		case <-liveC:
			err := r.probe(ctx, live)
			if err == nil {
				liveFails = 0
				liveT.Reset(live.Period)
				continue
			}
			if liveFails++; liveFails < live.FailureThreshold {
				liveT.Reset(live.Period)
				continue
			}
			liveC = nil
			r.mu.Lock()
			r.killReason = "liveness probe failed: " + err.Error()
			r.ready = false
			r.emitLocked(runtime.EventUnhealthy, r.killReason)
			r.mu.Unlock()
			r.log.Info("replica unhealthy, restarting", "err", err)
			if _, err := r.terminate(ctx, p); err != nil {
				r.log.Warn("killing the unhealthy replica", "err", err)
			}
		}
	}
}

func (r *replica) readinessLocked(err error, fails int) {
	if r.stopping || r.killReason != "" {
		return
	}
	switch {
	case err == nil && !r.ready:
		r.state, r.ready, r.message = runtime.Running, true, ""
		r.emitLocked(runtime.EventReady, "")
	case err != nil && r.state == runtime.Starting:
		r.message = "waiting for the readiness probe: " + err.Error()
	case err != nil && r.ready && fails >= r.spec.Readiness.FailureThreshold:
		r.ready, r.message = false, "readiness probe failing: "+err.Error()
		r.emitLocked(runtime.EventNotReady, err.Error())
	}
}

// failedLocked records that p ended unasked and returns the wait before the
// next start.
func (r *replica) failedLocked(ctx context.Context, p *run) time.Duration {
	exit := p.exit
	if r.killReason != "" {
		exit.Reason = fmt.Sprintf("%s (%s)", r.killReason, exit.Reason)
		r.killReason = ""
	}
	exit.LogTail = r.logTail(ctx)
	if exit.At.Sub(p.began) >= r.spec.Restart.ResetAfter {
		r.failures = 0
	}
	r.failures++
	r.lastExit = &exit
	delay := r.spec.Restart.Delay(r.failures)
	r.next = exit.At.Add(delay)
	r.ready = false
	r.state, r.message = runtime.Backoff, fmt.Sprintf("%s; starting again after %v", exit.Reason, delay)
	if r.failures >= r.spec.Restart.CrashLoopAfter {
		r.state = runtime.CrashLoop
		r.message = fmt.Sprintf("crash loop: %d failures in a row, the last: %s; starting again after %v",
			r.failures, exit.Reason, delay)
	}
	if err := r.persistLocked(); err != nil {
		r.log.Warn("recording the replica's exit", "err", err)
	}
	r.log.Warn("replica ended", "reason", exit.Reason, "failures", r.failures, "restart_in", delay)
	r.emitLocked(runtime.EventExited, r.message)
	return time.Until(r.next)
}

// tailLines and tailBytes bound Exit.LogTail.
const (
	tailLines = 20
	tailBytes = 4 << 10
)

func (r *replica) logTail(ctx context.Context) string {
	out, err := r.d.pm.combined(ctx, "logs", "--tail", strconv.Itoa(tailLines), r.id)
	if err != nil {
		return ""
	}
	if len(out) > tailBytes {
		out = out[len(out)-tailBytes:]
	}
	return out
}

// terminate ends p: SIGTERM to the container (Podman's init passes it to
// the app), SIGKILL once the grace period or ctx ends. It returns once p has
// ended, and whether SIGKILL was needed.
func (r *replica) terminate(ctx context.Context, p *run) (killed bool, err error) {
	if p.ended() {
		return false, nil
	}
	bg := context.WithoutCancel(ctx)
	if _, err := r.d.pm.run(bg, "kill", "--signal", "TERM", r.id); err != nil && !p.ended() {
		r.log.Warn("sending SIGTERM", "err", err)
	}
	grace := time.NewTimer(r.spec.GracePeriod)
	defer grace.Stop()
	select {
	case <-p.exited:
		return false, nil
	case <-grace.C:
	case <-ctx.Done():
	}
	if _, err := r.d.pm.run(bg, "kill", "--signal", "KILL", r.id); err != nil && !p.ended() {
		r.log.Warn("sending SIGKILL", "err", err)
	}
	select {
	case <-p.exited:
		return true, nil
	case <-time.After(killWait):
		return true, fmt.Errorf("container %s still runs after SIGKILL", r.id)
	}
}

// stop stops the replica gracefully, removes its container and forgets it.
func (r *replica) stop(ctx context.Context) error {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		select {
		case <-r.gone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for replica %s to stop: %w", r.spec.Ref, ctx.Err())
		}
	}
	r.stopping = true
	close(r.stopCh)
	r.state, r.ready, r.message = runtime.Stopping, false, "stopping"
	p, done := r.run, r.done
	r.mu.Unlock()
	if done != nil {
		<-done
	}
	wasRunning := !p.ended()
	_, err := r.terminate(ctx, p)
	if _, rmErr := r.d.pm.run(context.WithoutCancel(ctx), "rm", "--force", "--ignore", "--time", "0", r.id); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	if err == nil {
		if rmErr := os.Remove(r.recordPath()); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = rmErr
		}
	}
	r.mu.Lock()
	if wasRunning && p.ended() {
		exit := p.exit
		r.lastExit = &exit
	}
	r.log.Info("replica stopped")
	r.emitLocked(runtime.EventStopped, "")
	r.mu.Unlock()
	r.d.forget(r)
	close(r.gone)
	if err != nil {
		return fmt.Errorf("stopping replica %s: %w", r.spec.Ref, err)
	}
	return nil
}

func (r *replica) statusLocked() runtime.Status {
	st := runtime.Status{
		Handle: r.handle(), Ref: r.spec.Ref, State: r.state, Ready: r.ready, Message: r.message,
		Ports: r.ports, Restarts: r.restarts, Failures: r.failures, NextRestart: r.next, LastExit: r.lastExit,
	}
	if p := r.run; p != nil {
		st.StartedAt = p.startedAt
		if !p.ended() {
			st.PID = p.pid
		}
	}
	if r.done == nil && !r.stopping {
		st.State, st.Ready, st.Message = runtime.Detached, false, "running, not supervised until Recover"
		if r.run.ended() {
			st.State, st.Message = runtime.Lost, r.run.exit.Reason+"; Recover starts it again"
		}
	}
	return st
}

func (r *replica) emitLocked(typ runtime.EventType, msg string) {
	r.d.publish(runtime.Event{At: time.Now(), Type: typ, Message: msg, Status: r.statusLocked()})
}

// probeClient sends HTTP probes: a connection per probe, no redirect
// followed (a 3xx is a success), no certificate verified, as Kubernetes
// does.
var probeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes check liveness, not identity
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// probe runs pr once: an HTTP probe on the loopback port the container
// port is published on, an exec probe with podman exec.
func (r *replica) probe(ctx context.Context, pr *runtime.Probe) error {
	ctx, cancel := context.WithTimeout(ctx, pr.Timeout)
	defer cancel()
	if g := pr.HTTPGet; g != nil {
		return r.httpGet(ctx, g)
	}
	if _, err := r.d.pm.combined(ctx, append([]string{"exec", r.id}, pr.Exec.Command...)...); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: timed out", pr.Exec.Command[0])
		}
		msg := err.Error()
		if len(msg) > 200 {
			msg = "…" + msg[len(msg)-200:]
		}
		return errors.New(msg)
	}
	return nil
}

func (r *replica) httpGet(ctx context.Context, g *runtime.HTTPGetAction) error {
	port, err := r.spec.PortFor(g.Port)
	if err != nil {
		return err
	}
	address := ""
	for _, b := range r.ports {
		if b.Name == port.Name {
			address = b.Address
		}
	}
	scheme := "http"
	if g.Scheme == "HTTPS" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+address+g.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "socle-probe")
	for _, h := range g.Headers {
		req.Header.Add(h.Name, h.Value)
	}
	if g.Host != "" {
		req.Host = g.Host
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", g.Path, resp.Status)
	}
	return nil
}
