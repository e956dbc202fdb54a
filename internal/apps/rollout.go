package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// A rollout is a persisted state machine (store.Operation): Step is the
// index of the rollout step it is on, and Phase where that step is:
//
//   - Waiting: the step's spec is applied (again at every pass, as long as
//     applying it changes something) until the new release is healthy with
//     enough ready replicas; then Pausing if the step has a pause, else the
//     next step. A release the runtime says Failed, or that is not healthy
//     after twice the progress deadline, fails the rollout.
//   - Pausing: a canary step holds its weight for its pause, counted from
//     StepStartedAt; on a Proxied runtime the new release's requests since
//     the pause began (StepData holds the proxy's counts then) are
//     compared with the analysis' thresholds, elsewhere its workload must
//     stay healthy. A breach rolls it back.
//
// After the last step the release is Succeeded. A failed rollout restores
// what ran before, ends its release Failed or RolledBack, and records its
// target in Unit.Failed.
const (
	phaseWaiting = "Waiting"
	phasePausing = "Pausing"
)

// Passes of a rollout look at the unit at least this often; the runtime's
// events (a replica ready) make them sooner. A canary analysed by the
// proxy is looked at more often, to roll back soon after a breach.
const (
	rolloutPoll  = 250 * time.Millisecond
	analysisPoll = 100 * time.Millisecond
)

// rolloutStep is one step of a rollout: the spec the runtime should hold,
// how many replicas of the new release must be ready, and how long the
// step then holds, analysed.
type rolloutStep struct {
	spec   runtime.UnitSpec
	least  int
	pause  time.Duration
	weight int    // a canary step's share of requests, in percent
	name   string // for people
}

// rolloutSteps are the steps that replace release prev ("" for none) with
// wl, by wl's strategy. Each runtime does them its own way: a rolling
// workload replaces the release it keeps as its replicas become ready (a
// Deployment's rolling update; socle's replica runtime, maxSurge at a
// time); the service (the proxy's route) follows Serve and Weight.
//
//   - a first release: it runs and serves;
//   - rolling: the new release rolls in beside the old, serving as it
//     becomes ready; then the old one goes;
//   - blue/green: the new release starts beside the old, which alone
//     serves; once it is healthy, all traffic switches to it at once; then
//     the old one goes;
//   - canary: for each step, a share of the new release's replicas runs
//     beside the old and gets the step's weight of requests for the step's
//     pause; then the new release runs whole at the last weight, takes all
//     traffic, and the old one goes.
func rolloutSteps(d *plan.Unit, strategy spec.Strategy, wl runtime.Workload, prev string) []rolloutStep {
	specOf := func(w runtime.Workload, keep bool, serve string, weight int) runtime.UnitSpec {
		us := runtime.UnitSpec{App: d.App, Env: d.Env, Workloads: []runtime.Workload{w}, Serve: serve, Weight: weight}
		if keep {
			us.Keep = []string{prev}
		}
		return us
	}
	least := max(d.Replicas.Min, 1)
	rel := wl.Release
	if prev == "" {
		return []rolloutStep{{spec: specOf(wl, false, serving(wl), 0), least: least, name: "start " + rel}}
	}
	stop := rolloutStep{spec: specOf(wl, false, serving(wl), 0), least: least, name: "stop " + prev}
	switch strategy {
	case spec.StrategyBlueGreen:
		return []rolloutStep{
			{spec: specOf(wl, true, prev, 0), least: least, name: "start " + rel + " beside " + prev},
			{spec: specOf(wl, true, rel, 0), least: least, name: "switch to " + rel},
			stop,
		}
	case spec.StrategyCanary:
		steps := d.Rollout.Steps
		if len(steps) == 0 {
			steps = []spec.CanaryStep{{Weight: 50}}
		}
		var out []rolloutStep
		last := 0
		for _, st := range steps {
			if st.Weight >= 100 {
				break
			}
			c := wl
			c.Replicas = canaryReplicas(least, st.Weight)
			out = append(out, rolloutStep{spec: specOf(c, true, "", st.Weight), least: c.Replicas, pause: time.Duration(st.Pause), weight: st.Weight,
				name: fmt.Sprintf("canary %s at %d%%", rel, st.Weight)})
			last = st.Weight
		}
		whole := specOf(wl, true, prev, 0)
		if last > 0 {
			whole = specOf(wl, true, "", last)
		}
		return append(out,
			rolloutStep{spec: whole, least: least, weight: last, name: "scale " + rel + " up"},
			rolloutStep{spec: specOf(wl, true, serving(wl), 0), least: least, name: "switch to " + rel},
			stop)
	}
	return []rolloutStep{{spec: specOf(wl, true, serving(wl), 0), least: least, name: "roll " + rel + " in"}, stop}
}

// canaryReplicas is how many canary replicas beside n old ones receive
// about weight percent of requests, when requests spread evenly over
// replicas. A canary never runs more replicas than the release will, so a
// step above 50% gets half of the requests where only replica counts split
// them.
func canaryReplicas(n, weight int) int {
	k := (weight*n + (100-weight)/2) / max(100-weight, 1)
	return min(max(k, 1), max(n, 1))
}

// advance decides the next step of the rollout in progress.
func (k *Kind) advance(u *reconcile.Unit, o *observed) reconcile.Step {
	op := u.Operation
	if op.Step >= len(o.steps) {
		return step{do: next, o: o}
	}
	st := o.steps[op.Step]
	rel := releaseName(op.Release)
	poll := rolloutPoll
	if o.stats != nil {
		poll = analysisPoll
	}
	if o.healthErr != nil {
		since := memoOf(u).unreadable
		if u.Now.Sub(since) >= k.cfg.ProgressDeadline {
			return step{do: fail, o: o, status: store.RolledBack, reason: fmt.Sprintf("%s: its health could not be read for %s: %v", rel, k.cfg.ProgressDeadline, o.healthErr)}
		}
		return step{do: wait, o: o, after: poll}
	}
	var h runtime.WorkloadHealth
	found := false
	for _, w := range o.health {
		if w.Release == rel {
			h, found = w, true
		}
	}
	switch op.Phase {
	case phasePausing:
		if why := analyse(u, o, st, h, found); why != "" {
			return step{do: fail, o: o, status: store.RolledBack, reason: why}
		}
		if o.stats != nil && o.stats.Requests < baseline(op).Requests {
			return step{do: rebase, o: o}
		}
		if !o.applied {
			return step{do: ensure, o: o}
		}
		end := op.StepStartedAt.Add(st.pause)
		if !u.Now.Before(end) {
			return step{do: next, o: o}
		}
		return step{do: wait, o: o, after: min(end.Sub(u.Now), poll)}
	default: // phaseWaiting
		switch {
		case found && h.State == runtime.WorkloadFailed:
			return step{do: fail, o: o, status: store.Failed, reason: fmt.Sprintf("%s: %s", h.Name, h.Message)}
		case u.Now.Sub(op.StepStartedAt) >= 2*k.cfg.ProgressDeadline:
			last := "nothing of it runs"
			if found {
				last = fmt.Sprintf("%d of at least %d ready: %s", h.Ready, st.least, h.Message)
			}
			return step{do: fail, o: o, status: store.Failed, reason: fmt.Sprintf("%s not healthy after %s: %s", rel, 2*k.cfg.ProgressDeadline, last)}
		case !o.applied:
			return step{do: ensure, o: o}
		case found && h.State == runtime.WorkloadHealthy && h.Ready >= st.least:
			if st.pause > 0 {
				return step{do: pause, o: o}
			}
			return step{do: next, o: o}
		}
		return step{do: wait, o: o, after: poll}
	}
}

// analyse says why a paused canary step rolls back, "" if it does not.
// With the proxy's counts (o.stats) the new release's error rate and p95
// latency since the pause began are compared with the analysis'
// thresholds once enough requests were counted, and only a release the
// runtime says Failed (a crash loop) is unhealthy; without them the
// release's workload must stay healthy through the pause.
func analyse(u *reconcile.Unit, o *observed, st rolloutStep, h runtime.WorkloadHealth, found bool) string {
	rel := releaseName(u.Operation.Release)
	switch {
	case !found:
		return fmt.Sprintf("canary %s: its workload is gone", rel)
	case o.stats == nil && h.State != runtime.WorkloadHealthy:
		return fmt.Sprintf("canary %s became unhealthy: %s", h.Name, h.Message)
	case o.stats == nil:
		return ""
	case h.State == runtime.WorkloadFailed:
		return fmt.Sprintf("canary %s failed: %s", h.Name, h.Message)
	}
	a := o.d.Rollout.Analysis
	if a == nil {
		return ""
	}
	s := o.stats.Since(baseline(u.Operation))
	if s.Requests == 0 || int(s.Requests) < a.MinRequests {
		return ""
	}
	if a.MaxErrorRate != nil && s.ErrorRate() > *a.MaxErrorRate {
		return fmt.Sprintf("canary error rate %.1f%% over %d requests exceeds %.1f%%", 100*s.ErrorRate(), s.Requests, 100**a.MaxErrorRate)
	}
	if a.MaxP95 > 0 && s.P95 > time.Duration(a.MaxP95) {
		return fmt.Sprintf("canary p95 latency %s over %d requests exceeds %s", s.P95.Round(time.Millisecond), s.Requests, time.Duration(a.MaxP95))
	}
	return ""
}

// baseline is what the proxy had counted of the new release when the
// step's pause began, as the step saved it.
func baseline(op *store.Operation) proxy.Snapshot {
	var s proxy.Snapshot
	if len(op.StepData) > 0 {
		_ = json.Unmarshal(op.StepData, &s) // written by this package: a bad one analyses from zero
	}
	return s
}

// Apply takes a step.
func (k *Kind) Apply(ctx context.Context, u *reconcile.Unit, s reconcile.Step) error {
	st := s.(step)
	o := st.o
	switch st.do {
	case build:
		return k.build(ctx, u, o)
	case begin:
		return k.begin(ctx, u, o)
	case steady:
		return k.applySteady(ctx, o)
	case restore:
		if err := o.rt.Restore(ctx, o.d.App, o.d.Env, releaseName(o.cur.ID)); err != nil {
			return reconcile.Errorf(reconcile.ReasonRuntimeError, "the new release failed, and restoring %s failed: %w; retried at the next pass", releaseName(o.cur.ID), err)
		}
		return nil
	case settle:
		return k.settle(ctx, u, o)
	case abandon:
		k.restoreAfter(ctx, u, o)
		reason := "the desired state went back to what runs"
		if u.Failed != nil && u.Failed.Target == o.tgt {
			reason = "the desired state went back to a release that failed"
		}
		if err := k.endRelease(ctx, u, u.Operation, store.Superseded, reason); err != nil {
			return err
		}
		u.Operation = nil
		u.RequeueAfter(0)
		return k.save(ctx, u)
	case ensure:
		return k.applyStep(ctx, u, o, o.steps[u.Operation.Step])
	case wait:
		u.RequeueAfter(st.after)
		return nil
	case pause:
		op := *u.Operation
		op.Phase, op.StepStartedAt, op.StepData = phasePausing, u.Now, nil
		memoOf(u).spans.pause(o.steps[op.Step], o.stats != nil)
		if o.stats != nil {
			b, err := json.Marshal(*o.stats)
			if err != nil {
				return err
			}
			op.StepData = b
		}
		u.Operation = &op
		u.RequeueAfter(min(o.steps[op.Step].pause, analysisPoll))
		return k.save(ctx, u)
	case rebase:
		// socle restarted, and the proxy with it: the counts start from
		// zero, and the requests before the restart are not known.
		op := *u.Operation
		op.StepData = json.RawMessage(`{}`)
		u.Operation = &op
		u.RequeueAfter(0)
		return k.save(ctx, u)
	case next:
		return k.next(ctx, u, o)
	case fail:
		return k.fail(ctx, u, o, st.status, st.reason)
	}
	return fmt.Errorf("unknown step %v", st.do)
}

func (k *Kind) save(ctx context.Context, u *reconcile.Unit) error {
	if err := u.Save(ctx); err != nil {
		return reconcile.Errorf(reconcile.ReasonStoreError, "saving the rollout: %w", err)
	}
	return nil
}

// begin records a release of the desired state and takes its first step.
// The rollout is saved before its release is recorded, so that a restart
// in between finds the release to resume or to end.
func (k *Kind) begin(ctx context.Context, u *reconcile.Unit, o *observed) error {
	d, prev := o.d, o.cur
	u.Operation = &store.Operation{Target: o.tgt, Phase: phaseWaiting, StepStartedAt: u.Now}
	if err := k.save(ctx, u); err != nil {
		return err
	}
	trigger := store.TriggerSync
	if d.Rollback {
		trigger = store.TriggerRollback
	}
	var notes []byte
	if k.cfg.Notes != nil && prev != nil {
		notes = k.cfg.Notes(ctx, d.App, prev.Revision, o.tgt.Revision)
	}
	var author string
	if k.cfg.Author != nil {
		author = k.cfg.Author(ctx, d.App, d.Env)
	}
	rel, err := k.cfg.Store.BeginRelease(ctx, store.Release{
		App: d.App, Env: d.Env, Revision: o.tgt.Revision, Artifact: o.tgt.Artifact, ConfigHash: o.tgt.ConfigHash,
		Strategy: string(strategyOf(d)), Trigger: trigger, Previous: prevID(prev), Notes: notes, Author: author, Emergency: emergencyOf(d, prev, o.tgt),
	}, &store.AuditRecord{Actor: "socle", Action: "release.begin"})
	if err != nil {
		return reconcile.Errorf(reconcile.ReasonStoreError, "recording the release: %w", err)
	}
	u.Operation.Release = rel.ID
	if err := k.save(ctx, u); err != nil {
		return err
	}
	name := releaseName(rel.ID)
	m := memoOf(u)
	m.spans.end(store.Superseded, "a newer desired state began its rollout") // the store says so of its release
	m.spans = startRollout(ctx, d, rel)
	k.log.Info("rollout started", "app", d.App, "env", d.Env, "release", rel.ID, "revision", short(o.tgt.Revision), "artifact", short(o.tgt.Artifact), "strategy", rel.Strategy)
	k.emit(ReleaseEvent{Release: rel, Phase: "started"})
	wl, err := k.workload(ctx, memoOf(u), d, name, o.tgt.Artifact, spec.Strategy(rel.Strategy))
	if err != nil {
		return err
	}
	o.steps = rolloutSteps(d, spec.Strategy(rel.Strategy), wl, previous(prev, rel.ID))
	return k.enter(ctx, u, o, o.steps[0])
}

// applyStep applies a rollout step's spec, and asks to look again soon.
// A spec the runtime cannot run fails the rollout at once; other errors
// are retried at the next passes, within the step's deadline.
func (k *Kind) applyStep(ctx context.Context, u *reconcile.Unit, o *observed, st rolloutStep) error {
	u.RequeueAfter(rolloutPoll)
	err := o.rt.Apply(ctx, st.spec)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, runtime.ErrInvalidUnit):
		return k.fail(ctx, u, o, store.Failed, err.Error())
	}
	return reconcile.Errorf(reconcile.ReasonRuntimeError, "%s: %w", st.name, err)
}

// next moves the rollout to its next step, or ends it Succeeded.
func (k *Kind) next(ctx context.Context, u *reconcile.Unit, o *observed) error {
	op := *u.Operation
	op.Step++
	if op.Step >= len(o.steps) {
		return k.finish(ctx, u, o)
	}
	op.Phase, op.StepStartedAt, op.StepData = phaseWaiting, u.Now, nil
	u.Operation = &op
	if err := k.save(ctx, u); err != nil {
		return err
	}
	return k.enter(ctx, u, o, o.steps[op.Step])
}

// enter applies the spec of a step the rollout just moved to, and looks
// again at once rather than at the next poll: the step before often did
// this one's work (a rolling step's new replicas stopped the old ones),
// so the runtime may be there already. One look, not a loop: a step not
// reached yet is ensured at the poll (applyStep).
func (k *Kind) enter(ctx context.Context, u *reconcile.Unit, o *observed, st rolloutStep) error {
	memoOf(u).spans.enter(u.Operation.Step, st)
	if err := k.applyStep(ctx, u, o, st); err != nil {
		return err
	}
	u.RequeueAfter(0)
	return nil
}

// finish ends a rollout whose last step is done.
func (k *Kind) finish(ctx context.Context, u *reconcile.Unit, o *observed) error {
	if err := k.endRelease(ctx, u, u.Operation, store.Succeeded, ""); err != nil {
		return err
	}
	u.Operation, u.Failed = nil, nil
	u.RequeueAfter(0)
	return k.save(ctx, u)
}

// fail ends a rollout that failed: what ran before runs again, the release
// ends with status, and its target is not tried again until the desired
// state changes.
func (k *Kind) fail(ctx context.Context, u *reconcile.Unit, o *observed, status store.ReleaseStatus, reason string) error {
	if ctx.Err() != nil {
		return ctx.Err() // socle is stopping: the rollout is resumed, not failed
	}
	k.restoreAfter(ctx, u, o)
	op := u.Operation
	if err := k.endRelease(ctx, u, op, status, reason); err != nil {
		return err
	}
	u.Operation, u.Failed = nil, &store.Failure{Release: op.Release, Target: op.Target}
	u.RequeueAfter(0)
	return k.save(ctx, u)
}

// restoreAfter sends traffic back to the release that ran before the
// rollout, at once, and removes the new one; with none before, nothing
// runs. A restore that fails is tried again by the passes that follow
// (restore steps).
func (k *Kind) restoreAfter(ctx context.Context, u *reconcile.Unit, o *observed) {
	d := o.d
	if o.cur == nil || (u.Operation != nil && o.cur.ID == u.Operation.Release) {
		if _, err := o.rt.Prune(ctx, d.App, d.Env); err != nil {
			k.log.Error("removing a failed first release", "app", d.App, "env", d.Env, "err", err)
		}
		return
	}
	if err := o.rt.Restore(ctx, d.App, d.Env, releaseName(o.cur.ID)); err != nil {
		k.log.Error("restoring the previous release", "app", d.App, "env", d.Env, "release", o.cur.ID, "err", err)
	}
}

// settle saves the end of a rollout whose release ended (socle stopped
// between the two).
func (k *Kind) settle(ctx context.Context, u *reconcile.Unit, o *observed) error {
	op := u.Operation
	switch o.opRel.Status {
	case store.Succeeded:
		u.Failed = nil
	case store.Failed, store.RolledBack:
		u.Failed = &store.Failure{Release: op.Release, Target: op.Target}
	}
	u.Operation = nil
	u.RequeueAfter(0)
	return k.save(ctx, u)
}

// endRelease ends the release of a rollout with status. A rollout saved
// before its release was recorded ends the unit's Progressing release of
// its target, if there is one.
func (k *Kind) endRelease(ctx context.Context, u *reconcile.Unit, op *store.Operation, status store.ReleaseStatus, reason string) error {
	id := op.Release
	if id == 0 {
		rs, err := k.cfg.Store.Releases(ctx, store.ReleaseFilter{App: u.Key.Name, Env: u.Key.Env, Status: store.Progressing, Limit: 1})
		if err != nil {
			return reconcile.Errorf(reconcile.ReasonStoreError, "reading releases: %w", err)
		}
		if len(rs) == 0 || targetOf(rs[0]) != op.Target {
			return nil
		}
		id = rs[0].ID
	}
	err := k.cfg.Store.FinishRelease(ctx, id, status, reason, &store.AuditRecord{Actor: "socle", Action: "release." + strings.ToLower(string(status))})
	if err != nil && !errors.Is(err, store.ErrConflict) { // ErrConflict: it ended otherwise, which stands
		return reconcile.Errorf(reconcile.ReasonStoreError, "recording the end of release %d: %w", id, err)
	}
	m := memoOf(u)
	m.spans.end(status, reason)
	m.spans = nil
	k.log.Info("rollout finished", "app", u.Key.Name, "env", u.Key.Env, "release", id, "status", status, "reason", reason)
	if rel, err := k.cfg.Store.Release(ctx, id); err == nil {
		k.emit(ReleaseEvent{Release: rel, Phase: "finished"})
	}
	return nil
}

func (k *Kind) emit(ev ReleaseEvent) {
	if k.cfg.OnRelease != nil {
		k.cfg.OnRelease(ev)
	}
}

// applySteady applies the running release again when the unit drifted
// (and the environment heals), or when applying it changes something.
func (k *Kind) applySteady(ctx context.Context, o *observed) error {
	d := o.d
	heal := k.cfg.SelfHeal == nil || k.cfg.SelfHeal(d.Env)
	drift := strings.Join(o.drift.Changes, "; ")
	if drift != "" && k.cfg.OnDrift != nil {
		k.cfg.OnDrift(d.App, d.Env, drift, heal)
	}
	if o.drift.Applied && (drift == "" || !heal) {
		return nil
	}
	if err := o.rt.Apply(ctx, *o.steady); err != nil {
		return reconcile.Errorf(reconcile.ReasonRuntimeError, "applying: %w", err)
	}
	return nil
}

// progressing says where the rollout in progress is.
func (k *Kind) progressing(s *reconcile.UnitStatus, u *reconcile.Unit, o *observed) {
	op := u.Operation
	rel := releaseName(op.Release)
	s.Phase, s.Reason = reconcile.Progressing, reconcile.ReasonRollingOut
	strategy := string(strategyOf(o.d))
	if o.opRel != nil {
		strategy = o.opRel.Strategy
	}
	s.Operation = &reconcile.OperationStatus{Release: op.Release, Strategy: strategy, Step: op.Step + 1, Steps: len(o.steps), Phase: op.Phase, StepStartedAt: op.StepStartedAt}
	if op.Release == 0 || op.Step >= len(o.steps) {
		s.Message = fmt.Sprintf("rolling out %s (%s) with %s", short(o.tgt.Revision), short(o.tgt.Artifact), strategy)
		return
	}
	st := o.steps[op.Step]
	s.Operation.Weight = st.weight
	s.Message = fmt.Sprintf("rolling out %s (%s, %s) with %s: step %d of %d, %s", rel, short(o.tgt.Revision), short(o.tgt.Artifact), strategy, op.Step+1, len(o.steps), st.name)
	switch {
	case op.Phase == phasePausing && o.stats != nil:
		s.Message += fmt.Sprintf(", analysing its requests until %s", op.StepStartedAt.Add(st.pause).Format(time.TimeOnly))
	case op.Phase == phasePausing:
		s.Message += fmt.Sprintf(", watching its health until %s", op.StepStartedAt.Add(st.pause).Format(time.TimeOnly))
	default:
		s.Message += ", waiting for " + rel + " to be ready"
	}
}

// emergencyOf returns the reason of the emergency change a release of tgt
// after prev is, or "": the release that brings an emergency pin's target,
// not a later one that keeps the pin.
func emergencyOf(d *plan.Unit, prev *store.Release, tgt store.Target) string {
	if d.Emergency == "" {
		return ""
	}
	u := *d
	u.Artifact = tgt.Artifact // the digest built for a pin that names none
	if prev == nil {
		return u.EmergencyAfter("", "")
	}
	return u.EmergencyAfter(prev.Artifact, prev.Revision)
}

func prevID(p *store.Release) int64 {
	if p == nil {
		return 0
	}
	return p.ID
}
