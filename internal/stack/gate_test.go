package stack

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/unit"
)

// offsetClock is socle's time moved by a file, as the tests of the
// binary move it: real time, shifted to a chosen instant.
type offsetClock struct {
	t *testing.T
	clock.Offset
}

// at moves the clock to about when.
func (c offsetClock) at(when time.Time) {
	c.t.Helper()
	tmp := c.Path + ".tmp"
	if err := os.WriteFile(tmp, []byte(time.Until(when).Round(time.Millisecond).String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, c.Path); err != nil {
		c.t.Fatal(err)
	}
}

// TestKindGated holds a gated instance's plan until its gates open for
// that plan, through the real engine, terraform and store: the author's
// approval does not count; another's does, but the window holds the
// plan, saying when it opens; a freeze holds it; the state changed
// outside the kind (another apply of the instance) makes the kind plan
// again, and the approval of the old plan does not carry over; the new
// plan approved, inside the window, is applied as planned.
func TestKindGated(t *testing.T) {
	dir := checkout(t)
	// prod: a window on Tuesdays 10:00-11:00 UTC.
	edit(t, dir, "socle.yaml", "promotion: {from: dev}", `promotion: {from: dev, windows: ["Tue 10:00-11:00 UTC"]}`)
	f := &inForce{}
	f.set(t, "rev1", dir)
	c := offsetClock{t, clock.Offset{Path: filepath.Join(t.TempDir(), "offset"), Poll: 10 * time.Millisecond}}
	tuesday := nextTuesday(time.Now().UTC())
	c.at(tuesday.Add(10*time.Hour + 30*time.Minute)) // inside the window
	e := startKind(t, f, newRunner(t), time.Hour, func(kc *KindConfig, ec *reconcile.Config) {
		ec.Clock = c.Offset
		kc.Author = func(_ *spec.Repo, rev string) string {
			return map[string]string{"rev1": "ann", "rev2": "carol", "rev3": "carol"}[rev]
		}
	})
	e.apply()
	prod := e.wait("app-zone", "prod", "awaiting approval", phase(reconcile.Blocked, ReasonAwaitingApproval))
	if !strings.Contains(prod.Message, "waits for 1 approval (not by ann, who wrote the change)") || !strings.Contains(prod.Message, "1 to add") {
		t.Errorf("prod says %q", prod.Message)
	}
	p1, _, _ := e.r.LastPlan("app-zone", "prod")
	if p1.PlanID == "" || !strings.Contains(prod.Message, p1.PlanID) {
		t.Fatalf("prod says %q, its plan is %q", prod.Message, p1.PlanID)
	}

	// The author approves: it does not count.
	e.approve("app-zone", "prod", p1.PlanID, "ann")
	again := e.wait("app-zone", "prod", "looked at again", func(s reconcile.UnitStatus) bool { return s.UpdatedAt.After(prod.UpdatedAt) })
	if again.Reason != ReasonAwaitingApproval || !strings.Contains(again.Message, "waits for 1 approval") {
		t.Errorf("after the author's approval: %s %q", again.Reason, again.Message)
	}

	// Outside the window, another user approves: held by the window,
	// which says when it opens.
	c.at(tuesday.Add(12 * time.Hour))
	e.approve("app-zone", "prod", p1.PlanID, "bob")
	held := e.wait("app-zone", "prod", "held by the window", phase(reconcile.Blocked, reconcile.ReasonGateClosed))
	opens := tuesday.AddDate(0, 0, 7).Add(10 * time.Hour).Format(time.RFC3339)
	if want := "is approved by bob; the window Tue 10:00-11:00 UTC opens at " + opens; !strings.Contains(held.Message, want) {
		t.Errorf("held says %q, want %q", held.Message, want)
	}

	// A freeze of prod, inside the window: held by the freeze.
	dir2 := checkout(t)
	edit(t, dir2, "socle.yaml", "promotion: {from: dev}", `promotion: {from: dev, windows: ["Tue 10:00-11:00 UTC"]}`)
	end := tuesday.AddDate(0, 0, 8)
	freeze := "\nfreezes:\n  - {name: year-end, environments: [prod], start: " + tuesday.Format("2006-01-02") + ", end: " + end.Format("2006-01-02") + ", reason: no change before the audit}\n"
	if err := os.WriteFile(filepath.Join(dir2, "socle.yaml"), append(must(os.ReadFile(filepath.Join(dir2, "socle.yaml"))), freeze...), 0o644); err != nil {
		t.Fatal(err)
	}
	c.at(tuesday.Add(10*time.Hour + 30*time.Minute))
	f.set(t, "rev2", dir2)
	e.apply()
	frozen := e.wait("app-zone", "prod", "frozen", func(s reconcile.UnitStatus) bool {
		return s.Revision == "rev2" && s.Reason == reconcile.ReasonGateClosed && strings.Contains(s.Message, "frozen:")
	})
	if want := "frozen: year-end: no change before the audit until " + end.Format(time.RFC3339); !strings.Contains(frozen.Message, want) || !strings.Contains(frozen.Message, p1.PlanID) {
		t.Errorf("frozen says %q, want %q", frozen.Message, want)
	}
	if _, ran := e.lastRun("app-zone", "prod"); ran {
		t.Fatal("prod was applied through a closed gate")
	}

	// Between the approval and the apply, the instance's state changes:
	// someone applies another content of it. The kind plans again; bob's
	// approval was of the old plan and does not count for the new one.
	other := checkout(t)
	edit(t, other, "stacks/app-zone/main.tf", `output "subnet_id"`, "resource \"terraform_data\" \"extra\" {\n  input = var.env\n}\n\noutput \"subnet_id\"")
	e.applyDirectly(other, "app-zone", "prod")
	f.set(t, "rev3", dir) // no freeze; inside the window
	e.apply()
	replanned := e.wait("app-zone", "prod", "planned again", func(s reconcile.UnitStatus) bool {
		return s.Revision == "rev3" && s.Reason == ReasonAwaitingApproval && !strings.Contains(s.Message, p1.PlanID)
	})
	p2, _, _ := e.r.LastPlan("app-zone", "prod")
	if p2.PlanID == p1.PlanID || !strings.Contains(replanned.Message, p2.PlanID) || !strings.Contains(replanned.Message, "1 to destroy") {
		t.Errorf("after the state changed: %q (plan %s, was %s)", replanned.Message, p2.PlanID, p1.PlanID)
	}
	// The content is still ann's (rev1), though carol wrote the
	// revisions since, and the plan was made again: ann's approval of
	// the new plan does not count either.
	if !strings.Contains(replanned.Message, "(not by ann, who wrote the change)") {
		t.Errorf("the new plan's author is not ann's: %q", replanned.Message)
	}
	e.approve("app-zone", "prod", p2.PlanID, "ann")
	still := e.wait("app-zone", "prod", "looked at again", func(s reconcile.UnitStatus) bool { return s.UpdatedAt.After(replanned.UpdatedAt) })
	if still.Reason != ReasonAwaitingApproval || !strings.Contains(still.Message, "waits for 1 approval") {
		t.Errorf("after ann approved her own change's new plan: %s %q", still.Reason, still.Message)
	}
	if from, ok, err := newRunnerAt(e.r.Dir).PlanOrigin("app-zone", "prod", p2.Hash); err != nil || !ok || from != "rev1" {
		t.Errorf("a restarted runner reads the plan's origin as %q %v %v, want rev1", from, ok, err)
	}

	// The new plan approved, inside the window: applied, as planned.
	e.approve("app-zone", "prod", p2.PlanID, "bob")
	e.wait("app-zone", "prod", "applied", phase(reconcile.Synced, ""))
	run, _ := e.lastRun("app-zone", "prod")
	if run.Status != RunApplied || run.PlanID != p2.PlanID {
		t.Errorf("prod's last run %s of %s, want Applied of %s", run.Status, run.PlanID, p2.PlanID)
	}
	var prodApplies []Applied
	for _, a := range e.f.appliedWith() {
		if a.Instance == "prod" {
			prodApplies = append(prodApplies, a)
		}
	}
	if len(prodApplies) != 1 || !slices.Equal(prodApplies[0].Approvers, []string{"bob"}) || prodApplies[0].Revision != "rev1" || prodApplies[0].Summary.Destroy != 1 {
		t.Errorf("the kind's applies of prod: %+v", prodApplies)
	}
}

func nextTuesday(now time.Time) time.Time {
	d := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for d.Weekday() != time.Tuesday || !d.After(now) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// approve records user's approval of plan in the store, as the API does,
// and triggers the unit.
func (e *kindEngine) approve(stack, instance, plan, user string) {
	e.t.Helper()
	if _, err := e.store.AddApproval(e.t.Context(), store.Approval{App: StoreApp(stack), Env: instance, Artifact: plan, User: user}, nil); err != nil {
		e.t.Fatal(err)
	}
	e.Trigger(unit.Key{Kind: KindID, Name: stack, Env: instance})
}

// applyDirectly plans and applies dir's content of the instance through
// the runner, as socle stack on the command line would: the lock keeps
// it apart from the kind's runs.
func (e *kindEngine) applyDirectly(dir, name, instance string) {
	e.t.Helper()
	repo := load(e.t, dir)
	s := repo.Stack(name)
	deadline := time.Now().Add(time.Minute)
	for {
		res := e.r.Plan(context.Background(), repo, os.DirFS(dir), s, instance)
		if res.Reason != ReasonLocked {
			if res.Status != StatusPlanned {
				e.t.Fatalf("planning %s @ %s directly: %s %s", name, instance, res.Status, res.Message)
			}
			run := e.r.Apply(context.Background(), s, instance, Approved{PlanID: res.PlanID, Hash: res.Hash})
			if run.Reason != ReasonLocked {
				if run.Status != RunApplied {
					e.t.Fatalf("applying %s @ %s directly: %s %s", name, instance, run.Status, run.Message)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s @ %s stayed locked", name, instance)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newRunnerAt is a runner on dir as a restarted socle makes it.
func newRunnerAt(dir string) *Runner { return &Runner{Dir: dir} }
