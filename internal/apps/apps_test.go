package apps

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
	"github.com/socle-dev/socle/internal/unit"
)

// cluster is a runtime whose workloads a test scripts, in the manner of
// Kubernetes with simulated nodes: what is applied is healthy at once,
// with as many ready replicas as it wants, unless the test says
// otherwise. It stands in for a real runtime here because these tests are
// about the app kind's state machine; socle's replica runtime and the
// Kubernetes driver are tested against real processes and a real API
// server in their own packages and in test/e2e.
type cluster struct {
	mu       sync.Mutex
	applied  []runtime.UnitSpec
	running  map[string]int    // ready replicas by release
	sick     map[string]string // release → why it fails
	restores []string
	// restoreFails makes the next restores fail.
	restoreFails int
	healthErr    error
	healthCalls  int
	// stats, when not nil, makes the cluster Proxied: what its proxy
	// counted, by release.
	stats map[string]proxy.Snapshot
}

func newCluster() *cluster {
	return &cluster{running: map[string]int{}, sick: map[string]string{}}
}

func (c *cluster) Name() string                       { return "test" }
func (c *cluster) Capabilities() runtime.Capabilities { return runtime.Capabilities{Units: true} }

func replicasOf(w runtime.Workload) int {
	if w.Replicas > 0 {
		return w.Replicas
	}
	return max(w.Unit.Replicas.Min, 1)
}

func (c *cluster) Apply(_ context.Context, us runtime.UnitSpec) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = append(c.applied, us)
	keep := map[string]bool{}
	for _, k := range us.Keep {
		keep[k] = true
	}
	for _, w := range us.Workloads {
		keep[w.Release] = true
		c.running[w.Release] = replicasOf(w)
	}
	for rel := range c.running {
		if !keep[rel] {
			delete(c.running, rel)
		}
	}
	return nil
}

func (c *cluster) Drift(_ context.Context, us runtime.UnitSpec) (runtime.Drift, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return runtime.Drift{Applied: len(c.applied) > 0 && reflect.DeepEqual(c.applied[len(c.applied)-1], us)}, nil
}

func (c *cluster) Health(context.Context, string, string) ([]runtime.WorkloadHealth, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.healthCalls++
	if c.healthErr != nil {
		return nil, c.healthErr
	}
	var out []runtime.WorkloadHealth
	for rel, n := range c.running {
		h := runtime.WorkloadHealth{Name: "web-" + rel, Release: rel, Desired: n, Updated: n, Ready: n, Available: n, State: runtime.WorkloadHealthy}
		if why, ok := c.sick[rel]; ok {
			h.Ready, h.Available, h.State, h.Message = 0, 0, runtime.WorkloadFailed, why
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b runtime.WorkloadHealth) int { return strings.Compare(b.Release, a.Release) })
	return out, nil
}

func (c *cluster) Restore(_ context.Context, _, _, rel string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restores = append(c.restores, rel)
	if c.restoreFails > 0 {
		c.restoreFails--
		return errors.New("the API server refused")
	}
	c.running = map[string]int{rel: c.running[rel]}
	return nil
}

func (c *cluster) Prune(context.Context, string, string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.running)
	clear(c.running)
	return n, nil
}

func (c *cluster) Units(context.Context) ([]runtime.UnitKey, error) { return nil, nil }

func (c *cluster) specs() []runtime.UnitSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.applied)
}

func (c *cluster) set(f func(c *cluster)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// proxied is a cluster whose requests the test's proxy counts.
type proxied struct{ *cluster }

func (p proxied) Stats(_, _, rel string) proxy.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats[rel]
}

func (p proxied) URL(u *plan.Unit) string { return "http://" + u.App + "." + u.Env + ".localhost" }

// oneRuntime gives every environment rt.
type oneRuntime struct{ rt runtime.UnitDriver }

func (o oneRuntime) For(string) (runtime.UnitDriver, error) { return o.rt, nil }
func (o oneRuntime) All() []runtime.UnitDriver              { return []runtime.UnitDriver{o.rt} }

// builds stands in for socle's image builder (artifact.Builder, tested
// with the real toolchain in its own package): a unit's artifact is its
// source's name; builds of the sources in fail fail.
type builds struct {
	mu    sync.Mutex
	n     int
	lines []string
	fail  map[string]error
}

func (b *builds) Build(_ context.Context, u plan.Unit, progress func(string)) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	for _, l := range b.lines {
		progress(l)
	}
	if err := b.fail[u.Source]; err != nil {
		return "", err
	}
	return "sha256:" + u.Source, nil
}

func (b *builds) Pins(_ context.Context, u plan.Unit, digest string) (map[string]string, error) {
	out := map[string]string{}
	for n := range u.Containers {
		out[n] = digest
	}
	return out, nil
}

func (b *builds) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// harness runs the real engine with the app kind over a real SQLite store
// and a fake clock.
type harness struct {
	t      *testing.T
	clock  *clock.Fake
	st     store.Store
	rt     runtime.UnitDriver
	images *builds
	e      *reconcile.Engine
	stop   func()
	mu     sync.Mutex
	events []ReleaseEvent
	// onPhase, when set, is told the unit's phases.
	onPhase func(reconcile.UnitStatus)
}

func newHarness(t *testing.T, rt runtime.UnitDriver) *harness {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &harness{t: t, clock: clock.NewFake(t0), st: st, rt: rt, images: &builds{fail: map[string]error{}}}
}

// start starts an engine over what the harness keeps (store, runtime,
// clock): a second start after stop is socle restarted.
func (h *harness) start(units ...*plan.Unit) {
	h.t.Helper()
	kind := New(Config{Store: h.st, Runtimes: oneRuntime{h.rt}, Images: h.images, Clock: h.clock, ProgressDeadline: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnRelease: func(ev ReleaseEvent) { h.mu.Lock(); h.events = append(h.events, ev); h.mu.Unlock() }})
	e, err := reconcile.New(reconcile.Config{Store: h.st, Kinds: []reconcile.Kind{kind}, Clock: h.clock, Resync: time.Hour, OnPhase: h.onPhase,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.Start(ctx); err != nil {
		h.t.Fatal(err)
	}
	h.apply(e, units...)
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	h.e = e
	h.stop = func() { cancel(); <-done }
	h.t.Cleanup(h.stop)
}

func (h *harness) apply(e *reconcile.Engine, units ...*plan.Unit) {
	h.t.Helper()
	var ds []unit.Desired
	for _, u := range units {
		b, err := json.Marshal(u)
		if err != nil {
			h.t.Fatal(err)
		}
		ds = append(ds, unit.Desired{Key: Key(u.App, u.Env), Spec: b})
	}
	e.Apply(ds)
}

// until triggers web @ dev, without moving the clock, until cond holds
// for its status.
func (h *harness) until(what string, cond func(reconcile.UnitStatus) bool) reconcile.UnitStatus {
	h.t.Helper()
	k := Key("web", "dev")
	deadline := time.Now().Add(10 * time.Second)
	var last reconcile.UnitStatus
	for time.Now().Before(deadline) {
		for _, s := range h.e.Status() {
			if s.Key() == k {
				if last = s; cond(s) {
					return s
				}
			}
		}
		h.e.Trigger(k)
		time.Sleep(time.Millisecond)
	}
	h.t.Fatalf("web @ dev never %s; last status %+v", what, last)
	return last
}

func (h *harness) releases() []store.Release {
	h.t.Helper()
	rs, err := h.st.Releases(h.t.Context(), store.ReleaseFilter{App: "web", Env: "dev"})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Reverse(rs)
	return rs
}

func (h *harness) state() store.UnitState {
	h.t.Helper()
	s, err := h.st.UnitState(h.t.Context(), ID, "web", "dev")
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// pausing starts socle with web at v1, then rolls v2 out until its first
// canary step pauses.
func (h *harness) pausing() {
	h.t.Helper()
	h.start(web("v1"))
	h.until("runs v1", synced(1))
	h.apply(h.e, web("v2"))
	h.until("pauses at the first step", at(1, phasePausing))
}

func synced(rel int64) func(reconcile.UnitStatus) bool {
	return func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Synced && s.Release == rel }
}

func at(step int, phase string) func(reconcile.UnitStatus) bool {
	return func(s reconcile.UnitStatus) bool {
		return s.Operation != nil && s.Operation.Step == step && s.Operation.Phase == phase
	}
}

// web is web @ dev at a version, with a canary of two steps of a minute.
func web(version string) *plan.Unit {
	rate := 0.05
	return &plan.Unit{App: "web", Env: "dev", Revision: "rev-" + version, Source: version, Runtime: spec.RuntimeLocal,
		Containers: map[string]types.Container{"web": {Image: "."}},
		Replicas:   spec.Replicas{Min: 2, Max: 2},
		Rollout: spec.Rollout{Strategy: spec.StrategyCanary,
			Steps:    []spec.CanaryStep{{Weight: 20, Pause: spec.Duration(time.Minute)}, {Weight: 50, Pause: spec.Duration(time.Minute)}},
			Analysis: &spec.Analysis{MaxErrorRate: &rate, MinRequests: 10}},
	}
}

// TestCanaryResumesAtItsStep: socle stopped during the second canary step
// and started again resumes it, at its phase and with the time it began;
// no step is applied again from the start; the rollout ends with one
// release.
func TestCanaryResumesAtItsStep(t *testing.T) {
	c := newCluster()
	h := newHarness(t, c)
	h.start(web("v1"))
	h.until("runs v1", synced(1))

	h.apply(h.e, web("v2"))
	h.until("pauses at the first step", at(1, phasePausing))
	if st := h.state(); st.Operation == nil || st.Operation.Step != 0 || st.Operation.Phase != phasePausing {
		t.Fatalf("persisted %+v, want step 0 pausing", st.Operation)
	}
	h.clock.Advance(time.Minute)
	s := h.until("pauses at the second step", at(2, phasePausing))
	began := s.Operation.StepStartedAt
	if !began.Equal(t0.Add(time.Minute)) || s.Operation.Weight != 50 || s.Operation.Release != 2 || !strings.Contains(s.Message, "canary") {
		t.Fatalf("second step: %+v %q", s.Operation, s.Message)
	}
	h.stop()
	applied := len(c.specs())

	st := h.state()
	if st.Operation == nil || st.Operation.Step != 1 || st.Operation.Phase != phasePausing || !st.Operation.StepStartedAt.Equal(began) {
		t.Fatalf("persisted after the stop: %+v, want the second step pausing since %s", st.Operation, began)
	}
	h.clock.Advance(20 * time.Second)
	h.start(web("v2"))
	s = h.until("resumed", func(s reconcile.UnitStatus) bool { return s.Operation != nil && s.UpdatedAt.After(t0.Add(time.Minute)) })
	if s.Operation.Step != 2 || s.Operation.Phase != phasePausing || !s.Operation.StepStartedAt.Equal(began) {
		t.Fatalf("resumed at %+v, want the second step pausing since %s", s.Operation, began)
	}
	for _, us := range c.specs()[applied:] {
		if us.Weight == 20 {
			t.Errorf("the first step was applied again after the restart: %+v", us)
		}
	}
	h.clock.Advance(40 * time.Second) // what was left of the pause
	h.until("runs v2", synced(2))
	rels := h.releases()
	if len(rels) != 2 || rels[1].Status != store.Succeeded || rels[1].Strategy != "canary" {
		t.Fatalf("releases %+v, want r2 Succeeded after r1", rels)
	}
	if st := h.state(); st.Operation != nil || st.Failed != nil {
		t.Errorf("state after the rollout: %+v", st)
	}
	// The last specs: the new release whole at the last weight, then
	// serving alone, then alone.
	specs := c.specs()
	last := specs[len(specs)-3:]
	if last[0].Weight != 50 || last[0].Workloads[0].Replicas != 0 || last[1].Serve != "r2" || len(last[1].Keep) != 1 || len(last[2].Keep) != 0 {
		t.Errorf("the rollout ended with %+v", last)
	}
}

// TestRolledBackNotRetried: a canary whose error rate breaches the
// threshold is rolled back, what ran before runs again, and its target is
// not rolled out again, not even by socle restarted, until the desired
// state changes.
func TestRolledBackNotRetried(t *testing.T) {
	c := newCluster()
	c.stats = map[string]proxy.Snapshot{}
	rt := proxied{c}
	h := newHarness(t, rt)
	h.pausing()
	c.set(func(c *cluster) { c.stats["r2"] = proxy.Snapshot{Requests: 40, Errors: 8} })
	s := h.until("rolled back", func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Failed })
	if s.Reason != reconcile.ReasonRolledBack || !strings.Contains(s.Message, "canary error rate 20.0%") || s.Release != 1 {
		t.Fatalf("after the rollback: %+v", s)
	}
	if got := c.restores; len(got) != 1 || got[0] != "r1" {
		t.Errorf("restores %v, want r1 once", got)
	}
	h.stop()
	st := h.state()
	if st.Failed == nil || st.Failed.Release != 2 || st.Operation != nil {
		t.Fatalf("persisted %+v, want r2's failure and no operation", st)
	}

	h.clock.Advance(time.Second) // what the new socle reports is told apart from what was persisted
	h.start(web("v2"))
	s = h.until("says so after a restart", func(s reconcile.UnitStatus) bool {
		return s.Phase == reconcile.Failed && s.UpdatedAt.After(t0) || s.Phase == reconcile.Progressing
	})
	for range 3 {
		h.clock.Advance(time.Hour)
		h.until("is looked at again", func(s reconcile.UnitStatus) bool { return true })
	}
	if rels := h.releases(); len(rels) != 2 || s.Reason != reconcile.ReasonRolledBack {
		t.Fatalf("after the restart: %s %s; releases %+v; want r2 not retried", s.Phase, s.Reason, rels)
	}
	h.apply(h.e, web("v3"))
	h.until("rolls v3 out", at(1, phasePausing))
	if rels := h.releases(); len(rels) != 3 {
		t.Errorf("releases %+v, want v3's", rels)
	}
}

// TestCanaryAnalysisAfterProxyReset: the proxy counts from zero again
// after socle restarted; a baseline above what it counts now is taken as
// that reset, and the analysis goes on from zero instead of seeing no
// request.
func TestCanaryAnalysisAfterProxyReset(t *testing.T) {
	c := newCluster()
	c.stats = map[string]proxy.Snapshot{"r2": {Requests: 1000, Errors: 1}}
	h := newHarness(t, proxied{c})
	h.pausing()
	var base proxy.Snapshot
	if err := json.Unmarshal(h.state().Operation.StepData, &base); err != nil || base.Requests != 1000 {
		t.Fatalf("baseline %s (%v), want the proxy's counts when the pause began", h.state().Operation.StepData, err)
	}
	h.stop()
	c.set(func(c *cluster) { c.stats["r2"] = proxy.Snapshot{Requests: 30, Errors: 10} }) // counted since the restart
	h.start(web("v2"))
	s := h.until("rolled back", func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Failed })
	if !strings.Contains(s.Message, "over 30 requests") {
		t.Errorf("rolled back: %q, want the 30 requests counted since the reset", s.Message)
	}
}

// TestSupersededDuringPause: a new desired state during a canary's pause
// supersedes the rollout at the next pass, not after the pause.
func TestSupersededDuringPause(t *testing.T) {
	c := newCluster()
	h := newHarness(t, c)
	h.pausing()
	h.apply(h.e, web("v3")) // the clock does not move
	s := h.until("rolls v3 out", func(s reconcile.UnitStatus) bool { return s.Operation != nil && s.Operation.Release == 3 })
	if !s.Operation.StepStartedAt.Equal(t0) {
		t.Errorf("v3's rollout began at %s, want at once", s.Operation.StepStartedAt)
	}
	rels := h.releases()
	if len(rels) != 3 || rels[1].Status != store.Superseded || rels[2].Previous != 1 {
		t.Fatalf("releases %+v, want r2 Superseded by r3, which replaces r1", rels)
	}
	specs := c.specs()
	if last := specs[len(specs)-1]; last.Workloads[0].Release != "r3" || !slices.Equal(last.Keep, []string{"r1"}) {
		t.Errorf("applied %+v, want r3 beside r1, r2 gone", last)
	}
	// Back to what runs during a rollout: it ends, and r1 runs alone.
	h.apply(h.e, web("v1"))
	h.until("runs v1 again", synced(1))
	if rels := h.releases(); rels[2].Status != store.Superseded || len(rels) != 3 {
		t.Errorf("releases %+v, want r3 Superseded and no new one", rels)
	}
}

// TestRemovedDuringRollout: a unit removed from Git during a rollout is
// pruned at the next pass; its release ends Interrupted.
func TestRemovedDuringRollout(t *testing.T) {
	c := newCluster()
	h := newHarness(t, c)
	h.pausing()
	h.apply(h.e)
	deadline := time.Now().Add(10 * time.Second)
	for len(h.e.Status()) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := len(h.e.Status()); n != 0 {
		t.Fatalf("%d units after the removal", n)
	}
	if rels := h.releases(); rels[1].Status != store.Interrupted {
		t.Errorf("releases %+v, want r2 Interrupted", rels)
	}
	c.set(func(c *cluster) {
		if len(c.running) != 0 {
			t.Errorf("still running: %v", c.running)
		}
	})
}

// TestFailedRolloutRestoreRetried: a restore that failed after a rollout
// is reported and tried again at the next passes until it succeeds.
func TestFailedRolloutRestoreRetried(t *testing.T) {
	c := newCluster()
	h := newHarness(t, c)
	h.start(web("v1"))
	h.until("runs v1", synced(1))
	// The restore fails until the test has seen it fail (until triggers
	// the unit as it polls: a set number of failures could all pass
	// between two looks).
	c.set(func(c *cluster) { c.restoreFails = 1 << 30; c.sick["r2"] = "ImagePullBackOff" })
	h.apply(h.e, web("v2"))
	s := h.until("fails to restore", func(s reconcile.UnitStatus) bool { return s.Reason == reconcile.ReasonRuntimeError })
	if s.Phase != reconcile.Degraded || !strings.Contains(s.Message, "restoring r1 failed") {
		t.Fatalf("after a failed restore: %+v", s)
	}
	c.set(func(c *cluster) { c.restoreFails = 0 })
	s = h.until("restored", func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Failed })
	if s.Reason != reconcile.ReasonRolloutFailed || !strings.Contains(s.Message, "r1 keeps running") || !strings.Contains(s.Message, "ImagePullBackOff") {
		t.Errorf("after the restore: %+v", s)
	}
	n := len(c.restores)
	for range 3 {
		h.e.Trigger(Key("web", "dev"))
		h.until("is looked at", func(reconcile.UnitStatus) bool { return true })
	}
	if len(c.restores) != n || n < 2 {
		t.Errorf("%d restores then %d, want a failed one and the one that worked, and no more once r1 alone runs", n, len(c.restores))
	}
}

// TestHealthUnreadableDuringPause: a canary whose health cannot be read
// does not pass its pause; it is rolled back once that lasts the progress
// deadline, and passes if health is read again in time.
func TestHealthUnreadableDuringPause(t *testing.T) {
	c := newCluster()
	h := newHarness(t, c)
	h.pausing()
	// Health becomes unreadable half way through the pause, once a pass
	// has looked at the unit then: a pass still under way at t0 would
	// otherwise see the error first and start the deadline at t0.
	h.clock.Advance(30 * time.Second)
	h.until("looked at", func(s reconcile.UnitStatus) bool { return s.UpdatedAt.Equal(t0.Add(30 * time.Second)) })
	c.set(func(c *cluster) { c.healthErr = errors.New("the API server is away"); c.healthCalls = 0 })
	h.until("health unread", func(reconcile.UnitStatus) bool { c.mu.Lock(); defer c.mu.Unlock(); return c.healthCalls > 0 })
	h.clock.Advance(30 * time.Second) // the pause is over, but unread for 30s
	h.until("looked at", func(s reconcile.UnitStatus) bool { return s.UpdatedAt.Equal(t0.Add(time.Minute)) })
	h.clock.Advance(20 * time.Second)
	s := h.until("looked at again", func(s reconcile.UnitStatus) bool { return s.UpdatedAt.Equal(t0.Add(80 * time.Second)) })
	if s.Operation == nil || s.Operation.Step != 1 {
		t.Fatalf("passed its pause without reading health: %+v", s)
	}
	c.set(func(c *cluster) { c.healthErr = nil })
	h.until("on to the second step", func(s reconcile.UnitStatus) bool { return s.Operation != nil && s.Operation.Step == 2 })

	c.set(func(c *cluster) { c.healthErr = errors.New("the API server is away"); c.healthCalls = 0 })
	h.until("health unread", func(reconcile.UnitStatus) bool { c.mu.Lock(); defer c.mu.Unlock(); return c.healthCalls > 0 })
	h.clock.Advance(time.Minute)
	h.until("rolled back", func(s reconcile.UnitStatus) bool {
		return s.Phase == reconcile.Failed || s.Reason == reconcile.ReasonRuntimeError
	})
	c.set(func(c *cluster) { c.healthErr = nil })
	s = h.until("rolled back", func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Failed })
	if s.Reason != reconcile.ReasonRolledBack || !strings.Contains(s.Message, "could not be read") {
		t.Errorf("after a minute without health: %+v", s)
	}
}

// TestFailedBuildWaits: a build says it runs, with its log's last line; a
// failed build shows its log's end and is not run again at every pass,
// only once its backoff (which doubles) has passed or when the app's files
// change.
func TestFailedBuildWaits(t *testing.T) {
	c := newCluster()
	h := newHarness(t, c)
	h.images.lines = []string{"$ go build -o $SOCLE_OUT/web .", "# example.com/web"}
	h.images.fail["v1"] = &commandFailed{cause: "exit status 1", tail: "$ go build -o $SOCLE_OUT/web .\n# example.com/web\n./main.go:12:2: undefined: handler"}
	var mu sync.Mutex
	var phases []reconcile.UnitStatus
	h.onPhase = func(s reconcile.UnitStatus) { mu.Lock(); phases = append(phases, s); mu.Unlock() }
	h.start(web("v1"))

	st := h.until("failed", func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Failed })
	mu.Lock()
	if len(phases) < 2 || phases[len(phases)-2].Phase != reconcile.Building || phases[len(phases)-2].LogTail != "$ go build -o $SOCLE_OUT/web ." {
		t.Errorf("phases %+v, want Building with the log's last line before Failed", phases)
	}
	mu.Unlock()
	if st.Reason != reconcile.ReasonBuildFailed || !strings.Contains(st.LogTail, "undefined: handler") ||
		!st.RetryAt.Equal(t0.Add(time.Minute)) || strings.Contains(st.Message, "\n") || !strings.Contains(st.Message, "failed: exit status 1;") {
		t.Fatalf("after a failed build: %+v", st)
	}
	for range 5 { // triggers, again and again: nothing changed
		h.e.Trigger(Key("web", "dev"))
	}
	h.clock.Advance(59 * time.Second)
	h.until("looked at", func(s reconcile.UnitStatus) bool { return s.UpdatedAt.Equal(t0.Add(59 * time.Second)) })
	if n := h.images.count(); n != 1 {
		t.Fatalf("%d builds before the backoff ended, want 1", n)
	}
	h.clock.Advance(2 * time.Second)
	st = h.until("built again", func(s reconcile.UnitStatus) bool { return s.RetryAt.Equal(t0.Add(61*time.Second + 2*time.Minute)) })
	if n := h.images.count(); n != 2 {
		t.Errorf("%d builds after the backoff, want 2", n)
	}
	// The app's files change: built again at once.
	h.images.fail["v2"] = h.images.fail["v1"]
	h.apply(h.e, web("v2"))
	st = h.until("built v2", func(s reconcile.UnitStatus) bool { return s.RetryAt.Equal(t0.Add(61*time.Second + time.Minute)) })
	if n := h.images.count(); n != 3 {
		t.Errorf("%d builds after the app changed, want 3", n)
	}
	// A new revision that leaves the app's files as they are is no reason
	// to build again.
	same := web("v2")
	same.Revision = "rev-v2-again"
	h.apply(h.e, same)
	h.e.Trigger(Key("web", "dev"))
	h.until("looked at", func(reconcile.UnitStatus) bool { return true })
	if n := h.images.count(); n != 3 {
		t.Errorf("a revision that does not touch the app built it again")
	}
	// The build works again: the unit rolls out.
	delete(h.images.fail, "v3")
	h.apply(h.e, web("v3"))
	h.until("runs v3", synced(1))
}

// commandFailed is a failed build command as the builder returns it: its
// cause, and its log's end apart.
type commandFailed struct{ cause, tail string }

func (e *commandFailed) Error() string   { return "building web: " + e.cause + "\n" + e.tail }
func (e *commandFailed) Unwrap() error   { return errors.New(e.cause) }
func (e *commandFailed) LogTail() string { return e.tail }

// TestCanaryReplicas: beside n old replicas, the canary's share is about
// the step's weight, never zero and never more than the release's.
func TestCanaryReplicas(t *testing.T) {
	for _, tc := range []struct{ n, weight, want int }{
		{1, 50, 1}, {1, 10, 1}, {9, 10, 1}, {4, 20, 1}, {3, 50, 3}, {10, 50, 10}, {6, 25, 2}, {2, 90, 2},
	} {
		if got := canaryReplicas(tc.n, tc.weight); got != tc.want {
			t.Errorf("canaryReplicas(%d, %d%%) = %d, want %d", tc.n, tc.weight, got, tc.want)
		}
	}
}

// TestRolloutSteps: what each strategy asks of the runtime, step by step.
func TestRolloutSteps(t *testing.T) {
	d := web("v2")
	wl := runtime.Workload{Release: "r2", Unit: d, Dedicated: true}
	rolling := runtime.Workload{Release: "r2", Unit: d}
	type want struct {
		serve  string
		keep   int
		weight int
		n      int // the workload's fixed replicas
		pause  time.Duration
	}
	for _, tc := range []struct {
		name     string
		strategy spec.Strategy
		wl       runtime.Workload
		prev     string
		want     []want
	}{
		{"a first release", spec.StrategyCanary, wl, "", []want{{serve: "r2"}}},
		{"rolling", spec.StrategyRolling, rolling, "r1", []want{{keep: 1}, {}}},
		// A blue/green release after a rolling one starts with the service
		// on the rolling release alone.
		{"blue/green", spec.StrategyBlueGreen, wl, "r1", []want{{serve: "r1", keep: 1}, {serve: "r2", keep: 1}, {serve: "r2"}}},
		{"canary", spec.StrategyCanary, wl, "r1", []want{
			{keep: 1, weight: 20, n: 1, pause: time.Minute}, {keep: 1, weight: 50, n: 2, pause: time.Minute},
			{keep: 1, weight: 50}, {serve: "r2", keep: 1}, {serve: "r2"}}},
	} {
		steps := rolloutSteps(d, tc.strategy, tc.wl, tc.prev)
		var got []want
		for _, st := range steps {
			got = append(got, want{serve: st.spec.Serve, keep: len(st.spec.Keep), weight: st.spec.Weight, n: st.spec.Workloads[0].Replicas, pause: st.pause})
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: steps %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestWaitMinimum: a release healthy with fewer ready replicas than the
// release's minimum (an autoscaled one not scaled up yet) has not taken
// over yet.
func TestWaitMinimum(t *testing.T) {
	k := New(Config{ProgressDeadline: time.Minute})
	d := web("v2")
	u := &reconcile.Unit{Spec: d, Now: t0, Operation: &store.Operation{Release: 2, Phase: phaseWaiting, StepStartedAt: t0}}
	o := &observed{d: d, applied: true, steps: []rolloutStep{{least: 3}},
		health: []runtime.WorkloadHealth{{Name: "web-r2", Release: "r2", Ready: 1, Desired: 1, State: runtime.WorkloadHealthy}}}
	if s := k.advance(u, o).(step); s.do != wait {
		t.Errorf("at 1 of at least 3 replicas ready: %s, want to wait", s)
	}
	o.health[0].Ready = 3
	if s := k.advance(u, o).(step); s.do != next {
		t.Errorf("at 3 of at least 3 replicas ready: %s, want the next step", s)
	}
	o.applied = false
	if s := k.advance(u, o).(step); s.do != ensure {
		t.Errorf("with the step's spec not applied: %s, want it applied", s)
	}
	u.Now = t0.Add(2 * time.Minute)
	if s := k.advance(u, o).(step); s.do != fail || s.status != store.Failed {
		t.Errorf("after twice the progress deadline: %s, want the rollout failed", s)
	}
}

// TestEmergencyOf: a release is recorded as an emergency change when it
// brings the target of an emergency pin, and not when the unit changes
// later under the same pin.
func TestEmergencyOf(t *testing.T) {
	t.Parallel()
	pinned := &plan.Unit{App: "api", Env: "prod", Revision: "r2", Artifact: "sha256:b", Emergency: "INC-1"}
	noDigest := &plan.Unit{App: "api", Env: "prod", Revision: "r2", Emergency: "INC-1"} // built by socle
	tests := []struct {
		name string
		d    *plan.Unit
		prev *store.Release
		tgt  store.Target
		want string
	}{
		{"a first release", pinned, nil, store.Target{Revision: "r2", Artifact: "sha256:b"}, "INC-1"},
		{"brings a new artifact", pinned, &store.Release{Revision: "r1", Artifact: "sha256:a"}, store.Target{Revision: "r2", Artifact: "sha256:b"}, "INC-1"},
		{"keeps the pin, new config", pinned, &store.Release{Revision: "r2", Artifact: "sha256:b", ConfigHash: "c1"}, store.Target{Revision: "r2", Artifact: "sha256:b", ConfigHash: "c2"}, ""},
		{"a pin without digest, first built", noDigest, &store.Release{Revision: "r1", Artifact: "sha256:a"}, store.Target{Revision: "r2", Artifact: "sha256:b"}, "INC-1"},
		{"a pin without digest, later", noDigest, &store.Release{Revision: "r2", Artifact: "sha256:b"}, store.Target{Revision: "r2", Artifact: "sha256:b", ConfigHash: "c2"}, ""},
		{"no emergency", &plan.Unit{Revision: "r2", Artifact: "sha256:b"}, nil, store.Target{Revision: "r2", Artifact: "sha256:b"}, ""},
	}
	for _, tt := range tests {
		if got := emergencyOf(tt.d, tt.prev, tt.tgt); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestStepsReachedAtOnceDoNotWaitForThePoll: a rollout that moves to a
// step looks at it again at once, not at the next poll, since the runtime
// is often there already (the step before did its work). Here the runtime
// reaches every step as it is applied: the rollouts end with no trigger
// and no tick of the clock. When each new step waited for the poll,
// commitlive's commit → Synced went from 0.33 s to 0.60 s.
func TestStepsReachedAtOnceDoNotWaitForThePoll(t *testing.T) {
	for _, strategy := range []spec.Strategy{spec.StrategyRolling, spec.StrategyBlueGreen} {
		t.Run(string(strategy), func(t *testing.T) {
			h := newHarness(t, newCluster())
			unit := func(version string) *plan.Unit {
				u := web(version)
				u.Rollout = spec.Rollout{Strategy: strategy}
				return u
			}
			h.start(unit("v1"))
			h.settles("runs v1", synced(1))
			h.apply(h.e, unit("v2"))
			h.settles("runs v2", synced(2))
			if now := h.clock.Now(); !now.Equal(t0) {
				t.Fatalf("the clock moved to %s", now)
			}
		})
	}
}

// settles waits, without triggering web @ dev or moving the clock, until
// cond holds for its status: what the engine does on its own.
func (h *harness) settles(what string, cond func(reconcile.UnitStatus) bool) {
	h.t.Helper()
	k := Key("web", "dev")
	var last reconcile.UnitStatus
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, s := range h.e.Status() {
			if s.Key() == k {
				if last = s; cond(s) {
					return
				}
			}
		}
	}
	h.t.Fatalf("web @ dev never %s on its own; last status %+v", what, last)
}
