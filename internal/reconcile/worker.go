package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/unit"
)

// worker converges one unit. Its passes run on one goroutine, so that a
// unit is never acted on twice at once; triggers that arrive during a pass
// coalesce into one more pass. Between passes it waits for a trigger, for
// the requeue its kind asked for, or for the resync, whichever comes
// first: never for a pause or a replica, so that a new desired state is
// looked at within one pass.
type worker struct {
	e    *Engine
	key  unit.Key
	kind Kind

	mu        sync.Mutex
	desired   *unit.Desired // nil: not desired (removed, or found existing and not desired)
	spec      any           // desired, as the kind decoded it
	specErr   error         // the last desired state handed over did not decode
	deps      []unit.Key    // what the unit depends on, kept once it is removed
	status    UnitStatus
	persisted UnitStatus // the status last queued for the store
	running   bool
	kickc     chan struct{}

	// Owned by the worker's goroutine (and by Start and Reload, while it
	// does not run).
	u    Unit
	errs int  // failed passes in a row
	gone bool // pruned and forgotten: the goroutine ends
}

func newWorker(e *Engine, k unit.Key, kind Kind) *worker {
	now := e.clock.Now()
	w := &worker{e: e, key: k, kind: kind, kickc: make(chan struct{}, 1),
		status: UnitStatus{Kind: k.Kind, App: k.Name, Env: k.Env, Phase: Pending, Since: now, UpdatedAt: now}}
	w.u = Unit{Key: k, w: w}
	return w
}

// setDesired hands the worker a new desired state (nil: not desired). A
// spec the worker has already decoded is not decoded again.
func (w *worker) setDesired(d *unit.Desired) {
	w.mu.Lock()
	switch {
	case d == nil:
		w.desired = nil
	case w.desired != nil && bytes.Equal(w.desired.Spec, d.Spec) && w.specErr == nil:
		c := *d
		w.desired, w.deps = &c, slices.Clone(d.DependsOn)
	default:
		c := *d
		w.desired, w.deps = &c, slices.Clone(d.DependsOn)
		spec, err := w.kind.Decode(d.Spec)
		if err == nil {
			w.spec = spec
		}
		w.specErr = err
	}
	w.mu.Unlock()
	w.kick()
}

func (w *worker) dependsOn() []unit.Key {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dependsOnLocked()
}

func (w *worker) dependsOnLocked() []unit.Key { return slices.Clone(w.deps) }

func (w *worker) undesired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired == nil
}

func (w *worker) kick() {
	select {
	case w.kickc <- struct{}{}:
	default:
	}
}

func (w *worker) snapshot() UnitStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Replicas = slices.Clone(s.Replicas)
	return s
}

func (w *worker) run(ctx context.Context) {
	resync := w.e.cfg.Resync
	for {
		after := w.pass(ctx)
		if w.gone {
			return
		}
		if after < 0 || after > resync {
			after = resync
		}
		if after == 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.kickc: // what it asked for is what this pass is
			default:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-w.kickc:
		case <-w.e.clock.After(after):
		}
	}
}

// pass looks at the unit and takes at most one step towards its desired
// state. It returns when to look again: negative for the resync.
func (w *worker) pass(ctx context.Context) time.Duration {
	w.mu.Lock()
	d, spec, specErr, deps := w.desired, w.spec, w.specErr, w.deps
	w.mu.Unlock()
	u := &w.u
	// Now is kept to the microsecond, as the store keeps times: what a
	// kind saves reads back the same after a restart.
	u.Now, u.requeue, u.Status = w.e.clock.Now().Truncate(time.Microsecond), -1, w.snapshot()
	if d == nil {
		u.Spec = nil
		if w.e.isApplied() { // else: not known yet to be unwanted
			w.prune(ctx)
		}
		return u.requeue
	}
	if spec == nil {
		w.say(Failed, ReasonInvalidSpec, fmt.Sprintf("the desired state of %s does not read: %v", w.key, specErr))
		return -1
	}
	u.Spec = spec
	observed, err := w.kind.Observe(ctx, u)
	if err != nil {
		return w.failed(ctx, err)
	}
	var held string
	heldBy := ReasonDependencyNotReady
	if step := w.kind.Plan(u, observed); step != nil {
		if dep, waits := w.e.unsynced(deps); waits && step.Starts() {
			held, heldBy = w.e.waitingFor(step, dep)
			u.RequeueAfter(w.e.cfg.Resync) // or when dep becomes Synced
		} else {
			if err := w.kind.Apply(ctx, u, step); err != nil {
				return w.failed(ctx, err)
			}
			// The status says what is after the step.
			if observed, err = w.kind.Observe(ctx, u); err != nil {
				return w.failed(ctx, err)
			}
		}
	}
	st := w.kind.Health(u, observed)
	switch {
	case held != "":
		st.Phase, st.Reason, st.Message = Pending, heldBy, held
	case specErr != nil:
		st.Phase, st.Reason = Failed, ReasonInvalidSpec
		st.Message = fmt.Sprintf("the new desired state does not read: %v; the last one that did stays in force", specErr)
	}
	if b, ok := w.e.blockedReason(w.key); ok && st.Phase != Progressing && st.Phase != Building {
		st.Phase, st.Reason, st.Message = Blocked, b.Reason, b.Message
	}
	w.publish(st)
	w.errs = 0
	return u.requeue
}

// failed reports a failed call and returns when to try again: after a
// backoff that doubles, at most the resync.
func (w *worker) failed(ctx context.Context, err error) time.Duration {
	if ctx.Err() != nil {
		return -1 // socle is stopping: no failure of the unit
	}
	w.say(Degraded, reasonOf(err), err.Error())
	w.errs++
	return min(time.Second<<min(w.errs-1, 16), w.e.cfg.Resync)
}

// prune removes a unit no longer desired, unless its environment keeps
// what was removed from Git, or units that depend on it remain.
func (w *worker) prune(ctx context.Context) {
	if keep := w.e.cfg.Keep; keep != nil && keep(w.key.Env) {
		w.say(Orphaned, ReasonRemovedFromGit, fmt.Sprintf("removed from Git; it keeps running because %s does not prune", w.key.Env))
		return
	}
	if dep, ok := w.e.remaining(w.key); ok {
		w.say(Pending, ReasonDependentsRemain, fmt.Sprintf("removed from Git; pruned once %s, which depends on it, is", dep))
		return
	}
	gone, err := w.kind.Prune(ctx, &w.u)
	if err != nil {
		w.u.RequeueAfter(w.failed(ctx, err))
		return
	}
	if gone {
		if w.gone, err = w.e.forget(ctx, w); err != nil {
			w.u.RequeueAfter(w.failed(ctx, fmt.Errorf("deleting the record of the pruned unit: %w", err)))
		}
	}
}

// say reports a phase, its reason and the words that say it, keeping the
// rest of the status.
func (w *worker) say(p Phase, r Reason, msg string) {
	w.report(func(s *UnitStatus) { s.Phase, s.Reason, s.Message = p, r, msg })
}

// report changes the unit's status with f. A new phase or reason drops
// what belonged to the old reason (its log tail, its retry time) unless f
// set them anew.
func (w *worker) report(f func(s *UnitStatus)) {
	w.mu.Lock()
	old := w.status
	s := old
	s.Replicas = slices.Clone(old.Replicas)
	f(&s)
	w.mu.Unlock()
	if s.Phase != old.Phase || s.Reason != old.Reason {
		if s.LogTail == old.LogTail {
			s.LogTail = ""
		}
		if s.RetryAt.Equal(old.RetryAt) {
			s.RetryAt = time.Time{}
		}
	}
	w.publish(s)
}

// publish makes s the unit's status: Since moves with its phase or
// reason, a change is queued for the store, and a change of phase is told.
func (w *worker) publish(s UnitStatus) {
	now := w.e.clock.Now()
	w.mu.Lock()
	old := w.status
	s.Kind, s.App, s.Env = w.key.Kind, w.key.Name, w.key.Env
	if s.Phase != old.Phase || s.Reason != old.Reason {
		s.Since = now
	} else {
		s.Since = old.Since
	}
	s.UpdatedAt = now
	w.status = s
	changed := !sameStatus(s, w.persisted)
	if changed {
		w.persisted = s
	}
	w.mu.Unlock()
	if changed {
		w.e.markDirty(s)
	}
	if s.Phase != old.Phase {
		if w.e.cfg.OnPhase != nil {
			w.e.cfg.OnPhase(s)
		}
		// Synced, they may go on; else a unit waiting for this one says
		// now how it is (Failed, provisioning again), not at the next
		// resync.
		w.e.kickDependents(w.key)
	}
}
