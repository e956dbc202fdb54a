package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/store"
)

func auditActions(t *testing.T, st store.Store, action string) int {
	t.Helper()
	n := 0
	for rec, err := range store.AuditTrail(context.Background(), st, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Action == action {
			n++
		}
	}
	return n
}

func countEvents(t *testing.T, st store.Store) int {
	t.Helper()
	evs, err := st.Events(context.Background(), store.EventFilter{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestDeniedUnitRecordsOnce: the demo's policy denies worker @ sandbox. Over
// two simulated days, nothing asks for the unchanged revision to be planned
// again on a timer, and planning it again (as an approval, a finished
// release or a unit changing phase asks) decides the same and records
// nothing: one revision.apply, one plan, no new event. A new commit is
// recorded, once.
func TestDeniedUnitRecordsOnce(t *testing.T) {
	t.Parallel()
	repo, data := gitRepo(t), t.TempDir()
	clock := clock.NewFake(time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	s := startWith(t, Config{Repo: repo, Data: data, Clock: clock})
	defer s.stop()
	st := s.waitFor(t, "worker @ sandbox denied", func(st Status) bool { return st.LastGood != nil && len(st.Blocked) == 1 })
	if b := st.Blocked[0]; b.App != "worker" || b.ReasonCode != api.ReasonPolicyDenied || !strings.Contains(b.Reason, "sandbox-memory-limits") {
		t.Fatalf("blocked %+v, want worker @ sandbox denied by sandbox-memory-limits", b)
	}
	good := *st.LastGood
	events := countEvents(t, s.store)
	if n := auditActions(t, s.store, "revision.apply"); n != 1 {
		t.Fatalf("%d revision.apply records after the first plan, want 1", n)
	}

	for range 2 * 24 * 60 { // a minute at a time
		if n := clock.Waiters(); n != 0 {
			t.Fatalf("%d timers wait on the clock at %s: nothing should", n, clock.Now())
		}
		clock.Advance(time.Minute)
	}
	for range 50 {
		s.pipeline.PlanInForce(context.Background())
		s.pipeline.Replan()
	}
	// The asynchronous re-plans of Replan wait for one another: wait for
	// the last.
	s.pipeline.PlanInForce(context.Background())

	if n := auditActions(t, s.store, "revision.apply"); n != 1 {
		t.Errorf("%d revision.apply records after planning the same revision again, want 1", n)
	}
	if n := countPlans(t, s.store); n != 1 {
		t.Errorf("%d plans recorded, want 1", n)
	}
	if n := countEvents(t, s.store); n != events {
		t.Errorf("%d events, want %d: planning again decided the same", n, events)
	}
	st = s.status(t)
	if len(st.Blocked) != 1 || st.LastPlan == nil || st.LastPlan.ID == 0 {
		t.Errorf("status after the re-plans: blocked %+v, last plan %+v", st.Blocked, st.LastPlan)
	}

	// A new revision is new input: recorded, once.
	commit(t, repo, "apps/web/socle.yaml", "LOG_LEVEL: debug", "LOG_LEVEL: info", "web: quieter logs in dev")
	s.hook(t)
	s.waitFor(t, "the second revision", func(st Status) bool { return st.LastGood != nil && st.LastGood.SHA != good.SHA })
	if n := auditActions(t, s.store, "revision.apply"); n != 2 {
		t.Errorf("%d revision.apply records after a new commit, want 2", n)
	}
}

// TestFailedBuildSaysWhy: a commit that breaks an app's code fails its
// build with the real Go toolchain; the unit says so in one line with a
// reason code, keeps the compiler's last lines apart, and when it builds
// again; what ran before keeps running.
func TestFailedBuildSaysWhy(t *testing.T) {
	t.Parallel()
	repo, data := gitRepo(t), t.TempDir()
	s := start(t, repo, data)
	defer s.stop()
	s.waitFor(t, "web running in dev", func(st Status) bool {
		u := runtimeOf(st, "web", "dev")
		return u != nil && u.Phase == api.PhaseSynced
	})
	commit(t, repo, "apps/web/main.go", "greeting := os.Getenv(\"GREETING\")", "greeting := undefinedGreeting()", "web: greet from a function not written yet")
	s.hook(t)
	st := s.waitFor(t, "the failed build", func(st Status) bool {
		u := runtimeOf(st, "web", "dev")
		return u != nil && u.Reason == api.ReasonBuildFailed
	})
	u := runtimeOf(st, "web", "dev")
	if u.Phase != api.PhaseFailed || strings.Contains(u.Message, "\n") || !strings.Contains(u.Message, "exit status 1") {
		t.Errorf("status %s: %q, want Failed in one line with the command's exit status", u.Phase, u.Message)
	}
	if !strings.Contains(u.LogTail, "undefined: undefinedGreeting") || !strings.HasPrefix(u.LogTail, "$ go build") {
		t.Errorf("log tail %q, want the command and the compiler's error", u.LogTail)
	}
	if u.RetryAt.IsZero() || u.Release == 0 || u.Ready == 0 {
		t.Errorf("status %+v: want a retry time, and the release before running", u)
	}
}

func runtimeOf(st Status, app, env string) *api.UnitStatus {
	for i := range st.Runtime {
		if st.Runtime[i].App == app && st.Runtime[i].Env == env {
			return &st.Runtime[i]
		}
	}
	return nil
}
