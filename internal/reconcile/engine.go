package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/unit"
)

// Config wires an Engine.
type Config struct {
	// Store keeps each unit's operation in progress, failure and status.
	Store store.Store
	// Kinds are the kinds of unit the engine converges; their IDs are
	// unique.
	Kinds  []Kind
	Logger *slog.Logger
	// Clock is the engine's time: requeues, resyncs and what kinds read
	// in Unit.Now. The system's when nil.
	Clock clock.Clock
	// Resync is how often every unit is looked at again without a trigger.
	Resync time.Duration
	// Keep reports whether an environment keeps what was removed from Git
	// running (prune: false): such units are Orphaned, not pruned. Nil
	// means every environment prunes.
	Keep func(env string) bool
	// OnPhase is told when a unit's phase changes (a unit that becomes
	// Synced may open a promotion gate); it must not block.
	OnPhase func(UnitStatus)
	// Redact, when set, removes secret values from a status (a JSON
	// document) before it is persisted.
	Redact func([]byte) []byte
}

// Engine keeps every unit converged on its desired state, one worker per
// unit, and persists what the units' kinds save and report.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	kinds map[string]Kind

	mu         sync.Mutex
	units      map[unit.Key]*worker
	dependents map[unit.Key][]unit.Key // who depends on each unit, from the units' last desired states
	blocked    map[unit.Key]Block
	applied    bool // Apply ran: a unit without desired state is one removed, not one not read yet
	ctx        context.Context
	wg         sync.WaitGroup
	stopped    bool

	// The status writer: statuses that changed since they were last
	// persisted, written in batches.
	dmu    sync.Mutex // guards dirty
	dirty  map[unit.Key]UnitStatus
	dirtyc chan struct{}
	wmu    sync.Mutex // held while statuses are written or a record deleted: a record deleted is not written again
}

// New returns an engine; Start and Run start it.
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, clock: clock.Or(cfg.Clock), kinds: map[string]Kind{},
		units: map[unit.Key]*worker{}, dirty: map[unit.Key]UnitStatus{}, dirtyc: make(chan struct{}, 1)}
	for _, k := range cfg.Kinds {
		if _, dup := e.kinds[k.ID()]; dup || k.ID() == "" {
			return nil, fmt.Errorf("unit kind %q registered twice, or without an ID", k.ID())
		}
		e.kinds[k.ID()] = k
	}
	return e, nil
}

// Start reads what the engine persisted of each unit and lets each kind
// report the units that exist, so that those removed from the desired
// state meanwhile are pruned once Apply has run. Call it before Run.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.Reload(ctx); err != nil {
		return err
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(e.kinds)) {
		keys, err := e.kinds[id].Start(ctx, e)
		if err != nil {
			errs = append(errs, fmt.Errorf("starting the %s units: %w", id, err))
		}
		e.Adopt(keys...)
	}
	return errors.Join(errs...)
}

// Reload reads what was persisted of each unit (its operation in
// progress, its failure, its status) into the engine's units, as Start
// does: before Run runs again in a socle that takes over from another,
// which may have gone further since this one last ran.
func (e *Engine) Reload(ctx context.Context) error {
	states, err := e.cfg.Store.UnitStates(ctx)
	if err != nil {
		return fmt.Errorf("reading the units' states: %w", err)
	}
	e.mu.Lock()
	for _, s := range states {
		k := unit.Key{Kind: s.Kind, Name: s.Name, Env: s.Env}
		if e.kinds[k.Kind] == nil {
			e.log.Warn("a unit of a kind this socle does not know", "unit", k.String())
			continue
		}
		w := e.workerLocked(k)
		// w.u is the worker goroutine's, which does not run now (Run has
		// not started, or has returned); its status is read by Status.
		w.u.Operation, w.u.Failed = s.Operation, s.Failed
		var st UnitStatus
		if len(s.Status) > 0 && json.Unmarshal(s.Status, &st) == nil {
			st.Kind, st.App, st.Env = k.Kind, k.Name, k.Env
			w.mu.Lock()
			w.status, w.persisted = st, st
			w.mu.Unlock()
		}
	}
	e.mu.Unlock()
	return nil
}

// Run keeps the units converged until ctx ends, then persists the
// statuses not written yet. It may run again once it returned (a lease
// lost, then taken back): call Reload before, so that the units take up
// what was persisted meanwhile.
func (e *Engine) Run(ctx context.Context) {
	e.mu.Lock()
	e.ctx, e.stopped = ctx, false
	for _, w := range e.units {
		e.startLocked(w)
	}
	e.mu.Unlock()
	written := make(chan struct{})
	go func() { e.writeStatuses(ctx); close(written) }()
	<-ctx.Done()
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.wg.Wait()
	e.mu.Lock()
	for _, w := range e.units {
		w.running = false
	}
	e.mu.Unlock()
	<-written
	// What the last passes reported, written after the writer stopped.
	flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e.flushStatuses(flush)
}

// Apply makes units the desired state: new and changed units converge on
// it; units no longer there are pruned, after the units that depend on
// them.
func (e *Engine) Apply(units []unit.Desired) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.applied = true
	seen := make(map[unit.Key]bool, len(units))
	for i := range units {
		d := &units[i]
		if e.kinds[d.Kind] == nil {
			e.log.Error("a desired unit of an unknown kind", "unit", d.Key.String())
			continue
		}
		seen[d.Key] = true
		e.workerLocked(d.Key).setDesired(d)
	}
	for k, w := range e.units {
		if !seen[k] {
			w.setDesired(nil)
		}
	}
	e.indexLocked()
}

// indexLocked rebuilds who depends on whom from the units' desired states
// (and, for units removed, the last one they had).
func (e *Engine) indexLocked() {
	e.dependents = map[unit.Key][]unit.Key{}
	for k, w := range e.units {
		for _, d := range w.dependsOn() {
			e.dependents[d] = append(e.dependents[d], k)
		}
	}
}

// workerLocked returns the worker of k, made (and started, once the
// engine runs) if it has none.
func (e *Engine) workerLocked(k unit.Key) *worker {
	w := e.units[k]
	if w == nil {
		w = newWorker(e, k, e.kinds[k.Kind])
		e.units[k] = w
		if e.ctx != nil {
			e.startLocked(w)
		}
	}
	return w
}

// Adopt makes the engine watch units that exist but that it may not know
// of: those not desired are pruned once Apply has run.
func (e *Engine) Adopt(keys ...unit.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range keys {
		if e.kinds[k.Kind] != nil && e.units[k] == nil {
			e.workerLocked(k).setDesired(nil)
		}
	}
}

func (e *Engine) startLocked(w *worker) {
	if e.stopped || w.running {
		return
	}
	w.running = true
	e.wg.Go(func() { w.run(e.ctx) })
}

// SetBlocked says which units a policy or gate blocks, and why; the others
// are not blocked. A blocked unit keeps what it runs, and reports Blocked
// with the reason.
func (e *Engine) SetBlocked(blocked map[unit.Key]Block) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.blocked = blocked
	for _, w := range e.units {
		w.kick()
	}
}

func (e *Engine) blockedReason(k unit.Key) (Block, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.blocked[k]
	return b, ok
}

// Trigger asks for a unit to be looked at now.
func (e *Engine) Trigger(k unit.Key) {
	e.mu.Lock()
	w := e.units[k]
	e.mu.Unlock()
	if w != nil {
		w.kick()
	}
}

// kickDependents asks the units that depend on k to look again: k changed
// phase (Synced: they may go on).
func (e *Engine) kickDependents(k unit.Key) {
	e.mu.Lock()
	ws := make([]*worker, 0, len(e.dependents[k]))
	for _, d := range e.dependents[k] {
		if w := e.units[d]; w != nil {
			ws = append(ws, w)
		}
	}
	e.mu.Unlock()
	for _, w := range ws {
		w.kick()
	}
}

// unsynced returns a unit of deps that is not Synced, if any: one that
// Failed before one that is on its way, so that a wait says the worst.
func (e *Engine) unsynced(deps []unit.Key) (unit.Key, bool) {
	var first unit.Key
	found := false
	for _, d := range deps {
		e.mu.Lock()
		w := e.units[d]
		e.mu.Unlock()
		var phase Phase
		if w != nil {
			phase = w.snapshot().Phase
		}
		switch phase {
		case Synced:
			continue
		case Failed:
			return d, true
		}
		if !found {
			first, found = d, true
		}
	}
	return first, found
}

// waitingFor says why step waits for dep, in dep's kind's words when it
// is a Describer, and the reason of the wait: ReasonDependencyFailed when
// dep Failed (the waiting unit is as good as failed until dep is mended),
// else ReasonDependencyNotReady.
func (e *Engine) waitingFor(step Step, dep unit.Key) (string, Reason) {
	e.mu.Lock()
	w, kind := e.units[dep], e.kinds[dep.Kind]
	e.mu.Unlock()
	if w == nil {
		return fmt.Sprintf("%s waits for %s to be Synced", step, dep), ReasonDependencyNotReady
	}
	st, why := w.snapshot(), ReasonDependencyNotReady
	if st.Phase == Failed {
		why = ReasonDependencyFailed
	}
	d, ok := kind.(Describer)
	if !ok {
		return fmt.Sprintf("%s waits for %s to be Synced", step, dep), why
	}
	w.mu.Lock()
	spec := w.spec
	w.mu.Unlock()
	return "Waiting: " + d.Describe(dep, spec, st), why
}

// remaining returns a unit that depends on k and still exists, if any: k
// is pruned after it.
func (e *Engine) remaining(k unit.Key) (unit.Key, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.dependents[k] {
		if e.units[d] != nil {
			return d, true
		}
	}
	return unit.Key{}, false
}

// forget drops a pruned unit and its record, and reports whether it did:
// a unit desired again meanwhile stays. The record goes first, so that a
// unit no longer listed has no record either.
func (e *Engine) forget(ctx context.Context, w *worker) (bool, error) {
	if !w.undesired() {
		return false, nil
	}
	e.wmu.Lock()
	e.dmu.Lock()
	delete(e.dirty, w.key)
	e.dmu.Unlock()
	err := e.cfg.Store.DeleteUnitState(ctx, w.key.Kind, w.key.Name, w.key.Env)
	e.wmu.Unlock()
	if err != nil {
		return false, err
	}
	e.mu.Lock()
	if !w.undesired() { // desired again meanwhile: its next status makes a record again
		e.mu.Unlock()
		return false, nil
	}
	delete(e.units, w.key)
	e.indexLocked()
	e.mu.Unlock()
	for _, d := range w.dependsOn() {
		e.Trigger(d) // may be waiting to be pruned after this one
	}
	return true, nil
}

func (e *Engine) isApplied() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.applied
}

// Status reports every unit, ordered by environment, name and kind.
func (e *Engine) Status() []UnitStatus {
	e.mu.Lock()
	ws := slices.Collect(maps.Values(e.units))
	e.mu.Unlock()
	out := make([]UnitStatus, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.snapshot())
	}
	slices.SortFunc(out, func(a, b UnitStatus) int { return a.Key().Compare(b.Key()) })
	return out
}

// markDirty queues a status that changed for the writer.
func (e *Engine) markDirty(s UnitStatus) {
	e.dmu.Lock()
	e.dirty[s.Key()] = s
	e.dmu.Unlock()
	select {
	case e.dirtyc <- struct{}{}:
	default:
	}
}

// writeStatuses persists the statuses that changed, a batch at a time: a
// pass never waits for a status to be written, and what many passes
// report at once is written in one transaction.
func (e *Engine) writeStatuses(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.dirtyc:
		}
		e.flushStatuses(ctx)
	}
}

func (e *Engine) flushStatuses(ctx context.Context) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.dmu.Lock()
	dirty := e.dirty
	e.dirty = map[unit.Key]UnitStatus{}
	e.dmu.Unlock()
	if len(dirty) == 0 {
		return
	}
	batch := make([]store.UnitState, 0, len(dirty))
	for k, s := range dirty {
		b, err := json.Marshal(s)
		if err != nil {
			continue
		}
		if e.cfg.Redact != nil {
			b = e.cfg.Redact(b)
		}
		batch = append(batch, store.UnitState{Kind: k.Kind, Name: k.Name, Env: k.Env, Status: b})
	}
	if err := e.cfg.Store.PutUnitStatuses(ctx, batch); err != nil {
		if ctx.Err() == nil {
			e.log.Warn("persisting the units' statuses", "units", len(batch), "err", err)
		}
		// Written with the next batch, unless a newer status is.
		e.dmu.Lock()
		for k, s := range dirty {
			if _, newer := e.dirty[k]; !newer {
				e.dirty[k] = s
			}
		}
		e.dmu.Unlock()
	}
}

// sameStatus reports whether a and b say the same, whenever they were
// said.
func sameStatus(a, b UnitStatus) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
