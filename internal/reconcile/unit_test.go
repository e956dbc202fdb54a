package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// TestCanaryReplicas: beside n old pods, the canary's share of pods is
// about the step's weight, never zero and never more than the release's.
func TestCanaryReplicas(t *testing.T) {
	for _, tc := range []struct{ n, weight, want int }{
		{1, 50, 1}, {1, 10, 1}, {9, 10, 1}, {4, 20, 1}, {3, 50, 3}, {10, 50, 10}, {6, 25, 2}, {2, 90, 2},
	} {
		if got := canaryReplicas(tc.n, tc.weight); got != tc.want {
			t.Errorf("canaryReplicas(%d, %d%%) = %d, want %d", tc.n, tc.weight, got, tc.want)
		}
	}
}

// fakeUnits is a UnitDriver whose health a test scripts.
type fakeUnits struct {
	runtime.UnitDriver
	mu      sync.Mutex
	applied []runtime.UnitSpec
	health  func(n int) ([]runtime.WorkloadHealth, error) // n: calls so far
	calls   int
}

func (f *fakeUnits) Apply(_ context.Context, us runtime.UnitSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, us)
	return nil
}

func (f *fakeUnits) Health(context.Context, string, string) ([]runtime.WorkloadHealth, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.health(f.calls)
}

// oneImage stands in for socle's images where a test renders nothing:
// every container runs the release's artifact.
type oneImage struct{ Images }

func (oneImage) Pins(_ context.Context, u plan.Unit, digest string) (map[string]string, error) {
	out := map[string]string{}
	for n := range u.Containers {
		out[n] = digest
	}
	return out, nil
}

func unitWorker(deadline time.Duration) *worker {
	return &worker{e: &Engine{cfg: Config{ProgressDeadline: deadline, Images: oneImage{}}}}
}

func healthy(rel string, ready int) []runtime.WorkloadHealth {
	return []runtime.WorkloadHealth{{Name: "web-" + rel, Release: rel, Desired: ready, Updated: ready, Ready: ready, Available: ready, State: runtime.WorkloadHealthy}}
}

// TestUnitWaitMinimum: a Deployment healthy at fewer pods than the
// release's minimum (an autoscaled one not scaled up yet) has not taken
// over yet.
func TestUnitWaitMinimum(t *testing.T) {
	f := &fakeUnits{health: func(n int) ([]runtime.WorkloadHealth, error) {
		if n < 4 {
			return healthy("r2", 1), nil
		}
		return healthy("r2", 3), nil
	}}
	if err := unitWorker(time.Minute).unitWait(t.Context(), f, "web", "dev", "r2", 3); err != nil {
		t.Fatal(err)
	}
	if f.calls < 4 {
		t.Errorf("unitWait returned after %d health reads, at 1 of at least 3 pods ready", f.calls)
	}
}

// TestUnitHoldHealthUnreadable: a canary whose health cannot be read does
// not pass its pause; it is rolled back once that lasts the progress
// deadline.
func TestUnitHoldHealthUnreadable(t *testing.T) {
	f := &fakeUnits{health: func(int) ([]runtime.WorkloadHealth, error) { return nil, errors.New("the API server is away") }}
	d := &plan.Unit{App: "web", Env: "dev"}
	start := time.Now()
	err := unitWorker(600*time.Millisecond).unitHold(t.Context(), f, d, "r2", 10*time.Millisecond)
	var rb *rollback
	if !errors.As(err, &rb) || !strings.Contains(rb.reason, "could not be read") {
		t.Fatalf("unitHold with unreadable health = %v, want a rollback", err)
	}
	if time.Since(start) < 600*time.Millisecond {
		t.Errorf("rolled back after %s, before the progress deadline", time.Since(start))
	}
	// Health read again in time: the step passes.
	f = &fakeUnits{health: func(n int) ([]runtime.WorkloadHealth, error) {
		if n < 3 {
			return nil, errors.New("the API server is away")
		}
		return healthy("r2", 1), nil
	}}
	if err := unitWorker(time.Minute).unitHold(t.Context(), f, d, "r2", 10*time.Millisecond); err != nil || f.calls < 3 {
		t.Fatalf("unitHold = %v after %d reads, want a pass on a health read after the errors", err, f.calls)
	}
}

// TestBlueGreenAfterRolling: a blue/green release after a rolling one
// starts with the service on the rolling release alone.
func TestBlueGreenAfterRolling(t *testing.T) {
	f := &fakeUnits{health: func(int) ([]runtime.WorkloadHealth, error) { return healthy("r2", 2), nil }}
	d := &plan.Unit{App: "web", Env: "dev", Replicas: spec.Replicas{Min: 2, Max: 2}, Rollout: spec.Rollout{Strategy: spec.StrategyBlueGreen}}
	prev := &store.Release{ID: 1, Strategy: string(spec.StrategyRolling)}
	if err := unitWorker(time.Minute).unitStrategy(t.Context(), f, d, prev, "r2", "sha256:x"); err != nil {
		t.Fatal(err)
	}
	if len(f.applied) == 0 || f.applied[0].Serve != "r1" {
		t.Fatalf("first apply %+v, want the service on r1 alone", f.applied)
	}
	if last := f.applied[len(f.applied)-1]; last.Serve != "r2" || len(last.Keep) != 0 {
		t.Errorf("last apply %+v, want r2 served and r1 pruned", last)
	}
}

// restoreUnits fails its first restores, then runs release r1 alone.
type restoreUnits struct {
	fakeUnits
	fails    int
	restores int
}

func (f *restoreUnits) Restore(context.Context, string, string, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.restores++; f.restores <= f.fails {
		return errors.New("the API server refused")
	}
	f.health = func(int) ([]runtime.WorkloadHealth, error) { return healthy("r1", 1), nil }
	return nil
}

// TestUnitRestoreRetried: a restore that failed after a rollout is
// reported and tried again at the next passes until it succeeds.
func TestUnitRestoreRetried(t *testing.T) {
	f := &restoreUnits{fails: 1}
	f.health = func(int) ([]runtime.WorkloadHealth, error) {
		return append(healthy("r2", 0), healthy("r1", 1)...), nil // the failed r2 is still there
	}
	w := unitWorker(time.Minute)
	w.e.log = slog.New(slog.DiscardHandler)
	d := &plan.Unit{App: "web", Env: "dev"}
	cur := store.Release{ID: 1, Strategy: string(spec.StrategyRolling)}
	w.unitSteady(t.Context(), f, d, cur, true)
	if w.status.Phase != Degraded || !strings.Contains(w.status.Message, "restoring r1 failed") {
		t.Fatalf("after a failed restore: %s %q, want Degraded saying so", w.status.Phase, w.status.Message)
	}
	w.unitSteady(t.Context(), f, d, cur, true)
	if f.restores != 2 || w.status.Phase != Failed || !strings.Contains(w.status.Message, "r1 keeps running") {
		t.Fatalf("next pass: %d restores, %s %q; want the restore retried and r1 running", f.restores, w.status.Phase, w.status.Message)
	}
	w.unitSteady(t.Context(), f, d, cur, true)
	if f.restores != 2 {
		t.Errorf("restored again (%d) once r1 alone runs", f.restores)
	}
}
