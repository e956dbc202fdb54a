package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/unit"
)

// Kind converges the units of one kind: what an app, a stack or a
// provisioned resource is made of, how it is observed and changed, is the
// kind's; when and in which order units are looked at, what is persisted,
// and what their statuses say when a call fails, is the engine's. The
// engine never asks which kind a unit is.
//
// # Lifecycle
//
//  1. The wiring gives the engine its kinds (Config.Kinds); their IDs are
//     unique. Start is called once, before any other method: the kind
//     returns the units it finds existing (so that one removed from the
//     desired state while socle was stopped is pruned) and may keep the
//     Host, to tell the engine later of more units (Host.Adopt) or to ask
//     for a unit to be looked at now (Host.Trigger).
//  2. Decode reads a unit's desired state each time the wiring hands the
//     engine a new one (unit.Desired.Spec). An error keeps the unit as it
//     was and reports it Failed (ReasonInvalidSpec).
//  3. Each pass over a unit that is desired runs Observe, then Plan, which
//     decides from the desired state, the unit's persisted state
//     (Unit.Operation, Unit.Failed) and what was observed the one step to
//     take now, or none; then Apply takes that step, and Observe and Health
//     run again so that the status says what is after the step. A step
//     never waits for a pause or for readiness: it saves where it is
//     (Unit.Save, before it acts) and asks to be looked at again
//     (Unit.RequeueAfter), so that a newer desired state, or a deletion,
//     supersedes an operation in progress at its next pass, and a socle
//     restarted resumes it at the step it was on.
//  4. Prune runs instead when the unit is no longer desired, until it says
//     the unit is gone; the engine then forgets it and its record.
//
// Methods are called for one unit at a time, never twice at once for the
// same unit; calls for different units run concurrently. An error of
// Observe, Apply or Prune reports the unit Degraded, with the reason an
// Error carries (ReasonRuntimeError otherwise), and the unit is looked at
// again after a backoff.
type Kind interface {
	// ID is the kind's name in unit keys: "app".
	ID() string
	// Start returns the units of the kind that exist now (step 1).
	Start(ctx context.Context, h Host) ([]unit.Key, error)
	// Decode reads a unit's desired state (step 2).
	Decode(raw json.RawMessage) (any, error)
	// Observe reads what exists of the unit now: the kind's own value,
	// handed back to Plan and Health.
	Observe(ctx context.Context, u *Unit) (any, error)
	// Plan returns the step to take now, nil for none. It changes
	// nothing: it is a function of u and what was observed.
	Plan(u *Unit, observed any) Step
	// Apply takes a step Plan returned.
	Apply(ctx context.Context, u *Unit, s Step) error
	// Health says how the unit is, from what was observed.
	Health(u *Unit, observed any) UnitStatus
	// Prune removes what exists of a unit no longer desired, and reports
	// whether it is gone (step 4); u.Spec is nil.
	Prune(ctx context.Context, u *Unit) (gone bool, err error)
}

// Describer is a kind whose units others wait on and that names them in
// the words of the waiting unit's status: "resource db (postgres)
// provisioning" rather than a unit key. Without it the engine says which
// unit is not Synced.
type Describer interface {
	// Describe names unit k, whose desired state is spec (as Decode
	// returned it, nil when it has none) and whose status is st, and says
	// why it is not Synced.
	Describe(k unit.Key, spec any, st UnitStatus) string
}

// Step is one step a kind plans for a unit.
type Step interface {
	// Starts reports whether the step begins a change of what runs (a
	// new rollout): such a step waits while a unit the unit depends on is
	// not Synced. Steps that keep what runs as it is, or carry on an
	// operation already begun, do not.
	Starts() bool
	// String says what the step does, for logs.
	String() string
}

// Host is the engine as a kind sees it.
type Host interface {
	// Trigger asks for a unit to be looked at now (a replica stopped
	// being ready).
	Trigger(k unit.Key)
	// Adopt makes the engine watch units found existing that it may not
	// know (found in a runtime opened after Start), so that those no
	// longer desired are pruned.
	Adopt(keys ...unit.Key)
}

// Unit is one unit as the engine hands it to its kind: the same value on
// every call, so that what a kind keeps in Memo lasts from pass to pass.
type Unit struct {
	Key unit.Key
	// Spec is the desired state as Decode returned it; nil once the unit
	// is no longer desired.
	Spec any
	// Operation is the operation in progress and Failed the target whose
	// operation failed, as the kind set them; Save persists them. Both are
	// read back from the store after a restart.
	Operation *store.Operation
	Failed    *store.Failure
	// Memo is what the kind keeps of the unit in memory between calls
	// (caches, backoffs); a restart loses it.
	Memo any
	// Now is when the pass began, on the engine's clock, to the
	// microsecond (as the store keeps times).
	Now time.Time
	// Status is the unit's status as last reported.
	Status UnitStatus

	w       *worker
	requeue time.Duration // -1: none asked for in this pass
}

// Save persists u.Operation and u.Failed. A kind saves the step it is
// about to take before it takes it, so that a restart in the middle of
// the step resumes it rather than the one before.
func (u *Unit) Save(ctx context.Context) error {
	return u.w.e.cfg.Store.PutUnitState(ctx, store.UnitState{Kind: u.Key.Kind, Name: u.Key.Name, Env: u.Key.Env,
		Operation: u.Operation, Failed: u.Failed})
}

// RequeueAfter asks for the unit to be looked at again after d (0: at
// once), unless something else triggers it first. Without it a unit is
// looked at again at the engine's resync; the shortest asked for in a pass
// wins.
func (u *Unit) RequeueAfter(d time.Duration) {
	d = max(d, 0)
	if u.requeue < 0 || d < u.requeue {
		u.requeue = d
	}
}

// Progress changes the unit's status while a long step runs (a build says
// its log's last line). f must not block.
func (u *Unit) Progress(f func(s *UnitStatus)) { u.w.report(f) }

// Error is a failure with the reason the unit's status gives it.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with reason, its words formatted as fmt.Errorf
// does.
func Errorf(reason Reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// reasonOf is the reason a failed call gives its unit's status.
func reasonOf(err error) Reason {
	if e, ok := errors.AsType[*Error](err); ok && e.Reason != "" {
		return e.Reason
	}
	return ReasonRuntimeError
}
