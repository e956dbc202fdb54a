package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// observed is what Observe found of a unit.
type observed struct {
	d     *plan.Unit
	rt    runtime.UnitDriver // nil: the environment's runtime is not available here
	rtErr error              // the runtime could not be opened
	// digest is the artifact of the desired state, "" until it is built;
	// tgt is then what the desired state deploys.
	digest string
	tgt    store.Target
	cur    *store.Release // the release that runs (the newest that succeeded), nil if none
	health []runtime.WorkloadHealth
	// healthErr is why health could not be read during a rollout (out of
	// one, it fails the observation).
	healthErr error
	failedRel *store.Release // the release u.Failed names

	// Out of a rollout, running the desired state's release: its spec and
	// how the unit differs from it.
	steady *runtime.UnitSpec
	drift  runtime.Drift

	// During a rollout of the desired state: its release as recorded, its
	// steps, whether the current step's spec is applied, and what the
	// proxy counted of the new release (Proxied runtimes only).
	opRel   *store.Release
	steps   []rolloutStep
	applied bool
	stats   *proxy.Snapshot
}

// Observe reads the unit's runtime, its releases and its health.
func (k *Kind) Observe(ctx context.Context, u *reconcile.Unit) (any, error) {
	d := u.Spec.(*plan.Unit)
	m := memoOf(u)
	o := &observed{d: d}
	rt, err := k.cfg.Runtimes.For(d.Env)
	if err != nil {
		o.rtErr = err
		return o, nil
	}
	if rt == nil {
		return o, nil
	}
	o.rt = rt
	k.adopt(rt)
	o.digest = d.Artifact
	if o.digest == "" && m.source == d.Source {
		o.digest = m.digest
	}
	if o.digest != "" {
		o.tgt = store.Target{Revision: d.Revision, Artifact: o.digest, ConfigHash: k.configHash(d)}
	}
	cur, err := k.cfg.Store.CurrentRelease(ctx, d.App, d.Env)
	switch {
	case err == nil:
		o.cur = &cur
	case !errors.Is(err, store.ErrNotFound):
		return nil, reconcile.Errorf(reconcile.ReasonStoreError, "reading releases: %w", err)
	}
	if f := u.Failed; f != nil && f.Release != 0 {
		if m.failedRel == nil || m.failedRel.ID != f.Release {
			if r, err := k.cfg.Store.Release(ctx, f.Release); err == nil {
				m.failedRel = &r
			}
		}
		o.failedRel = m.failedRel
	}
	o.health, err = rt.Health(ctx, d.App, d.Env)
	op := u.Operation
	switch {
	case err != nil && op == nil:
		return nil, reconcile.Errorf(reconcile.ReasonRuntimeError, "reading health: %w", err)
	case err != nil:
		o.healthErr = err
		if m.unreadable.IsZero() {
			m.unreadable = u.Now
		}
	default:
		m.unreadable = time.Time{}
	}

	switch {
	case op != nil && op.Release != 0:
		r, err := k.cfg.Store.Release(ctx, op.Release)
		if err != nil {
			return nil, reconcile.Errorf(reconcile.ReasonStoreError, "reading release %d: %w", op.Release, err)
		}
		o.opRel = &r
		if o.digest == "" || op.Target != o.tgt || r.Status != store.Progressing {
			break
		}
		rel := releaseName(op.Release)
		wl, err := k.workload(ctx, m, d, rel, op.Target.Artifact, spec.Strategy(r.Strategy))
		if err != nil {
			return nil, err
		}
		o.steps = rolloutSteps(d, spec.Strategy(r.Strategy), wl, previous(o.cur, op.Release))
		dr, err := rt.Drift(ctx, o.steps[min(op.Step, len(o.steps)-1)].spec)
		if err != nil {
			return nil, reconcile.Errorf(reconcile.ReasonRuntimeError, "observing the rollout of %s: %w", rel, err)
		}
		o.applied = dr.Applied
		if p, ok := rt.(Proxied); ok {
			s := p.Stats(d.App, d.Env, rel)
			o.stats = &s
		}
	case op == nil && o.cur != nil && o.digest != "" && targetOf(*o.cur) == o.tgt:
		wl, err := k.workload(ctx, m, d, releaseName(o.cur.ID), o.cur.Artifact, spec.Strategy(o.cur.Strategy))
		if err != nil {
			return nil, err
		}
		sp := steadySpec(d, wl)
		if o.drift, err = rt.Drift(ctx, sp); err != nil {
			return nil, reconcile.Errorf(reconcile.ReasonRuntimeError, "observing the unit: %w", err)
		}
		o.steady = &sp
	}
	return o, nil
}

// previous is the name of the release a rollout of release id replaces:
// the one that runs, "" for a first release.
func previous(cur *store.Release, id int64) string {
	if cur == nil || cur.ID == id {
		return ""
	}
	return releaseName(cur.ID)
}

// action is what a step does.
type action int

// The actions of a pass.
const (
	build   action = iota // build the desired state's image
	begin                 // record a release and start rolling it out
	steady                // apply the running release again: drift, or a change that makes no release
	restore               // take the unit back to what ran before a failed rollout
	settle                // a rollout whose release ended, the end not saved
	abandon               // the desired state went back: end the rollout, restore what runs
	ensure                // apply the rollout step's spec again: it moves the unit on
	wait                  // nothing to do until then, or until triggered
	pause                 // the step's release is ready: its pause starts
	rebase                // the proxy's counters were reset: the analysis starts again from them
	next                  // the step is done: the next one, or the end
	fail                  // the rollout failed: what ran before runs again
)

var actionNames = [...]string{build: "build", begin: "begin a rollout", steady: "apply the running release", restore: "restore the running release",
	settle: "settle an ended rollout", abandon: "abandon the rollout", ensure: "apply the rollout step", wait: "wait",
	pause: "pause", rebase: "take a new analysis baseline", next: "next rollout step", fail: "fail the rollout"}

// step is one step of a unit, with what it was planned from.
type step struct {
	do action
	o  *observed
	// after is how long a wait lasts.
	after time.Duration
	// status and reason are how a failed rollout's release ends.
	status store.ReleaseStatus
	reason string
}

// Starts is true for a new rollout, which waits for the units the app
// depends on.
func (s step) Starts() bool { return s.do == begin }

func (s step) String() string {
	switch s.do {
	case wait:
		return "wait " + s.after.String()
	case fail:
		return "fail the rollout: " + s.reason
	}
	return actionNames[s.do]
}

// Plan decides the unit's next step.
func (k *Kind) Plan(u *reconcile.Unit, obs any) reconcile.Step {
	o := obs.(*observed)
	d, m := o.d, memoOf(u)
	if o.rt == nil {
		return nil
	}
	if o.digest == "" {
		if f := m.buildErr; f != nil && f.source == d.Source && u.Now.Before(f.retryAt) {
			return nil // failed: built again when the app's files change, or after the backoff
		}
		return step{do: build, o: o}
	}
	failed := u.Failed != nil && u.Failed.Target == o.tgt
	running := o.cur != nil && targetOf(*o.cur) == o.tgt
	if op := u.Operation; op != nil {
		switch {
		case o.opRel != nil && o.opRel.Status.Final():
			return step{do: settle, o: o}
		case op.Target != o.tgt && (running || failed):
			return step{do: abandon, o: o}
		case op.Target != o.tgt, op.Release == 0:
			return step{do: begin, o: o} // a newer desired state supersedes it; or it was never recorded
		}
		return k.advance(u, o)
	}
	switch {
	case running:
		if !o.drift.Applied || len(o.drift.Changes) > 0 {
			return step{do: steady, o: o}
		}
		return nil
	case failed:
		if o.cur != nil && !restored(o.health, releaseName(o.cur.ID)) {
			return step{do: restore, o: o}
		}
		return nil // not tried again until the desired state changes
	}
	return step{do: begin, o: o}
}

// restored reports whether release rel alone runs: after a failed
// rollout, the failed release's workload is gone and rel's is there.
func restored(hs []runtime.WorkloadHealth, rel string) bool {
	mine := false
	for _, h := range hs {
		if h.Release != rel {
			return false
		}
		mine = true
	}
	return mine
}

// Health says how the unit is.
func (k *Kind) Health(u *reconcile.Unit, obs any) reconcile.UnitStatus {
	o := obs.(*observed)
	d, m := o.d, memoOf(u)
	s := reconcile.UnitStatus{Release: u.Status.Release, Revision: u.Status.Revision, Artifact: u.Status.Artifact,
		Ready: u.Status.Ready, Desired: u.Status.Desired, Replicas: u.Status.Replicas, URL: u.Status.URL}
	switch {
	case o.rtErr != nil:
		s.Phase, s.Reason = reconcile.Degraded, reconcile.ReasonRuntimeUnreachable
		s.Message = "the environment's runtime cannot be reached: " + o.rtErr.Error() + "; what runs is untouched"
		return s
	case o.rt == nil:
		s.Phase, s.Reason = reconcile.Unsupported, reconcile.ReasonRuntimeUnsupported
		s.Message = fmt.Sprintf("runtime %q is not available in this version of socle; the unit is planned, not run", d.Runtime)
		return s
	}
	s.Release, s.Revision, s.Artifact, s.Ready, s.Desired = 0, "", "", 0, 0
	if o.cur != nil {
		s.Release, s.Revision, s.Artifact = o.cur.ID, o.cur.Revision, o.cur.Artifact
	}
	s.Replicas = replicaStatuses(o.health, d)
	var mine runtime.WorkloadHealth
	var why []string
	for _, h := range o.health {
		if o.cur != nil && h.Release == releaseName(o.cur.ID) {
			mine = h
		}
		if h.State != runtime.WorkloadHealthy {
			why = append(why, fmt.Sprintf("%s: %s", h.Name, h.Message))
		}
	}
	s.Ready, s.Desired = mine.Ready, mine.Desired
	p, proxied := o.rt.(Proxied)
	s.URL = ""
	if proxied {
		s.URL = p.URL(d)
	}
	rel := ""
	if o.cur != nil {
		rel = releaseName(o.cur.ID)
	}
	switch f := m.buildErr; {
	case o.digest == "" && f != nil && f.source == d.Source:
		s.Phase, s.Reason = reconcile.Failed, reconcile.ReasonBuildFailed
		s.Message = fmt.Sprintf("build of %s at %s failed: %s; what runs is untouched; socle builds again when apps/%s changes, or after a backoff",
			d.App, abbrevSHA(f.revision), firstLine(f.err.Error()), d.App)
		s.LogTail, s.RetryAt = f.tail, f.retryAt
		u.RequeueAfter(f.retryAt.Sub(u.Now))
	case o.digest == "":
		s.Phase, s.Reason, s.Message = reconcile.Pending, "", fmt.Sprintf("%s at %s is not built yet", d.App, abbrevSHA(d.Revision))
	case u.Operation != nil:
		k.progressing(&s, u, o)
	case u.Failed != nil && u.Failed.Target == o.tgt:
		keepFailure(&s, o.failedRel, rel)
	case o.cur == nil:
		s.Phase, s.Reason, s.Message = reconcile.Pending, "", "not rolled out yet"
	case o.steady != nil && len(o.drift.Changes) > 0:
		s.Phase, s.Reason = reconcile.Degraded, reconcile.ReasonDrift
		s.Message = "drift: " + strings.Join(o.drift.Changes, "; ") + "; selfHeal is off in " + d.Env + ": reported, not corrected"
	case mine.Name == "":
		s.Phase, s.Reason, s.Message = reconcile.Degraded, reconcile.ReasonRuntimeError, "nothing of "+rel+" runs"
	case len(why) > 0:
		s.Phase, s.Reason, s.Message = reconcile.Degraded, reconcile.ReasonReplicasNotReady, strings.Join(why, "; ")
	case len(d.Containers) > 1 && o.rt.Capabilities().FirstContainerOnly:
		s.Phase, s.Reason = reconcile.Synced, reconcile.ReasonOneContainer
		s.Message = fmt.Sprintf("runs container %s only: the %s runtime runs one container per replica (%d declared)", slices.Sorted(maps.Keys(d.Containers))[0], o.rt.Name(), len(d.Containers))
	default:
		s.Phase, s.Reason, s.Message = reconcile.Synced, "", ""
	}
	if proxied && u.Operation == nil && d.Replicas.Max > d.Replicas.Min {
		u.RequeueAfter(time.Second) // the autoscaler sizes the unit at each pass
	}
	return s
}

// keepFailure says that the newest release failed and rel keeps running.
func keepFailure(s *reconcile.UnitStatus, failed *store.Release, rel string) {
	keeps := "nothing runs"
	if rel != "" {
		keeps = rel + " keeps running"
	}
	s.Phase, s.Reason = reconcile.Failed, reconcile.ReasonRolloutFailed
	if failed == nil {
		s.Message = "the new release failed; " + keeps
		return
	}
	if failed.Status == store.RolledBack {
		s.Reason = reconcile.ReasonRolledBack
	}
	s.Message = fmt.Sprintf("release %s %s: %s; %s; socle retries when the desired state changes",
		releaseName(failed.ID), strings.ToLower(string(failed.Status)), failed.Reason, keeps)
}

func replicaStatuses(hs []runtime.WorkloadHealth, d *plan.Unit) []reconcile.ReplicaStatus {
	var out []reconcile.ReplicaStatus
	for _, h := range hs {
		if h.Replicas == nil {
			msg := fmt.Sprintf("%d/%d ready, %d updated, %d available", h.Ready, h.Desired, h.Updated, h.Available)
			if h.Message != "" {
				msg += ": " + h.Message
			}
			out = append(out, reconcile.ReplicaStatus{Name: "deployment/" + h.Name, Release: h.Release, State: string(h.State), Ready: h.State == runtime.WorkloadHealthy, Message: msg})
			continue
		}
		for _, st := range h.Replicas {
			r := reconcile.ReplicaStatus{Name: st.Ref.String(), Release: st.Ref.Release, State: string(st.State), Ready: st.Ready, Restarts: st.Restarts, PID: st.PID, Message: st.Message}
			if b, ok := primaryBinding(st, d); ok {
				r.Address = b.Address
			}
			if st.LastExit != nil && r.Message == "" {
				r.Message = st.LastExit.Reason
			}
			out = append(out, r)
		}
	}
	return out
}

func primaryBinding(st runtime.Status, d *plan.Unit) (runtime.PortBinding, bool) {
	if d.Service == nil {
		return runtime.PortBinding{}, false
	}
	p := spec.PrimaryPort(slices.Collect(maps.Keys(d.Service.Ports)))
	for _, b := range st.Ports {
		if b.Name == p {
			return b, true
		}
	}
	return runtime.PortBinding{}, false
}

// Prune removes a unit removed from Git from its runtime; a rollout in
// progress ends Interrupted.
func (k *Kind) Prune(ctx context.Context, u *reconcile.Unit) (bool, error) {
	if op := u.Operation; op != nil {
		if err := k.endRelease(ctx, u, op, store.Interrupted, "the app was removed from Git"); err != nil {
			return false, err
		}
		u.Operation = nil
		if err := u.Save(ctx); err != nil {
			return false, reconcile.Errorf(reconcile.ReasonStoreError, "saving the end of the rollout: %w", err)
		}
	}
	rt, err := k.cfg.Runtimes.For(u.Key.Env)
	if err != nil {
		return false, reconcile.Errorf(reconcile.ReasonRuntimeUnreachable, "the environment's runtime cannot be reached: %w", err)
	}
	if rt == nil {
		return true, nil // nothing of it can run here
	}
	if _, err := rt.Prune(ctx, u.Key.Name, u.Key.Env); err != nil {
		return false, reconcile.Errorf(reconcile.ReasonRuntimeError, "pruning: %w", err)
	}
	return true, nil
}

// configHash identifies what a release runs besides its image: containers,
// ports, resources and the outputs of those socle provisioned; not the
// replica count (scaling is no new release), nor the rollout strategy, nor
// the revision alone.
func (k *Kind) configHash(u *plan.Unit) string {
	c := *u
	c.Revision, c.Source, c.Artifact, c.Rollback = "", "", "", false
	c.Replicas, c.Rollout = spec.Replicas{}, spec.Rollout{}
	b, _ := json.Marshal(c)
	if k.cfg.ResourceHash != nil {
		// "" for a unit without provisioned resources: its hash is what
		// it was before socle provisioned any.
		b = append(b, k.cfg.ResourceHash(u)...)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// abbrevSHA is a commit as people write it: its first seven digits.
func abbrevSHA(sha string) string { return sha[:min(len(sha), 7)] }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
