package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
)

// Runner is what a driver does for one of its replicas; the supervisor
// calls it. Its methods that end in "Locked" are called with the replica
// locked.
type Runner[P RunOf] interface {
	// RestartLocked starts the replica again after its run ended.
	RestartLocked(ctx context.Context) (P, error)
	// Failed returns a run that ended with exit: what a replica that could
	// not start again runs.
	Failed(exit runtime.Exit) P
	// Terminate ends p: SIGTERM, then SIGKILL once the grace period or ctx
	// ends. It returns once p has ended, and whether SIGKILL was needed.
	Terminate(ctx context.Context, p P) (killed bool, err error)
	// Exec runs an exec probe in the replica until ctx ends (the probe's
	// timeout); a probe that fails returns why.
	Exec(ctx context.Context, e *runtime.ExecAction) error
	// LogTail returns the end of the replica's output (Exit.LogTail).
	LogTail(ctx context.Context) string
	// PersistLocked records the replica in the driver's state directory,
	// with its current run.
	PersistLocked() error
	// Describe names p in the Started and Recovered events ("pid 42").
	Describe(p P) string
	// Remove forgets the replica in the driver's state directory and
	// engine, at the end of Stop, once its run has ended.
	Remove(ctx context.Context) error
}

// A Housekeeper is a Runner with work to do every HousekeepEvery while a
// run of its replica is supervised (the local driver rotates its log).
type Housekeeper interface {
	Housekeep()
}

// HousekeepEvery is how often Housekeeper.Housekeep is called.
const HousekeepEvery = time.Second

// Replica is one replica of a driver, supervised or found in its state
// directory. The driver's own type of replica embeds it and is its Runner.
type Replica[P RunOf] struct {
	// ID is the handle's ID of the replica.
	ID string
	// Spec is the replica's spec, defaults applied. It and Ports are fixed
	// once the replica is added, before anyone else sees it.
	Spec runtime.ReplicaSpec
	// Ports are where the spec's ports are reached, in spec order.
	Ports []runtime.PortBinding
	// Log is the replica's logger.
	Log *slog.Logger

	s      *Supervisor[P]
	runner Runner[P]
	ref    runtime.Ref   // Spec.Ref, read without mu
	gone   chan struct{} // closed once Stop has forgotten the replica

	mu sync.Mutex
	// Run is the current or last run; nil until the first start. Run,
	// Restarts, Failures and LastExit, guarded by mu, are what a driver
	// records of the replica, and sets when it loads one.
	Run      P
	Restarts int
	Failures int // in a row
	LastExit *runtime.Exit

	next time.Time // the next start, in Backoff and CrashLoop
	// state, ready and message describe a supervised replica; statusLocked
	// derives them for the others.
	state   runtime.State
	ready   bool
	message string
	// killReason says why the supervisor is killing the run, for its
	// exit's reason.
	killReason string
	stopping   bool
	stopCh     chan struct{} // closed by Stop
	done       chan struct{} // closed when the supervisor returns; nil until supervised
}

// NewReplica returns a replica of s, not yet known to it (see Add and
// Load), whose runner is runner.
func (s *Supervisor[P]) NewReplica(id string, spec runtime.ReplicaSpec, log *slog.Logger, runner Runner[P]) *Replica[P] {
	return &Replica[P]{
		ID: id, Spec: spec, Log: log,
		s: s, runner: runner, ref: spec.Ref,
		gone:   make(chan struct{}),
		stopCh: make(chan struct{}),
	}
}

// Lock locks the replica: its run, counts and state.
func (r *Replica[P]) Lock() { r.mu.Lock() }

// Unlock unlocks the replica.
func (r *Replica[P]) Unlock() { r.mu.Unlock() }

// Gone is closed once Stop has forgotten the replica.
func (r *Replica[P]) Gone() <-chan struct{} { return r.gone }

// Handle is the replica's handle.
func (r *Replica[P]) Handle() runtime.Handle { return runtime.Handle{Driver: r.s.name, ID: r.ID} }

func (r *Replica[P]) hasRun() bool {
	var none P
	return r.Run != none
}

// SuperviseLocked makes p, the replica's first run, just started, its
// current one, and supervises the replica from now on.
func (r *Replica[P]) SuperviseLocked(p P) {
	r.superviseLocked()
	r.setRunLocked(p)
}

// setRunLocked makes p, just started, the replica's current run.
func (r *Replica[P]) setRunLocked(p P) {
	r.Run = p
	r.next = time.Time{}
	r.startingLocked()
	if err := r.runner.PersistLocked(); err != nil {
		r.Log.Warn("recording the replica's start", "pid", p.base().PID, "err", err)
	}
	if !p.base().Ended() {
		r.Log.Info("replica started", "pid", p.base().PID, "restarts", r.Restarts)
		r.emitLocked(runtime.EventStarted, r.runner.Describe(p))
	}
}

// startingLocked sets the state of a replica whose run has just started,
// or been adopted.
func (r *Replica[P]) startingLocked() {
	r.state, r.ready, r.message = runtime.Starting, false, "waiting for the readiness probe"
	if r.Spec.Readiness == nil {
		r.state, r.ready, r.message = runtime.Running, true, ""
	}
}

// superviseLocked starts the replica's supervisor, which waits for r.mu.
func (r *Replica[P]) superviseLocked() {
	r.done = make(chan struct{})
	r.s.wg.Add(1)
	go r.supervise(r.s.ctx)
}

// recoverLocked supervises a replica found in the state directory; see
// runtime.Driver.Recover.
func (r *Replica[P]) recoverLocked() {
	if r.done != nil || r.stopping {
		return
	}
	r.superviseLocked()
	p := r.Run.base()
	if p.Ended() { // the supervisor records the exit and starts it again
		r.state, r.message = runtime.Lost, r.s.lost(p.Exit())
		return
	}
	r.startingLocked()
	r.Log.Info("replica recovered", "pid", p.PID)
	r.emitLocked(runtime.EventRecovered, "adopted "+r.runner.Describe(r.Run))
}

// supervise keeps the replica running until Stop or Close.
func (r *Replica[P]) supervise(ctx context.Context) {
	defer r.s.wg.Done()
	defer close(r.done)
	for {
		r.mu.Lock()
		p := r.Run
		r.mu.Unlock()
		if !r.watch(ctx, p) {
			return
		}
		r.mu.Lock()
		delay := r.failedLocked(ctx, p.base())
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
		r.Restarts++
		p, err := r.runner.RestartLocked(ctx)
		if err != nil {
			if ctx.Err() != nil { // closing: supervision ends
				r.mu.Unlock()
				return
			}
			p = r.runner.Failed(runtime.Exit{At: time.Now(), Code: -1, Reason: "could not start: " + err.Error()})
		}
		r.setRunLocked(p)
		r.mu.Unlock()
	}
}

// watch probes p (and housekeeps) until p ends, which it reports with
// true, or until Stop or Close, which it reports with false.
func (r *Replica[P]) watch(ctx context.Context, p P) bool {
	run := p.base()
	ready, live := r.Spec.Readiness, r.Spec.Liveness
	var readyC, liveC <-chan time.Time
	firstProbe := func(pr *runtime.Probe) *time.Timer {
		return time.NewTimer(max(0, pr.InitialDelay-time.Since(run.Began)))
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
	var housekeepC <-chan time.Time
	hk, _ := r.runner.(Housekeeper)
	if hk != nil {
		t := time.NewTicker(HousekeepEvery)
		defer t.Stop()
		housekeepC = t.C
	}
	readyFails, liveFails := 0, 0
	for {
		select {
		case <-run.Exited():
			r.mu.Lock()
			defer r.mu.Unlock()
			return !r.stopping
		case <-r.stopCh:
			return false
		case <-ctx.Done():
			return false
		case <-housekeepC:
			hk.Housekeep()
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
			r.Log.Info("replica unhealthy, restarting", "err", err)
			if _, err := r.runner.Terminate(ctx, p); err != nil {
				r.Log.Warn("killing the unhealthy replica", "err", err)
			}
		}
	}
}

// readinessLocked applies the result of a readiness probe that failed fails
// times in a row (0: it passed).
func (r *Replica[P]) readinessLocked(err error, fails int) {
	if r.stopping || r.killReason != "" {
		return
	}
	switch {
	case err == nil && !r.ready:
		r.state, r.ready, r.message = runtime.Running, true, ""
		r.emitLocked(runtime.EventReady, "")
	case err != nil && r.state == runtime.Starting:
		r.message = "waiting for the readiness probe: " + err.Error()
	case err != nil && r.ready && fails >= r.Spec.Readiness.FailureThreshold:
		r.ready, r.message = false, "readiness probe failing: "+err.Error()
		r.emitLocked(runtime.EventNotReady, err.Error())
	}
}

// failedLocked records that p ended unasked and schedules the next start,
// whose delay it returns.
func (r *Replica[P]) failedLocked(ctx context.Context, p *Run) time.Duration {
	exit := p.Exit()
	if r.killReason != "" {
		exit.Reason = fmt.Sprintf("%s (%s)", r.killReason, exit.Reason)
		r.killReason = ""
	}
	exit.LogTail = r.runner.LogTail(ctx)
	if exit.At.Sub(p.Began) >= r.Spec.Restart.ResetAfter {
		r.Failures = 0
	}
	r.Failures++
	r.LastExit = &exit
	delay := r.Spec.Restart.Delay(r.Failures)
	r.next = exit.At.Add(delay)
	r.ready = false
	r.state, r.message = runtime.Backoff, fmt.Sprintf("%s; starting again after %v", exit.Reason, delay)
	if r.Failures >= r.Spec.Restart.CrashLoopAfter {
		r.state = runtime.CrashLoop
		r.message = fmt.Sprintf("crash loop: %d failures in a row, the last: %s; starting again after %v",
			r.Failures, exit.Reason, delay)
	}
	if err := r.runner.PersistLocked(); err != nil {
		r.Log.Warn("recording the replica's exit", "err", err)
	}
	r.Log.Warn("replica ended", "reason", exit.Reason, "failures", r.Failures, "restart_in", delay)
	r.emitLocked(runtime.EventExited, r.message)
	return time.Until(r.next)
}

// stop stops the replica gracefully, has its runner remove it and forgets
// it.
func (r *Replica[P]) stop(ctx context.Context) error {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		select {
		case <-r.gone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for replica %s to stop: %w", r.ref, ctx.Err())
		}
	}
	r.stopping = true
	close(r.stopCh)
	r.state, r.ready, r.message = runtime.Stopping, false, "stopping"
	p, done := r.Run, r.done
	r.mu.Unlock()

	// SIGTERM at once, even while the supervisor finishes a probe.
	wasRunning := !p.base().Ended()
	killed, err := r.runner.Terminate(ctx, p)
	if done != nil {
		<-done
	}
	how := "stopped; it was not running"
	switch {
	case killed:
		how = fmt.Sprintf("killed with SIGKILL after SIGTERM and the %v grace period", r.Spec.GracePeriod)
	case wasRunning:
		how = "exited after SIGTERM"
	}
	if rmErr := r.runner.Remove(ctx); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	// Forgotten before the Stopped event, which says so.
	r.s.Forget(r)
	r.mu.Lock()
	if wasRunning && p.base().Ended() {
		exit := p.base().Exit()
		r.LastExit = &exit
	}
	r.emitLocked(runtime.EventStopped, how)
	r.mu.Unlock()
	close(r.gone)
	r.Log.Info("replica stopped", "how", how)
	if err != nil {
		return fmt.Errorf("stopping replica %s: %w", r.ref, err)
	}
	return nil
}

// statusLocked returns the replica's status.
func (r *Replica[P]) statusLocked() runtime.Status {
	st := runtime.Status{
		Handle:      r.Handle(),
		Ref:         r.Spec.Ref,
		State:       r.state,
		Ready:       r.ready,
		Message:     r.message,
		Ports:       r.Ports,
		Restarts:    r.Restarts,
		Failures:    r.Failures,
		NextRestart: r.next,
		LastExit:    r.LastExit,
	}
	if r.hasRun() {
		p := r.Run.base()
		st.StartedAt = p.StartedAt
		if !p.Ended() {
			st.PID = p.PID
		}
	}
	if !r.hasRun() && r.done == nil {
		// Added, and not started yet (its Start holds it), or its start
		// failed and it is being forgotten.
		st.State, st.Ready, st.Message = runtime.Starting, false, "starting"
		return st
	}
	if r.done == nil && !r.stopping {
		st.State, st.Ready, st.Message = runtime.Detached, false, "running, not supervised until Recover"
		if p := r.Run.base(); p.Ended() {
			st.State, st.Message = runtime.Lost, r.s.lost(p.Exit())+"; Recover starts it again"
		}
	}
	return st
}

// emitLocked publishes an event with the replica's status.
func (r *Replica[P]) emitLocked(typ runtime.EventType, msg string) {
	r.s.publish(runtime.Event{At: time.Now(), Type: typ, Message: msg, Status: r.statusLocked()})
}
