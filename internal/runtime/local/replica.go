package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
)

// logCheckEvery is how often a supervised replica's log size is checked.
const logCheckEvery = time.Second

// replica is one replica the driver knows.
type replica struct {
	d     *Driver
	id    string
	dir   string
	spec  runtime.ReplicaSpec   // defaults applied
	ports []runtime.PortBinding // in spec order; fixed for the replica's life
	env   []string              // the process environment
	log   *slog.Logger
	gone  chan struct{} // closed once Stop has forgotten the replica

	mu       sync.Mutex
	proc     *process // the current or last process; nil until the first start
	restarts int
	failures int // in a row
	lastExit *runtime.Exit
	next     time.Time // the next start, in Backoff and CrashLoop
	// state, ready and message describe a supervised replica; statusLocked
	// derives them for the others.
	state   runtime.State
	ready   bool
	message string
	// killReason says why the supervisor is killing the process, for its
	// exit's reason.
	killReason string
	stopping   bool
	stopCh     chan struct{} // closed by Stop
	done       chan struct{} // closed when the supervisor returns; nil until supervised
}

func (d *Driver) newReplica(spec runtime.ReplicaSpec) *replica {
	id := fmt.Sprintf("%s_%s_%s_%d", spec.Env, spec.App, spec.Release, spec.Index)
	return &replica{
		d:      d,
		id:     id,
		dir:    filepath.Join(d.opts.StateDir, replicasDir, id),
		spec:   spec,
		log:    d.log.With("app", spec.App, "env", spec.Env, "release", spec.Release, "replica", spec.Index),
		gone:   make(chan struct{}),
		stopCh: make(chan struct{}),
	}
}

func (r *replica) handle() runtime.Handle { return runtime.Handle{Driver: r.d.Name(), ID: r.id} }

func (r *replica) logPath() string { return filepath.Join(r.dir, logName) }

// create makes the replica's directory and starts its first process. The
// record is written before the process starts, so that a directory without
// one had no process.
func (r *replica) create() (*process, error) {
	if err := os.Mkdir(r.dir, 0o700); err != nil {
		return nil, err
	}
	if err := r.persistLocked(); err != nil {
		return nil, err
	}
	return r.spawn()
}

// setProcessLocked makes p, just started, the replica's current process.
func (r *replica) setProcessLocked(p *process) {
	r.proc = p
	r.next = time.Time{}
	r.startingLocked()
	if err := r.persistLocked(); err != nil {
		r.log.Warn("recording the replica's process", "pid", p.pid, "err", err)
	}
	if !p.ended() {
		r.log.Info("replica started", "pid", p.pid, "restarts", r.restarts)
		r.emitLocked(runtime.EventStarted, fmt.Sprintf("pid %d", p.pid))
	}
}

// startingLocked sets the state of a replica whose process has just started,
// or been adopted.
func (r *replica) startingLocked() {
	r.state, r.ready, r.message = runtime.Starting, false, "waiting for the readiness probe"
	if r.spec.Readiness == nil {
		r.state, r.ready, r.message = runtime.Running, true, ""
	}
}

// superviseLocked starts the replica's supervisor, which waits for r.mu.
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
		p := r.proc
		r.mu.Unlock()
		if !r.watch(ctx, p) {
			return
		}
		r.mu.Lock()
		delay := r.failedLocked(p)
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
		p, err := r.spawn()
		if err != nil {
			p = r.d.endedProcess(runtime.Exit{At: time.Now(), Code: -1, Reason: "could not start: " + err.Error()})
		}
		r.setProcessLocked(p)
		r.mu.Unlock()
	}
}

// watch probes p and rotates its log until p ends, which it reports with
// true, or until Stop or Close, which it reports with false.
func (r *replica) watch(ctx context.Context, p *process) bool {
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
	rotate := time.NewTicker(logCheckEvery)
	defer rotate.Stop()
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
		case <-rotate.C:
			if err := rotateLog(r.logPath(), r.d.opts.LogSize, r.d.opts.LogFiles); err != nil {
				r.log.Warn("rotating the replica's log", "err", err)
			}
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
			if _, err := terminate(ctx, p, r.spec.GracePeriod); err != nil {
				r.log.Warn("killing the unhealthy replica", "err", err)
			}
		}
	}
}

// readinessLocked applies the result of a readiness probe that failed fails
// times in a row (0: it passed).
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

// failedLocked records that p ended unasked and schedules the next start,
// whose delay it returns.
func (r *replica) failedLocked(p *process) time.Duration {
	exit := p.exit
	if r.killReason != "" {
		exit.Reason = fmt.Sprintf("%s (%s)", r.killReason, exit.Reason)
		r.killReason = ""
	}
	exit.LogTail = logTail(r.logPath())
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

// stop stops the replica gracefully and forgets it.
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
	p, done := r.proc, r.done
	r.mu.Unlock()

	wasRunning := !p.ended()
	killed, err := terminate(ctx, p, r.spec.GracePeriod)
	if done != nil {
		<-done
	}
	msg := "stopped; it was not running"
	switch {
	case killed:
		msg = fmt.Sprintf("killed with SIGKILL after SIGTERM and the %v grace period", r.spec.GracePeriod)
	case wasRunning:
		msg = "exited after SIGTERM"
	}
	r.d.forget(r)
	if rmErr := os.RemoveAll(r.dir); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	r.mu.Lock()
	if wasRunning && p.ended() {
		exit := p.exit
		r.lastExit = &exit
	}
	r.emitLocked(runtime.EventStopped, msg)
	r.mu.Unlock()
	close(r.gone)
	r.log.Info("replica stopped", "how", msg)
	if err != nil {
		return fmt.Errorf("stopping replica %s: %w", r.spec.Ref, err)
	}
	return nil
}

// statusLocked returns the replica's status.
func (r *replica) statusLocked() runtime.Status {
	st := runtime.Status{
		Handle:      r.handle(),
		Ref:         r.spec.Ref,
		State:       r.state,
		Ready:       r.ready,
		Message:     r.message,
		Ports:       r.ports,
		Restarts:    r.restarts,
		Failures:    r.failures,
		NextRestart: r.next,
		LastExit:    r.lastExit,
	}
	if p := r.proc; p != nil {
		st.StartedAt = p.startedAt
		if !p.ended() {
			st.PID = p.pid
		}
	}
	if r.done == nil && !r.stopping {
		st.State, st.Ready, st.Message = runtime.Detached, false, "running, not supervised until Recover"
		if r.proc.ended() {
			st.State, st.Message = runtime.Lost, lostReason+"; Recover starts it again"
		}
	}
	return st
}

// emitLocked publishes an event with the replica's status.
func (r *replica) emitLocked(typ runtime.EventType, msg string) {
	r.d.publish(runtime.Event{At: time.Now(), Type: typ, Message: msg, Status: r.statusLocked()})
}
