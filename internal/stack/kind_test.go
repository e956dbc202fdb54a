package stack

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store/sqlite"
	"github.com/socle-dev/socle/internal/unit"
)

// inForce stands for the pipeline: the revision in force, which a test
// moves, with its files (a checkout per revision).
type inForce struct {
	mu      sync.Mutex
	repo    *spec.Repo
	sha     string
	dirs    map[string]string
	deny    string // an instance whose plans the policies deny
	runs    []Run
	applies []Applied
	drift   []DriftResult
	asked   []Result // told to OnApprovalNeeded
}

func (f *inForce) askedFor(instance string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var plans []string
	for _, r := range f.asked {
		if r.Instance == instance {
			plans = append(plans, r.PlanID)
		}
	}
	return plans
}

func (f *inForce) get() (*spec.Repo, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repo, f.sha
}

func (f *inForce) files(sha string) (fs.FS, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return os.DirFS(f.dirs[sha]), nil
}

func (f *inForce) judge(_ *spec.Repo, _ fs.FS, _ string, r *Result) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Instance == f.deny {
		return true, "no change in " + f.deny + " today"
	}
	return false, ""
}

func (f *inForce) set(t *testing.T, sha, dir string) {
	t.Helper()
	repo := load(t, dir)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dirs == nil {
		f.dirs = map[string]string{}
	}
	f.repo, f.sha, f.dirs[sha] = repo, sha, dir
}

func (f *inForce) appliedWith() []Applied {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Applied(nil), f.applies...)
}

func (f *inForce) applied() []Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Run(nil), f.runs...)
}

type kindEngine struct {
	*reconcile.Engine
	t     *testing.T
	f     *inForce
	r     *Runner
	store *sqlite.DB
}

// startKind runs the stack kind in a real engine on a real store; opts
// change its configuration.
func startKind(t *testing.T, f *inForce, r *Runner, resync time.Duration, opts ...func(*KindConfig, *reconcile.Config)) *kindEngine {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kc := KindConfig{Runner: r, InForce: f.get, Files: f.files, Judge: f.judge,
		OnRun: func(a Applied) {
			f.mu.Lock()
			f.runs, f.applies = append(f.runs, a.Run), append(f.applies, a)
			f.mu.Unlock()
		},
		OnDrift: func(d DriftResult, _ bool) { f.mu.Lock(); f.drift = append(f.drift, d); f.mu.Unlock() },
		OnApprovalNeeded: func(r Result, _ GateState, _ string) {
			f.mu.Lock()
			f.asked = append(f.asked, r)
			f.mu.Unlock()
		},
		// The approvals as the server keeps them.
		Approvals: func(ctx context.Context, stack, instance, planID string) ([]string, error) {
			as, err := st.Approvals(ctx, StoreApp(stack), instance, planID)
			users := make([]string, len(as))
			for i, a := range as {
				users[i] = a.User
			}
			return users, err
		},
	}
	ec := reconcile.Config{Store: st, Resync: resync, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&kc, &ec)
	}
	ec.Kinds = []reconcile.Kind{NewKind(kc)}
	e, err := reconcile.New(ec)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &kindEngine{Engine: e, t: t, f: f, r: r, store: st}
}

// apply hands the engine the units of the revision in force.
func (e *kindEngine) apply() {
	repo, sha := e.f.get()
	e.Apply(Units(repo, sha, nil))
}

// wait waits until cond holds for the status of stack @ instance,
// polling the engine: a condition, not a timing; terraform is slow, so
// the deadline is generous.
func (e *kindEngine) wait(stack, instance, what string, cond func(reconcile.UnitStatus) bool) reconcile.UnitStatus {
	e.t.Helper()
	k := unit.Key{Kind: KindID, Name: stack, Env: instance}
	deadline := time.Now().Add(3 * time.Minute)
	var last reconcile.UnitStatus
	for time.Now().Before(deadline) {
		for _, s := range e.Status() {
			if s.Key() == k {
				if last = s; cond(s) {
					return s
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s never %s; last status %+v", k, what, last)
	return last
}

func phase(p reconcile.Phase, r reconcile.Reason) func(reconcile.UnitStatus) bool {
	return func(s reconcile.UnitStatus) bool { return s.Phase == p && s.Reason == r }
}

func (e *kindEngine) lastRun(stack, instance string) (Run, bool) {
	e.t.Helper()
	run, ok, err := e.r.LastRun(stack, instance)
	if err != nil {
		e.t.Fatal(err)
	}
	return run, ok
}

// TestKind converges the stacks of testdata/repo through the real engine
// and terraform: the zone's network applies first, the dev instance of
// app-zone after it (reading its outputs), the prod instance waits for
// approval (prod syncs manually); a commit that changes app-zone applies
// in dev without anyone acting and runs nothing for network; a policy's
// deny holds the plan with its message.
func TestKind(t *testing.T) {
	dir := checkout(t)
	f := &inForce{}
	f.set(t, "rev1", dir)
	e := startKind(t, f, newRunner(t), time.Hour)
	e.apply()

	e.wait("network", "connectivity", "Synced", phase(reconcile.Synced, ""))
	dev := e.wait("app-zone", "dev", "Synced", phase(reconcile.Synced, ""))
	if !strings.Contains(dev.Message, "applied plan") {
		t.Errorf("dev says %q", dev.Message)
	}
	prod := e.wait("app-zone", "prod", "awaiting approval", phase(reconcile.Blocked, ReasonAwaitingApproval))
	if !strings.Contains(prod.Message, "1 to add") {
		t.Errorf("prod says %q", prod.Message)
	}
	if _, ran := e.lastRun("app-zone", "prod"); ran {
		t.Error("a gated instance was applied without approval")
	}
	prodPlan, _, _ := e.r.LastPlan("app-zone", "prod")
	if asked := f.askedFor("prod"); len(asked) != 1 || asked[0] != prodPlan.PlanID || len(f.askedFor("dev")) != 0 {
		t.Errorf("approvals asked for prod's plans %v, dev's %v; want prod's plan %s once", asked, f.askedFor("dev"), prodPlan.PlanID)
	}
	net1, _ := e.lastRun("network", "connectivity")
	dev1, _ := e.lastRun("app-zone", "dev")
	if net1.Status != RunApplied || dev1.Status != RunApplied {
		t.Fatalf("runs: network %s, dev %s", net1.Status, dev1.Status)
	}
	// The dependent read the upstream's outputs: it applied after it.
	if !dev1.Started.After(net1.Finished) && !dev1.Started.Equal(net1.Finished) {
		t.Errorf("app-zone @ dev started %s, before network finished %s", dev1.Started, net1.Finished)
	}
	outs, ok, err := e.r.ShowOutputs("app-zone", "dev")
	if err != nil || !ok || outs["subnet_id"] == "" {
		t.Fatalf("outputs of app-zone @ dev: %v %v %v", outs, ok, err)
	}

	// A commit that adds a resource to app-zone: applied in dev, held in
	// prod; network is not run again.
	dir2 := checkout(t)
	edit(t, dir2, "stacks/app-zone/main.tf", `output "subnet_id"`, "resource \"terraform_data\" \"route\" {\n  input = var.env\n}\n\noutput \"subnet_id\"")
	_, netPlanned, _ := e.r.LastPlan("network", "connectivity")
	f.set(t, "rev2", dir2)
	e.apply()
	e.wait("app-zone", "dev", "applied rev2", func(s reconcile.UnitStatus) bool {
		run, _ := e.lastRun("app-zone", "dev")
		return s.Phase == reconcile.Synced && s.Revision == "rev2" && run.PlanID != dev1.PlanID
	})
	e.wait("app-zone", "prod", "awaiting approval at rev2", func(s reconcile.UnitStatus) bool {
		return s.Phase == reconcile.Blocked && s.Revision == "rev2" && strings.Contains(s.Message, "2 to add")
	})
	e.wait("network", "connectivity", "Synced at rev2", func(s reconcile.UnitStatus) bool { return s.Phase == reconcile.Synced && s.Revision == "rev2" })
	// prod's new plan is asked for once more; the held one not again.
	if asked := f.askedFor("prod"); len(asked) != 2 || asked[0] != prodPlan.PlanID || asked[1] == prodPlan.PlanID {
		t.Errorf("approvals asked for prod's plans %v; want %s, then rev2's plan", asked, prodPlan.PlanID)
	}
	if net2, _ := e.lastRun("network", "connectivity"); net2.PlanID != net1.PlanID {
		t.Errorf("network was applied again (%s, was %s) though nothing of it changed", net2.PlanID, net1.PlanID)
	}
	if _, at, _ := e.r.LastPlan("network", "connectivity"); !at.Equal(netPlanned) {
		t.Errorf("network was planned again at %s (last at %s) though nothing of it changed", at, netPlanned)
	}

	// The policies deny dev's next change: it is held with their message,
	// and not applied.
	f.mu.Lock()
	f.deny = "dev"
	f.mu.Unlock()
	dir3 := checkout(t)
	edit(t, dir3, "stacks/app-zone/main.tf", `output "subnet_id"`, "resource \"terraform_data\" \"route\" {\n  input = var.env\n}\n\nresource \"terraform_data\" \"dns\" {\n  input = var.env\n}\n\noutput \"subnet_id\"")
	dev2, _ := e.lastRun("app-zone", "dev")
	f.set(t, "rev3", dir3)
	e.apply()
	denied := e.wait("app-zone", "dev", "denied", phase(reconcile.Blocked, reconcile.ReasonPolicyDenied))
	if !strings.Contains(denied.Message, "no change in dev today") {
		t.Errorf("denied says %q", denied.Message)
	}
	if dev3, _ := e.lastRun("app-zone", "dev"); dev3.PlanID != dev2.PlanID {
		t.Errorf("a denied plan was applied: %s", dev3.PlanID)
	}
	for _, run := range f.applied() {
		if run.Instance == "prod" {
			t.Errorf("prod was applied: %+v", run)
		}
	}
}

// TestKindReportsInterrupted: an apply socle stopped during (the files
// as a crash leaves them, the run recorded Applying) is told to OnRun as
// Interrupted, with its plan's revision and summary, once however many
// passes see it; the instance then converges as usual.
func TestKindReportsInterrupted(t *testing.T) {
	p := newPlanner(t)
	p.plan()
	run := p.apply("network", "connectivity")
	run.Status, run.Reason, run.Outputs = RunApplying, "", nil
	if err := writeJSON(filepath.Join(instanceDir(p.r.Dir, "network", "connectivity"), runFile), run); err != nil {
		t.Fatal(err)
	}
	if _, err := p.r.notePlanOrigin("network", "connectivity", run.Hash, "rev0"); err != nil {
		t.Fatal(err)
	}
	f := &inForce{}
	f.set(t, "rev1", p.repo)
	e := startKind(t, f, p.r, 50*time.Millisecond)
	e.apply()
	e.wait("network", "connectivity", "Synced", phase(reconcile.Synced, ""))
	e.wait("app-zone", "dev", "Synced", phase(reconcile.Synced, ""))
	// Passes over network after the one that recovered the run.
	e.passes("network", "connectivity", 3)
	var told []Applied
	for _, a := range f.appliedWith() {
		if a.Stack == "network" {
			told = append(told, a)
		}
	}
	if len(told) != 1 {
		t.Fatalf("OnRun was told of network %d times: %+v; want once, the interrupted apply", len(told), told)
	}
	a := told[0]
	if a.Status != RunInterrupted || a.PlanID != run.PlanID || a.Revision != "rev0" || a.Summary != run.Summary || a.Summary.Add == 0 {
		t.Errorf("told %+v; want plan %s interrupted, from rev0, summary %s", a, run.PlanID, run.Summary)
	}
}

// passes waits until the engine has finished n more passes over the
// instance's unit.
func (e *kindEngine) passes(stack, instance string, n int) {
	e.t.Helper()
	s := e.wait(stack, instance, "known", func(reconcile.UnitStatus) bool { return true })
	for range n {
		s = e.wait(stack, instance, "looked at again", func(u reconcile.UnitStatus) bool { return u.UpdatedAt.After(s.UpdatedAt) })
	}
}

// TestUnits: one unit per instance, each depending on the upstream
// instances its inputs read, applied as the stack or its environment says.
func TestUnits(t *testing.T) {
	repo := load(t, checkout(t))
	us := Units(repo, "abc", func(env string) bool { return env != "prod" })
	got := map[string]string{}
	for _, u := range us {
		d, err := (&Kind{}).Decode(u.Spec)
		if err != nil {
			t.Fatal(err)
		}
		dd := d.(*Desired)
		var deps []string
		for _, k := range u.DependsOn {
			deps = append(deps, k.Name+"@"+k.Env)
		}
		got[u.Name+"@"+u.Env] = string(dd.Apply) + " " + dd.Revision + " [" + strings.Join(deps, ",") + "]"
	}
	want := map[string]string{
		"network@connectivity": "auto abc []",
		"app-zone@dev":         "auto abc [network@connectivity]",
		"app-zone@prod":        "gated abc [network@connectivity]",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("units %v", got)
	}
	if _, err := (&Kind{}).Decode([]byte(`{"revision":"x","apply":"sometimes"}`)); err == nil {
		t.Error("an apply mode that is neither auto nor gated decoded")
	}
}

// TestKindNotConverging: a configuration whose plan changes at every run
// (a timestamp) is applied once, then reported Degraded, not applied again
// at every pass, though the engine looks at it every 50 ms; and nothing
// flips its status while it is read back.
func TestKindNotConverging(t *testing.T) {
	dir := checkout(t)
	for name, body := range map[string]string{
		"stacks/clock/stack.yaml": "apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\n",
		"stacks/clock/main.tf":    "resource \"terraform_data\" \"now\" {\n  input = timestamp()\n}\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := &inForce{}
	f.set(t, "rev1", dir)
	e := startKind(t, f, newRunner(t), 50*time.Millisecond)
	e.apply()
	st := e.wait("clock", "dev", "not converging", phase(reconcile.Degraded, ReasonNotConverging))
	since := st.Since
	// Many passes later, still one apply and the same status since then.
	runs := e.r.Runs()
	e.wait("clock", "dev", "looked at again", func(s reconcile.UnitStatus) bool {
		return e.r.Runs() > runs || s.UpdatedAt.After(st.UpdatedAt.Add(time.Second))
	})
	var applies int
	for _, run := range f.applied() {
		if run.Stack == "clock" {
			applies++
		}
	}
	if applies != 1 {
		t.Errorf("clock @ dev was applied %d times, want once", applies)
	}
	if now := e.wait("clock", "dev", "still degraded", phase(reconcile.Degraded, ReasonNotConverging)); !now.Since.Equal(since) {
		t.Errorf("the status flipped: Degraded since %s, then since %s", since, now.Since)
	}
}
