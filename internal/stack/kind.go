package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/unit"
)

// KindID is the ID of the stack units' kind: a unit is (stack, zone or
// environment).
const KindID = "stack"

// The reasons a stack unit's status gives, besides the engine's.
const (
	// ReasonPlanning: Progressing, terraform plans the instance.
	ReasonPlanning reconcile.Reason = "Planning"
	// ReasonApplying: Progressing, the saved plan is applied.
	ReasonApplying reconcile.Reason = "Applying"
	// ReasonStackPlanFailed: Failed, the instance does not plan.
	ReasonStackPlanFailed reconcile.Reason = "PlanFailed"
	// ReasonStackApplyFailed: Failed, the apply of its plan failed; it is
	// not tried again until the instance's content changes.
	ReasonStackApplyFailed reconcile.Reason = "ApplyFailed"
	// ReasonAwaitingApproval: Blocked, a gated instance's plan waits to
	// be approved.
	ReasonAwaitingApproval reconcile.Reason = "AwaitingApproval"
	// ReasonUpstreamNotApplied: Pending, an input reads an output of an
	// upstream instance that has not applied yet.
	ReasonUpstreamPending reconcile.Reason = "UpstreamNotApplied"
	// ReasonNotConverging: Degraded, the plan after an apply still
	// changes something: not applied again until the content changes.
	ReasonNotConverging reconcile.Reason = "NotConverging"
	// ReasonLockHeld: Progressing, another run of the instance (socle
	// stack on the command line) holds its lock.
	ReasonLockHeld reconcile.Reason = "Locked"
	// ReasonRevision: Pending, the unit's desired revision is not the
	// one in force yet.
	ReasonRevision reconcile.Reason = "RevisionNotInForce"
)

// Desired is a stack unit's desired state, as the wiring hands it to the
// engine (unit.Desired.Spec, JSON): which revision of the repository it
// follows, and when its plans are applied.
type Desired struct {
	// Revision is the platform revision in force the instance is planned
	// from.
	Revision string `json:"revision"`
	// Apply is auto or gated, resolved: the stack's own, else gated in an
	// environment that syncs manually (its changes are promoted), auto in
	// one that follows Git and in a landing zone.
	Apply spec.StackApply `json:"apply"`
	// Drift is how often the instance is checked for changes made outside
	// socle (0: never).
	Drift time.Duration `json:"drift,omitempty"`
	// Heal: drift found is corrected by planning and applying again (where
	// the instance applies automatically and its environment self-heals);
	// else it is reported.
	Heal bool `json:"heal,omitempty"`
}

// Units returns the desired units of repo's stacks at revision: one per
// instance, each depending on the upstream instances it reads, so that the
// engine applies upstreams first. selfHeals says whether an environment
// corrects drift (nil: every one does).
func Units(repo *spec.Repo, revision string, selfHeals func(env string) bool) []unit.Desired {
	var out []unit.Desired
	for _, t := range Targets(repo, nil) {
		s, inst := t.Stack, t.Instance
		d := Desired{Revision: revision, Apply: ApplyOf(repo, s, inst), Drift: time.Duration(s.Config.Drift)}
		d.Heal = d.Apply == spec.StackApplyAuto && (s.PerZone() || selfHeals == nil || selfHeals(inst))
		raw, err := json.Marshal(d)
		if err != nil {
			panic(err) // a struct of strings and numbers
		}
		u := unit.Desired{Key: unit.Key{Kind: KindID, Name: s.Name, Env: inst}, Spec: raw}
		for _, name := range s.Config.DependsOn {
			if up := repo.Stack(name); up != nil {
				if ui, ok := repo.UpstreamInstance(s, inst, up); ok {
					u.DependsOn = append(u.DependsOn, unit.Key{Kind: KindID, Name: up.Name, Env: ui})
				}
			}
		}
		out = append(out, u)
	}
	return out
}

// ApplyOf is when s's instance applies its plans (spec's StackApplyOf).
func ApplyOf(repo *spec.Repo, s *spec.Stack, inst string) spec.StackApply {
	return repo.StackApplyOf(s, inst)
}

// KindConfig is what the stack kind needs.
type KindConfig struct {
	Runner *Runner
	// InForce returns the revision in force and its SHA (nil before the
	// first).
	InForce func() (*spec.Repo, string)
	// Files returns the files of a revision.
	Files func(sha string) (fs.FS, error)
	// Judge says whether the policies of repo (revision, whose files are
	// fsys) deny a plan, and why. nil: no policy judges stacks.
	Judge func(repo *spec.Repo, fsys fs.FS, revision string, r *Result) (denied bool, why string)
	// Approvals returns who approved the plan planID of stack's
	// instance, in order. nil: nobody approves, and gated instances are
	// held.
	Approvals func(ctx context.Context, stack, instance, planID string) ([]string, error)
	// Author names who wrote a revision (a user of repo's teams where
	// known): their approval of its plans does not count. nil: nobody is
	// known.
	Author func(repo *spec.Repo, revision string) string
	// OnRun is told of each apply that ran terraform, and OnDrift of each
	// drift check that found drift (nil: nobody). An apply socle stopped
	// during (killed, or shut down) is told as Interrupted once it is
	// recovered, once per process: OnRun makes its record idempotent
	// across restarts.
	OnRun   func(a Applied)
	OnDrift func(d DriftResult, corrected bool)
	// OnApprovalNeeded is told when a gated instance starts waiting for
	// approvals of a plan, once per plan and process (nil: nobody),
	// with the gate's state and the revision the plan came from.
	OnApprovalNeeded func(plan Result, gate GateState, revision string)
	// Parallel bounds the terraform runs of all units at once (default:
	// the Runner's Parallel, else 2).
	Parallel int
	Log      *slog.Logger
}

// Kind is the engine's kind of stack units: it plans each instance of the
// revision in force when its content (files, inputs, upstream outputs) or
// its state changed, applies the saved plan at once where the instance
// applies automatically and no policy denies it, where it is gated once
// the gates open for that plan (CheckGate: approvals of that plan,
// windows, freezes), holds it otherwise (Blocked, with the reason and
// what it waits for), checks for drift at the stack's interval,
// and reports each instance's status in words.
//
// A stack instance removed from Git is not destroyed unless its stack
// said onRemove: destroy (a destroy is a decision people take, not a side
// effect of a deleted directory): its resources and state stay as they
// are, and the unit is forgotten.
type Kind struct {
	cfg KindConfig
	sem chan struct{}
	log *slog.Logger
}

var (
	_ reconcile.Kind      = (*Kind)(nil)
	_ reconcile.Describer = (*Kind)(nil)
)

// NewKind returns the stack kind.
func NewKind(cfg KindConfig) *Kind {
	n := cfg.Parallel
	if n < 1 {
		n = cfg.Runner.Parallel
	}
	if n < 1 {
		n = 2
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Kind{cfg: cfg, sem: make(chan struct{}, n), log: log}
}

// ID is "stack".
func (k *Kind) ID() string { return KindID }

// Start finds no units: instances removed from Git while socle was
// stopped are left as they are, never destroyed.
func (k *Kind) Start(context.Context, reconcile.Host) ([]unit.Key, error) { return nil, nil }

// Decode reads a Desired.
func (k *Kind) Decode(raw json.RawMessage) (any, error) {
	var d Desired
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	if d.Apply != spec.StackApplyAuto && d.Apply != spec.StackApplyGated {
		return nil, fmt.Errorf("apply is %q, not auto or gated", d.Apply)
	}
	return &d, nil
}

// Applied is an apply the kind ran, with what it was applied for.
type Applied struct {
	Run
	// Revision is the revision the plan came from; Author wrote it.
	Revision string
	Author   string
	Summary  Summary
	// Approvers approved the plan; none where the instance applies
	// automatically.
	Approvers []string
}

// observed is what a pass found of an instance.
type observed struct {
	// notInForce: the revision in force is not the unit's yet.
	notInForce bool
	plan       Result
	denied     bool
	why        string // the policies' message when denied
	run        Run
	ran        bool
	drift      DriftResult
	checked    bool
	// repo is the revision observed; stack is the stack as it has it.
	repo    *spec.Repo
	repoSHA string
	stack   *spec.Stack
	// gate is where a gated instance's plan stands; gated says it was
	// judged.
	gate  GateState
	gated bool
	// from is the revision the plan came from.
	from string
}

// Observe plans the instance (nothing runs when its content and state
// are those of the last plan: the plan is read back), after a drift check
// when one is due, and reads its last apply.
func (k *Kind) Observe(ctx context.Context, u *reconcile.Unit) (any, error) {
	d := u.Spec.(*Desired)
	repo, sha := k.cfg.InForce()
	if repo == nil || sha != d.Revision {
		u.RequeueAfter(time.Second)
		return &observed{notInForce: true}, nil
	}
	s := repo.Stack(u.Key.Name)
	if s == nil || !slices.Contains(s.Instances(), u.Key.Env) {
		return nil, reconcile.Errorf(reconcile.ReasonInvalidSpec, "revision %s has no stack %s with an instance %s", short(sha), u.Key.Name, u.Key.Env)
	}
	fsys, err := k.cfg.Files(sha)
	if err != nil {
		return nil, err
	}
	r := k.cfg.Runner
	o := &observed{repo: repo, repoSHA: sha, stack: s}
	if o.run, o.ran, err = r.LastRun(s.Name, u.Key.Env); err != nil {
		return nil, err
	}
	if o.drift, o.checked, err = r.LastDrift(s.Name, u.Key.Env); err != nil {
		return nil, err
	}
	if k.driftDue(u, d, o) {
		o.drift, o.checked = k.checkDrift(ctx, u, repo, fsys, s, d), true
	}
	if d.Drift > 0 && o.ran && o.run.Status == RunApplied && o.checked {
		u.RequeueAfter(max(o.drift.Checked.Add(driftEvery(d, o.drift)).Sub(u.Now), time.Second))
	}
	// A plan read back runs nothing: the status does not say Planning
	// (it would flip at every pass).
	k.bounded(ctx, func() { o.plan = r.Plan(ctx, repo, fsys, s, u.Key.Env) })
	// Recorded while the instance is in Git: once removed, the stack
	// that says what to do may be gone.
	if err := r.RecordRemoval(s.Name, u.Key.Env, RemovalOf(s)); err != nil {
		return nil, err
	}
	if o.ran && o.run.Status == RunApplying {
		// The plan recovered an apply socle stopped during, or another
		// process runs it: read it again.
		if o.run, o.ran, err = r.LastRun(s.Name, u.Key.Env); err != nil {
			return nil, err
		}
	}
	k.reportInterrupted(ctx, u, repo, sha, o.run)
	if o.plan.Reason == ReasonLocked {
		u.RequeueAfter(10 * time.Second) // someone else runs it: look again soon
	}
	if o.plan.Status == StatusPlanned && k.cfg.Judge != nil {
		o.denied, o.why = k.cfg.Judge(repo, fsys, sha, &o.plan)
	}
	o.from = sha
	if o.plan.Status == StatusPlanned && o.plan.Hash != "" {
		// The author of the revision that brought this content does not
		// approve its plans, whatever was committed since.
		if o.from, err = r.notePlanOrigin(s.Name, u.Key.Env, o.plan.Hash, sha); err != nil {
			return nil, reconcile.Errorf(reconcile.ReasonRuntimeError, "recording where the plan of %s @ %s comes from: %v", s.Name, u.Key.Env, err)
		}
	}
	if o.plan.Status == StatusPlanned && o.plan.PlanID != "" && !o.denied && d.Apply == spec.StackApplyGated {
		if err := k.judgeGate(ctx, u, repo, s, o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// reportInterrupted tells OnRun of the instance's last apply when socle
// stopped during it, once per process (the memo): no pass of the kind
// ran it to its end, so no Apply told of it.
func (k *Kind) reportInterrupted(ctx context.Context, u *reconcile.Unit, repo *spec.Repo, sha string, run Run) {
	m := memoOf(u)
	if k.cfg.OnRun == nil || run.Status != RunInterrupted || m.interrupted == run.PlanID {
		return
	}
	m.interrupted = run.PlanID
	a := Applied{Run: run, Revision: sha, Summary: run.Summary}
	if from, ok, err := k.cfg.Runner.PlanOrigin(run.Stack, run.Instance, run.Hash); err != nil {
		k.log.Warn("reading where an interrupted apply's plan came from", "stack", run.Stack, "instance", run.Instance, "err", err)
	} else if ok {
		a.Revision = from
	}
	if k.cfg.Author != nil {
		a.Author = k.cfg.Author(repo, a.Revision)
	}
	if k.cfg.Approvals != nil {
		var err error
		if a.Approvers, err = k.cfg.Approvals(ctx, run.Stack, run.Instance, run.PlanID); err != nil {
			k.log.Warn("reading the approvals of an interrupted apply's plan", "stack", run.Stack, "instance", run.Instance, "plan", run.PlanID, "err", err)
		}
	}
	k.cfg.OnRun(a)
}

// judgeGate judges the gates of a gated instance's plan, and has the
// unit looked at again when a calendar gate opens (an approval triggers
// it; a minute is the bound where it does not reach this process).
func (k *Kind) judgeGate(ctx context.Context, u *reconcile.Unit, repo *spec.Repo, s *spec.Stack, o *observed) error {
	var approvers []string
	if k.cfg.Approvals != nil {
		var err error
		if approvers, err = k.cfg.Approvals(ctx, s.Name, u.Key.Env, o.plan.PlanID); err != nil {
			return reconcile.Errorf(reconcile.ReasonStoreError, "reading the approvals of plan %s: %v", o.plan.PlanID, err)
		}
	}
	o.gate, o.gated = CheckGate(repo, s, u.Key.Env, o.plan.PlanID, u.Now, k.author(u, o), approvers), true
	if m := memoOf(u); !o.gate.Approved() && m.asked != o.plan.PlanID && k.cfg.OnApprovalNeeded != nil {
		m.asked = o.plan.PlanID
		k.cfg.OnApprovalNeeded(o.plan, o.gate, o.from)
	}
	after := time.Minute
	if t := o.gate.Opens(); !t.IsZero() {
		after = min(after, max(t.Sub(u.Now), time.Second))
	}
	u.RequeueAfter(after)
	return nil
}

// driftDue reports whether the instance is checked for drift now: it
// has a drift interval, was applied, and was not checked within it.
func (k *Kind) driftDue(u *reconcile.Unit, d *Desired, o *observed) bool {
	if d.Drift <= 0 || !o.ran || o.run.Status != RunApplied {
		return false
	}
	return !o.checked || !u.Now.Before(o.drift.Checked.Add(driftEvery(d, o.drift)))
}

// driftEvery is how long after a drift check the next one is due: the
// stack's interval, or at most a minute after a check that failed.
func driftEvery(d *Desired, last DriftResult) time.Duration {
	if last.Status == DriftFailed {
		return min(d.Drift, time.Minute)
	}
	return d.Drift
}

// checkDrift runs a drift check; drift found is announced and, where the
// instance heals, the plan read back is dropped so that this pass plans
// afresh (terraform's plan refreshes) and the apply puts things back.
func (k *Kind) checkDrift(ctx context.Context, u *reconcile.Unit, repo *spec.Repo, fsys fs.FS, s *spec.Stack, d *Desired) DriftResult {
	var res DriftResult
	k.run(ctx, u, "checking for drift", ReasonPlanning, func() { res = k.cfg.Runner.Drift(ctx, repo, fsys, s, u.Key.Env) })
	if res.Status != DriftDrifted {
		return res
	}
	if d.Heal {
		if err := k.cfg.Runner.forgetPlan(s.Name, u.Key.Env); err != nil {
			k.log.Warn("dropping the plan of a drifted stack", "stack", s.Name, "instance", u.Key.Env, "err", err)
		}
		memoOf(u).heal = true
	}
	if k.cfg.OnDrift != nil {
		k.cfg.OnDrift(res, d.Heal)
	}
	return res
}

// run runs fn, which runs terraform, bounded with the other units' runs,
// with the unit's status saying what it does meanwhile.
func (k *Kind) run(ctx context.Context, u *reconcile.Unit, what string, reason reconcile.Reason, fn func()) {
	k.bounded(ctx, func() {
		u.Progress(func(st *reconcile.UnitStatus) {
			if st.Phase != reconcile.Failed && st.Phase != reconcile.Blocked {
				st.Phase, st.Reason, st.Message = reconcile.Progressing, reason, what
			}
		})
		fn()
	})
}

// bounded runs fn, one of the terraform runs of all units Parallel at a
// time.
func (k *Kind) bounded(ctx context.Context, fn func()) {
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		fn() // it fails at once, with the context's error
		return
	}
	defer func() { <-k.sem }()
	fn()
}

// memo is what the kind keeps of a unit between passes.
type memo struct {
	// heal: drift was found where the instance heals, so the content
	// applied last may be applied again, once.
	heal bool
	// author wrote revision from, as the teams of the revision in force
	// name them: read once, not at every pass of a held plan.
	authorKey [2]string // {the revision in force, from}
	author    string
	// interrupted is the plan of the interrupted apply told to OnRun;
	// asked, the plan told to OnApprovalNeeded.
	interrupted, asked string
}

// author names who wrote the revision the observed plan came from ("":
// nobody known).
func (k *Kind) author(u *reconcile.Unit, o *observed) string {
	if k.cfg.Author == nil {
		return ""
	}
	m, key := memoOf(u), [2]string{o.repoSHA, o.from}
	if m.authorKey != key {
		m.authorKey, m.author = key, k.cfg.Author(o.repo, o.from)
	}
	return m.author
}

func memoOf(u *reconcile.Unit) *memo {
	m, ok := u.Memo.(*memo)
	if !ok {
		m = &memo{}
		u.Memo = m
	}
	return m
}

// unsettled reports whether the plan still changes the content that the
// last apply applied: terraform does not converge on it (a value that
// changes at every run), and applying again would never end. Drift to
// heal is the exception, once.
func unsettled(u *reconcile.Unit, o *observed) bool {
	return o.ran && o.run.Status == RunApplied && o.run.Hash == o.plan.Hash && !memoOf(u).heal
}

// applyStep applies the saved plan a pass observed.
type applyStep struct {
	stack *spec.Stack // as observed
	ok    Approved
	// for the record of the apply
	from, author string
	summary      Summary
	approvers    []string
}

func (applyStep) Starts() bool     { return true }
func (s applyStep) String() string { return "apply plan " + s.ok.PlanID }

// Plan applies a plan that changes something where the instance applies
// automatically, or its gates are open for this plan, no policy denies
// it, and the same content did not fail to apply before.
func (k *Kind) Plan(u *reconcile.Unit, obs any) reconcile.Step {
	o := obs.(*observed)
	d := u.Spec.(*Desired)
	if o.notInForce || o.plan.Status != StatusPlanned || o.plan.PlanID == "" || o.denied {
		return nil
	}
	if d.Apply != spec.StackApplyAuto && (!o.gated || !o.gate.Open()) {
		return nil
	}
	if failedBefore(u, o.plan.Hash) || unsettled(u, o) {
		return nil
	}
	return applyStep{stack: o.stack, ok: Approved{PlanID: o.plan.PlanID, Hash: o.plan.Hash},
		from: o.from, author: k.author(u, o), summary: o.plan.Summary, approvers: o.gate.Approvers}
}

// failedBefore reports whether an apply of the instance's content hash
// failed, so that it is not tried again until the content changes.
func failedBefore(u *reconcile.Unit, hash string) bool {
	return u.Failed != nil && u.Failed.Target.ConfigHash == hash
}

// Apply applies the plan; the run's record says how it went (Health reads
// it). A stale plan is planned again by the observation after the step,
// and applied at the next pass.
func (k *Kind) Apply(ctx context.Context, u *reconcile.Unit, step reconcile.Step) error {
	st := step.(applyStep)
	s := st.stack
	var run Run
	k.run(ctx, u, "applying plan "+st.ok.PlanID, ReasonApplying, func() { run = k.cfg.Runner.Apply(ctx, s, u.Key.Env, st.ok) })
	switch {
	case run.Status == RunApplying || (run.Status == RunRefused && ctx.Err() != nil):
		// socle stops: the run stays Applying, and the next start
		// recovers it (Interrupted, told to OnRun) and plans afresh.
		// Not a failure of the plan.
		return ctx.Err()
	case run.Status == RunRefused && run.Reason == ReasonLocked:
		u.RequeueAfter(10 * time.Second)
		return nil
	case run.Status == RunRefused && (run.Reason == ReasonStale || run.Reason == ReasonNotApproved || run.Reason == ReasonNoPlan):
		// The observation after this step plans again; the next pass
		// applies that plan.
		u.RequeueAfter(time.Second)
		return nil
	case run.Status == RunRefused:
		return reconcile.Errorf(reconcile.ReasonRuntimeError, "applying %s @ %s: %s", u.Key.Name, u.Key.Env, run.Message)
	}
	memoOf(u).heal = false
	if k.cfg.OnRun != nil {
		k.cfg.OnRun(Applied{Run: run, Revision: st.from, Author: st.author, Summary: st.summary, Approvers: st.approvers})
	}
	was := u.Failed
	u.Failed = nil
	if run.Status == RunFailed {
		u.Failed = &store.Failure{Target: store.Target{ConfigHash: st.ok.Hash}}
	}
	if was != nil || u.Failed != nil {
		return u.Save(ctx)
	}
	return nil
}

// Health says how the instance is, in words.
func (k *Kind) Health(u *reconcile.Unit, obs any) reconcile.UnitStatus {
	o := obs.(*observed)
	d := u.Spec.(*Desired)
	st := reconcile.UnitStatus{Revision: d.Revision}
	set := func(p reconcile.Phase, r reconcile.Reason, msg string) reconcile.UnitStatus {
		st.Phase, st.Reason, st.Message = p, r, msg
		return st
	}
	if o.notInForce {
		return set(reconcile.Pending, ReasonRevision, "waits for revision "+short(d.Revision)+" to be in force")
	}
	p := o.plan
	switch p.Status {
	case StatusFailed:
		if p.Reason == ReasonLocked {
			return set(reconcile.Progressing, ReasonLockHeld, p.Message)
		}
		return set(reconcile.Failed, ReasonStackPlanFailed, "plan failed ("+string(p.Reason)+"): "+p.Message)
	case StatusWaiting:
		ins := make([]string, len(p.Pending))
		for i, x := range p.Pending {
			ins[i] = x.String()
		}
		return set(reconcile.Pending, ReasonUpstreamPending, "not planned: "+strings.Join(ins, "; "))
	case StatusPlanned:
		sum := p.Summary.String()
		switch {
		case o.denied:
			return set(reconcile.Blocked, reconcile.ReasonPolicyDenied, "plan "+p.PlanID+" ("+sum+") is denied: "+o.why)
		case d.Apply == spec.StackApplyGated && o.gated && !o.gate.Approved():
			return set(reconcile.Blocked, ReasonAwaitingApproval, o.gate.Message(sum))
		case d.Apply == spec.StackApplyGated && o.gated && !o.gate.Open():
			return set(reconcile.Blocked, reconcile.ReasonGateClosed, o.gate.Message(sum))
		case failedBefore(u, p.Hash):
			msg := "the apply failed"
			if o.ran && o.run.Hash == p.Hash {
				msg = "the apply failed: " + o.run.Message
			}
			return set(reconcile.Failed, ReasonStackApplyFailed, msg+"; tried again when the stack, its inputs or its upstream outputs change")
		case unsettled(u, o):
			return set(reconcile.Degraded, ReasonNotConverging, "applying plan "+o.run.PlanID+" left changes ("+sum+"): terraform does not converge on this configuration; not applied again until the stack, its inputs or its upstream outputs change")
		case p.PlanID == "":
			return set(reconcile.Failed, ReasonStackPlanFailed, "planned "+sum+", but no plan was saved to apply")
		}
		return set(reconcile.Progressing, ReasonApplying, "applies "+sum)
	}
	if o.checked && o.drift.Status == DriftDrifted && !d.Heal {
		return set(reconcile.Degraded, reconcile.ReasonDrift, o.drift.Summary+" (reported, not corrected: the instance does not heal)")
	}
	st.Phase = reconcile.Synced
	if o.ran && o.run.Status == RunApplied {
		st.Message = "applied plan " + o.run.PlanID + " at " + o.run.Finished.UTC().Format(time.RFC3339)
	}
	return st
}

// Describe names an instance another unit waits on (a resource whose
// outputs are the instance's), and says why it is not Synced: "stack
// databases @ prod not applied yet (awaiting approval)", or, applied
// before, "stack databases @ prod has a new plan not applied yet
// (planning)".
func (k *Kind) Describe(key unit.Key, _ any, st reconcile.UnitStatus) string {
	what := "stack " + key.Name + " @ " + key.Env
	state := " not applied yet"
	if run, ok, err := k.cfg.Runner.LastRun(key.Name, key.Env); err == nil && ok && run.Status == RunApplied {
		state = " has a new plan not applied yet"
	}
	// Waiting or working, its reason says enough; held or failed, its
	// message says why in full.
	why := words(st.Reason)
	if st.Reason != ReasonAwaitingApproval && st.Phase != reconcile.Pending && st.Phase != reconcile.Progressing && st.Message != "" {
		why = st.Message
	}
	if why == "" {
		why = strings.ToLower(string(st.Phase))
	}
	return what + state + " (" + why + ")"
}

// words says a reason as words: "AwaitingApproval" is "awaiting
// approval".
func words(r reconcile.Reason) string {
	var b strings.Builder
	for i, c := range string(r) {
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ReasonDestroyFailed: Degraded, the destroy of an instance removed from
// Git failed; it is tried again after a backoff.
const ReasonDestroyFailed reconcile.Reason = "DestroyFailed"

// Prune forgets an instance removed from Git. Its resources and state are
// left as they are, unless its stack said onRemove: destroy while the
// instance was in Git: then they are destroyed first (Runner.Destroy,
// judged by the policies of the revision in force), and the run recorded
// like an apply (OnRun). A destroy denied or failed keeps the unit,
// Degraded with the reason, tried again after a backoff.
func (k *Kind) Prune(ctx context.Context, u *reconcile.Unit) (bool, error) {
	r := k.cfg.Runner
	rm, _, err := r.RemovalOf(u.Key.Name, u.Key.Env)
	if err != nil {
		return false, err
	}
	if !rm.Destroy {
		if _, err := os.Stat(instanceDir(r.Dir, u.Key.Name, u.Key.Env)); err == nil {
			k.log.Warn("a stack instance was removed from Git: socle destroys nothing of it; its state stays in the data directory",
				"stack", u.Key.Name, "instance", u.Key.Env)
		}
		return true, nil
	}
	repo, sha := k.cfg.InForce()
	var run Run
	k.bounded(ctx, func() { run = r.Destroy(ctx, u.Key.Name, u.Key.Env, k.judgeDestroy(repo, sha, rm)) })
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if !run.Started.IsZero() && k.cfg.OnRun != nil {
		k.cfg.OnRun(Applied{Run: run, Revision: sha, Summary: run.Summary})
	}
	switch {
	case run.Status == RunApplied:
		k.log.Info("a stack instance removed from Git was destroyed", "stack", u.Key.Name, "instance", u.Key.Env, "summary", run.Summary.String())
		return true, nil
	case run.Reason == ReasonDestroyDenied:
		return false, reconcile.Errorf(reconcile.Reason(ReasonDestroyDenied), "removed from Git, not destroyed: %s", run.Message)
	}
	return false, reconcile.Errorf(ReasonDestroyFailed, "removed from Git; its destroy failed (%s): %s", run.Reason, run.Message)
}

// judgeDestroy judges an instance's destroy plan by the policies of the
// revision in force (nil judge: none judge stacks). A stack removed
// whole is known to them by what was recorded of it.
func (k *Kind) judgeDestroy(repo *spec.Repo, sha string, rm Removal) func(*Result) (bool, string) {
	if k.cfg.Judge == nil {
		return nil
	}
	return func(res *Result) (bool, string) {
		if repo == nil {
			return true, "no revision of the repository is in force to judge it by"
		}
		fsys, err := k.cfg.Files(sha)
		if err != nil {
			return true, "reading the revision in force: " + err.Error()
		}
		if i, found := slices.BinarySearchFunc(repo.Stacks, res.Stack, func(s *spec.Stack, n string) int { return strings.Compare(s.Name, n) }); !found {
			gone := &spec.Stack{Name: res.Stack}
			if rm.PerZone {
				gone.Config.Zones = []string{res.Instance}
			}
			cp := *repo
			cp.Stacks = slices.Insert(slices.Clone(repo.Stacks), i, gone)
			repo = &cp
		}
		return k.cfg.Judge(repo, fsys, sha, res)
	}
}

// forgetPlan drops the plan recorded for an instance, so that its next
// plan runs terraform (which refreshes) even if nothing socle knows of
// changed: after drift.
func (r *Runner) forgetPlan(stack, instance string) error {
	err := os.Remove(filepath.Join(instanceDir(r.Dir, stack, instance), "plan.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func short(sha string) string { return sha[:min(len(sha), 12)] }
