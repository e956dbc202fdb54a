package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
	"github.com/socle-dev/socle/internal/unit"
)

// lamps is a toy kind of unit, registered from this test and converged by
// the real engine, which knows nothing of it: a lamp shows the color its
// desired state says, after warming up for a minute (an operation of two
// steps, persisted, with a pause). A lamp whose desired state says fail
// fails at the end of its warm-up. The lamps that exist are a map: the
// "runtime" of the kind.
type lamps struct {
	mu         sync.Mutex
	lit        map[unit.Key]string
	log        []string // "lit web @ dev red", "off web @ dev", in order
	observeErr error
}

type lampSpec struct {
	Color string `json:"color"`
	Fail  bool   `json:"fail"`
}

const warmUp = time.Minute

var _ reconcile.Kind = (*lamps)(nil)

func (l *lamps) ID() string { return "lamp" }

func (l *lamps) Start(context.Context, reconcile.Host) ([]unit.Key, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keys []unit.Key
	for k := range l.lit {
		keys = append(keys, k)
	}
	return keys, nil
}

func (l *lamps) Decode(raw json.RawMessage) (any, error) {
	var s lampSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if s.Color == "" {
		return nil, errors.New("a lamp needs a color")
	}
	return s, nil
}

func (l *lamps) Observe(_ context.Context, u *reconcile.Unit) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.observeErr != nil {
		return nil, l.observeErr
	}
	return l.lit[u.Key], nil
}

// The steps of a lamp.
type (
	switchOn struct{} // begins warming up to the desired color
	warm     struct{ left time.Duration }
	light    struct{}
)

func (switchOn) Starts() bool   { return true }
func (switchOn) String() string { return "switch on" }
func (warm) Starts() bool       { return false }
func (w warm) String() string   { return "warm for " + w.left.String() }
func (light) Starts() bool      { return false }
func (light) String() string    { return "light" }

// target identifies what a desired state lights.
func target(s lampSpec) store.Target {
	return store.Target{Revision: s.Color, ConfigHash: fmt.Sprint(s.Fail)}
}

func (l *lamps) Plan(u *reconcile.Unit, observed any) reconcile.Step {
	spec, shows := u.Spec.(lampSpec), observed.(string)
	op := u.Operation
	switch {
	case op != nil && op.Target != target(spec):
		return switchOn{} // a new desired state supersedes the warm-up
	case op != nil && u.Now.Before(op.StepStartedAt.Add(warmUp)):
		return warm{left: op.StepStartedAt.Add(warmUp).Sub(u.Now)}
	case op != nil:
		return light{}
	case shows == spec.Color:
		return nil
	case u.Failed != nil && u.Failed.Target == target(spec):
		return nil // failed: not tried again until the desired state changes
	}
	return switchOn{}
}

func (l *lamps) Apply(ctx context.Context, u *reconcile.Unit, s reconcile.Step) error {
	spec := u.Spec.(lampSpec)
	switch s := s.(type) {
	case switchOn:
		u.Operation = &store.Operation{Target: target(spec), Phase: "Warming", StepStartedAt: u.Now}
		if err := u.Save(ctx); err != nil {
			return err
		}
		u.RequeueAfter(warmUp)
	case warm:
		u.RequeueAfter(s.left)
	case light:
		if spec.Fail {
			u.Operation, u.Failed = nil, &store.Failure{Target: target(spec)}
			return u.Save(ctx)
		}
		u.Operation.Step, u.Operation.Phase = 1, "Lighting"
		if err := u.Save(ctx); err != nil {
			return err
		}
		l.mu.Lock()
		l.lit[u.Key] = spec.Color
		l.log = append(l.log, fmt.Sprintf("lit %s %s", u.Key, spec.Color))
		l.mu.Unlock()
		u.Operation, u.Failed = nil, nil
		return u.Save(ctx)
	}
	return nil
}

func (l *lamps) Health(u *reconcile.Unit, observed any) reconcile.UnitStatus {
	spec, shows := u.Spec.(lampSpec), observed.(string)
	switch {
	case u.Operation != nil:
		return reconcile.UnitStatus{Phase: reconcile.Progressing, Reason: reconcile.ReasonRollingOut, Message: "warming up to " + spec.Color,
			Operation: &reconcile.OperationStatus{Step: u.Operation.Step + 1, Steps: 2, Phase: u.Operation.Phase, StepStartedAt: u.Operation.StepStartedAt}}
	case shows == spec.Color:
		return reconcile.UnitStatus{Phase: reconcile.Synced}
	case u.Failed != nil && u.Failed.Target == target(spec):
		return reconcile.UnitStatus{Phase: reconcile.Failed, Reason: reconcile.ReasonRolloutFailed, Message: spec.Color + " failed; " + shows + " stays"}
	}
	return reconcile.UnitStatus{Phase: reconcile.Degraded, Reason: reconcile.ReasonDrift, Message: "shows " + shows}
}

func (l *lamps) Prune(_ context.Context, u *reconcile.Unit) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.lit[u.Key]; ok {
		delete(l.lit, u.Key)
		l.log = append(l.log, "off "+u.Key.String())
	}
	return true, nil
}

func (l *lamps) shows(k unit.Key) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lit[k]
}

func (l *lamps) steps() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.log)
}

// engine is a running engine over a real SQLite store and a fake clock.
type engine struct {
	*reconcile.Engine
	t      *testing.T
	clock  *clock.Fake
	st     store.Store
	cancel func()
	done   chan struct{}
}

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the engines that use it stop: cleanups run last first
	return st
}

// startEngine starts an engine with the lamps and desired state.
func startEngine(t *testing.T, st store.Store, c *clock.Fake, l *lamps, desired ...unit.Desired) *engine {
	t.Helper()
	e, err := reconcile.New(reconcile.Config{Store: st, Kinds: []reconcile.Kind{l}, Clock: c, Resync: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.Apply(desired)
	ctx, cancel := context.WithCancel(context.Background())
	en := &engine{Engine: e, t: t, clock: c, st: st, cancel: cancel, done: make(chan struct{})}
	go func() { e.Run(ctx); close(en.done) }()
	t.Cleanup(en.stop)
	return en
}

// stop stops the engine and waits until it has.
func (e *engine) stop() {
	e.cancel()
	<-e.done
}

// wait waits until cond holds for the status of k, polling the engine: a
// condition, not a timing, and the deadline is generous.
func (e *engine) wait(k unit.Key, what string, cond func(reconcile.UnitStatus) bool) reconcile.UnitStatus {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last reconcile.UnitStatus
	for time.Now().Before(deadline) {
		for _, s := range e.Status() {
			if s.Key() == k {
				if last = s; cond(s) {
					return s
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Fatalf("%s never %s; last status %+v", k, what, last)
	return last
}

func lamp(name, env, color string, deps ...unit.Key) unit.Desired {
	return unit.Desired{Key: unit.Key{Kind: "lamp", Name: name, Env: env}, Spec: json.RawMessage(`{"color":"` + color + `"}`), DependsOn: deps}
}

func isPhase(p reconcile.Phase) func(reconcile.UnitStatus) bool {
	return func(s reconcile.UnitStatus) bool { return s.Phase == p }
}

// TestToyKind: a kind registered from a test file is converged by the
// engine through its steps, its pause requeued rather than waited for;
// its status, with a reason, is persisted.
func TestToyKind(t *testing.T) {
	l := &lamps{lit: map[unit.Key]string{}}
	c := clock.NewFake(t0)
	st := openStore(t, t.TempDir())
	e := startEngine(t, st, c, l, lamp("hall", "dev", "red"))
	k := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}

	s := e.wait(k, "warmed up", isPhase(reconcile.Progressing))
	if s.Operation == nil || s.Operation.Step != 1 || !s.Since.Equal(t0) || s.Kind != "lamp" || s.App != "hall" {
		t.Fatalf("warming up: %+v", s)
	}
	c.Advance(warmUp)
	e.Trigger(k) // the requeue fires on the real loop as well; this makes the test not depend on when
	e.wait(k, "Synced", isPhase(reconcile.Synced))
	if got := l.shows(k); got != "red" {
		t.Errorf("the lamp shows %q, want red", got)
	}
	e.stop()
	rec, err := st.UnitState(t.Context(), "lamp", "hall", "dev")
	if err != nil {
		t.Fatal(err)
	}
	var persisted reconcile.UnitStatus
	if err := json.Unmarshal(rec.Status, &persisted); err != nil || persisted.Phase != reconcile.Synced || rec.Operation != nil {
		t.Errorf("persisted: operation %+v, status %s (%v); want no operation and Synced", rec.Operation, rec.Status, err)
	}
}

// TestToyKindResumesAfterRestart: an engine stopped in the middle of an
// operation, and one started again over the same store, resumes it at the
// step and the time it was at; the pause goes on counting.
func TestToyKindResumesAfterRestart(t *testing.T) {
	l := &lamps{lit: map[unit.Key]string{}}
	c := clock.NewFake(t0)
	dir := t.TempDir()
	st := openStore(t, dir)
	k := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}
	e := startEngine(t, st, c, l, lamp("hall", "dev", "red"))
	e.wait(k, "warmed up", isPhase(reconcile.Progressing))
	c.Advance(40 * time.Second)
	e.stop()
	st.Close()

	st = openStore(t, dir)
	rec, err := st.UnitState(t.Context(), "lamp", "hall", "dev")
	if err != nil || rec.Operation == nil || rec.Operation.Phase != "Warming" || !rec.Operation.StepStartedAt.Equal(t0) {
		t.Fatalf("persisted: %+v, %v; want the warm-up begun at t0", rec, err)
	}
	e = startEngine(t, st, c, l, lamp("hall", "dev", "red"))
	s := e.wait(k, "resumed", isPhase(reconcile.Progressing))
	if !s.Operation.StepStartedAt.Equal(t0) {
		t.Errorf("resumed with a warm-up begun at %s, want t0: it started over", s.Operation.StepStartedAt)
	}
	c.Advance(20 * time.Second) // what was left of the minute
	e.Trigger(k)
	e.wait(k, "Synced", isPhase(reconcile.Synced))
}

// TestToyKindSuperseded: a new desired state in the middle of a pause
// supersedes the operation at the next pass, without waiting for the pause.
func TestToyKindSuperseded(t *testing.T) {
	l := &lamps{lit: map[unit.Key]string{}}
	c := clock.NewFake(t0)
	k := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}
	e := startEngine(t, openStore(t, t.TempDir()), c, l, lamp("hall", "dev", "red"))
	e.wait(k, "warmed up", isPhase(reconcile.Progressing))
	c.Advance(30 * time.Second)
	e.Apply([]unit.Desired{lamp("hall", "dev", "blue")}) // the clock does not move: only the new state wakes the worker
	s := e.wait(k, "superseded", func(s reconcile.UnitStatus) bool {
		return s.Phase == reconcile.Progressing && strings.Contains(s.Message, "blue")
	})
	if !s.Operation.StepStartedAt.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("the new warm-up began at %s, want when the new state came", s.Operation.StepStartedAt)
	}
	c.Advance(warmUp)
	e.Trigger(k)
	e.wait(k, "Synced", isPhase(reconcile.Synced))
	if got := l.steps(); !slices.Equal(got, []string{"lit lamp hall @ dev blue"}) {
		t.Errorf("steps %q: red was lit, or blue twice", got)
	}
}

// TestToyKindFailureNotRetried: a failed target is not tried again, not
// even by an engine restarted, until the desired state changes.
func TestToyKindFailureNotRetried(t *testing.T) {
	l := &lamps{lit: map[unit.Key]string{}}
	c := clock.NewFake(t0)
	dir := t.TempDir()
	st := openStore(t, dir)
	k := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}
	bad := unit.Desired{Key: k, Spec: json.RawMessage(`{"color":"green","fail":true}`)}
	e := startEngine(t, st, c, l, bad)
	e.wait(k, "warmed up", isPhase(reconcile.Progressing))
	c.Advance(warmUp)
	e.Trigger(k)
	s := e.wait(k, "Failed", isPhase(reconcile.Failed))
	if s.Reason != reconcile.ReasonRolloutFailed {
		t.Errorf("failed with reason %q", s.Reason)
	}
	e.stop()
	st.Close()

	st = openStore(t, dir)
	e = startEngine(t, st, c, l, bad)
	e.wait(k, "Failed again", isPhase(reconcile.Failed))
	for range 3 { // passes that could retry it, if they would
		e.Trigger(k)
		c.Advance(warmUp)
	}
	e.wait(k, "still Failed", func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Failed && s.Operation == nil })
	if rec, err := st.UnitState(t.Context(), "lamp", "hall", "dev"); err != nil || rec.Operation != nil || rec.Failed == nil {
		t.Fatalf("after the restart: %+v, %v; want the failure kept and no operation", rec, err)
	}
	e.Apply([]unit.Desired{lamp("hall", "dev", "green")}) // the spec changes: tried again
	e.wait(k, "tried again", isPhase(reconcile.Progressing))
}

// TestToyKindDependencies: a unit's change waits until the unit it depends
// on is Synced; removed together, the dependent goes first.
func TestToyKindDependencies(t *testing.T) {
	l := &lamps{lit: map[unit.Key]string{}}
	c := clock.NewFake(t0)
	power := unit.Key{Kind: "lamp", Name: "power", Env: "dev"}
	hall := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}
	e := startEngine(t, openStore(t, t.TempDir()), c, l, lamp("hall", "dev", "red", power), lamp("power", "dev", "white"))
	s := e.wait(hall, "held", func(s reconcile.UnitStatus) bool { return s.Reason == reconcile.ReasonDependencyNotReady })
	if !strings.Contains(s.Message, "lamp power @ dev") || s.Phase != reconcile.Pending {
		t.Errorf("held: %+v", s)
	}
	e.wait(power, "warming", isPhase(reconcile.Progressing))
	c.Advance(warmUp)
	e.Trigger(power)
	e.wait(power, "Synced", isPhase(reconcile.Synced))
	e.wait(hall, "warming", isPhase(reconcile.Progressing)) // woken by power being Synced
	c.Advance(warmUp)
	e.Trigger(hall)
	e.wait(hall, "Synced", isPhase(reconcile.Synced))

	e.Apply(nil)
	deadline := time.Now().Add(10 * time.Second)
	for len(e.Status()) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := len(e.Status()); n != 0 {
		t.Fatalf("%d units left after both were removed: %+v", n, e.Status())
	}
	want := []string{"lit lamp power @ dev white", "lit lamp hall @ dev red", "off lamp hall @ dev", "off lamp power @ dev"}
	if got := l.steps(); !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
	if recs, err := e.st.UnitStates(t.Context()); err != nil || len(recs) != 0 {
		t.Errorf("records after both were pruned: %+v, %v", recs, err)
	}
}

// TestToyKindDependencyFailed: a unit waiting for one that fails says so
// at once, with its own reason (the portal counts it failed), not at the
// next resync; once the dependency is mended it goes on.
func TestToyKindDependencyFailed(t *testing.T) {
	l := &lamps{lit: map[unit.Key]string{}}
	c := clock.NewFake(t0)
	power := unit.Key{Kind: "lamp", Name: "power", Env: "dev"}
	hall := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}
	bad := unit.Desired{Key: power, Spec: json.RawMessage(`{"color":"white","fail":true}`)}
	e := startEngine(t, openStore(t, t.TempDir()), c, l, lamp("hall", "dev", "red", power), bad)
	e.wait(hall, "held", func(s reconcile.UnitStatus) bool { return s.Reason == reconcile.ReasonDependencyNotReady })
	e.wait(power, "warming", isPhase(reconcile.Progressing))
	c.Advance(warmUp) // less than the resync: only power's failure wakes hall
	e.Trigger(power)
	e.wait(power, "Failed", isPhase(reconcile.Failed))
	s := e.wait(hall, "held by a failure", func(s reconcile.UnitStatus) bool { return s.Reason == reconcile.ReasonDependencyFailed })
	if s.Phase != reconcile.Pending || !strings.Contains(s.Message, "lamp power @ dev") {
		t.Errorf("held by a failure: %+v", s)
	}
	e.Apply([]unit.Desired{lamp("hall", "dev", "red", power), lamp("power", "dev", "white")})
	e.wait(power, "warming again", isPhase(reconcile.Progressing))
	e.wait(hall, "held, not by a failure", func(s reconcile.UnitStatus) bool { return s.Reason == reconcile.ReasonDependencyNotReady })
}

// TestDependencyFailedFirst: a unit that waits for two, one not there
// (never Synced) and one that Failed, says the failure, whatever the
// order of its dependencies.
func TestDependencyFailedFirst(t *testing.T) {
	l := &lamps{lit: map[unit.Key]string{}}
	c := clock.NewFake(t0)
	ghost := unit.Key{Kind: "lamp", Name: "ghost", Env: "dev"}
	power := unit.Key{Kind: "lamp", Name: "power", Env: "dev"}
	hall := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}
	bad := unit.Desired{Key: power, Spec: json.RawMessage(`{"color":"white","fail":true}`)}
	e := startEngine(t, openStore(t, t.TempDir()), c, l, lamp("hall", "dev", "red", ghost, power), bad)
	e.wait(power, "warming", isPhase(reconcile.Progressing))
	c.Advance(warmUp)
	e.Trigger(power)
	e.wait(power, "Failed", isPhase(reconcile.Failed))
	s := e.wait(hall, "held by the failure", func(s reconcile.UnitStatus) bool { return s.Reason == reconcile.ReasonDependencyFailed })
	if !strings.Contains(s.Message, "lamp power @ dev") {
		t.Errorf("held by the failure: %+v, want it named", s)
	}
}

// TestToyKindErrors: a failed observation reports the unit Degraded with
// the reason the kind gave; a desired state that does not decode keeps the
// last one in force and says so; a lamp found existing and not desired is
// pruned.
func TestToyKindErrors(t *testing.T) {
	stray := unit.Key{Kind: "lamp", Name: "stray", Env: "dev"}
	l := &lamps{lit: map[unit.Key]string{stray: "pink"}}
	c := clock.NewFake(t0)
	hall := unit.Key{Kind: "lamp", Name: "hall", Env: "dev"}
	e := startEngine(t, openStore(t, t.TempDir()), c, l, lamp("hall", "dev", "red"))
	e.wait(hall, "warming", isPhase(reconcile.Progressing))
	c.Advance(warmUp)
	e.Trigger(hall)
	e.wait(hall, "Synced", isPhase(reconcile.Synced))
	if l.shows(stray) != "" {
		t.Errorf("the stray lamp was not pruned")
	}

	l.mu.Lock()
	l.observeErr = reconcile.Errorf(reconcile.ReasonRuntimeUnreachable, "the switchboard is away")
	l.mu.Unlock()
	e.Trigger(hall)
	s := e.wait(hall, "Degraded", isPhase(reconcile.Degraded))
	if s.Reason != reconcile.ReasonRuntimeUnreachable || s.Message != "the switchboard is away" {
		t.Errorf("after a failed observation: %+v", s)
	}
	l.mu.Lock()
	l.observeErr = nil
	l.mu.Unlock()

	e.Apply([]unit.Desired{{Key: hall, Spec: json.RawMessage(`{"color":""}`)}})
	s = e.wait(hall, "refusing the new state", func(s reconcile.UnitStatus) bool { return s.Reason == reconcile.ReasonInvalidSpec })
	if s.Phase != reconcile.Failed || !strings.Contains(s.Message, "needs a color") || l.shows(hall) != "red" {
		t.Errorf("with a desired state that does not decode: %+v, showing %q", s, l.shows(hall))
	}
}

// TestDuplicateKind: two kinds with one ID are refused.
func TestDuplicateKind(t *testing.T) {
	if _, err := reconcile.New(reconcile.Config{Kinds: []reconcile.Kind{&lamps{}, &lamps{}}}); err == nil {
		t.Error("two kinds named lamp: no error")
	}
}
