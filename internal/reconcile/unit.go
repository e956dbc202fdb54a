package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// UnitRuntimes gives the engine the unit drivers of the environments whose
// runtime keeps replicas by itself (Kubernetes). Units of the other
// environments run replica by replica on Config.Driver, behind the proxy.
type UnitRuntimes interface {
	// For returns env's unit driver; nil and no error when env runs on
	// Config.Driver. It is called on every pass: it must be cheap.
	For(env string) (runtime.UnitDriver, error)
	// All returns the unit drivers open now, so that the engine finds the
	// units they run (Adopt).
	All() []runtime.UnitDriver
}

// unitDriver returns the unit driver of env, nil for the replica path.
func (e *Engine) unitDriver(env string) (runtime.UnitDriver, error) {
	if e.cfg.Units == nil {
		return nil, nil
	}
	return e.cfg.Units.For(env)
}

// unitPoll is how often a rollout on a unit driver looks at its health.
const unitPoll = 250 * time.Millisecond

// workload is the release rel of unit d, by the strategy it is deployed
// with: blue/green and canary releases get a Deployment of their own. Each
// container runs the image the release's artifact pins for it.
func (w *worker) workload(ctx context.Context, d *plan.Unit, rel, artifact string, strategy spec.Strategy) (runtime.Workload, error) {
	pins, err := w.e.cfg.Images.Pins(ctx, *d, artifact)
	if err != nil {
		return runtime.Workload{}, fmt.Errorf("reading the images of %s: %w", short(artifact), err)
	}
	return runtime.Workload{Release: rel, Unit: d, Artifact: artifact, Images: pins, Dedicated: strategy != "" && strategy != spec.StrategyRolling}, nil
}

func serving(w runtime.Workload) string {
	if w.Dedicated {
		return w.Release
	}
	return "" // a rolling Deployment: the service selects its pods, whatever their release
}

// unitSteady keeps the running release of a unit on a unit driver applied:
// a change of what Git says that makes no new release (replicas) is
// applied, drift is corrected or reported per the environment's selfHeal,
// and the status comes from the workloads' health. After a failed rollout
// (failedNewer) what runs is only observed: the desired state is the one
// that failed, and the restored release must not be rendered from it.
func (w *worker) unitSteady(ctx context.Context, ud runtime.UnitDriver, d *plan.Unit, cur store.Release, failedNewer bool) {
	rel := releaseName(cur.ID)
	var drift string
	if !failedNewer {
		wl, err := w.workload(ctx, d, rel, cur.Artifact, spec.Strategy(cur.Strategy))
		if err != nil {
			w.report(func(s *UnitStatus) { s.Phase, s.Message = Degraded, err.Error() })
			return
		}
		us := runtime.UnitSpec{App: d.App, Env: d.Env, Workloads: []runtime.Workload{wl}, Serve: serving(wl)}
		dr, err := ud.Drift(ctx, us)
		if err != nil {
			w.say(Degraded, ReasonRuntimeError, "observing the unit: "+err.Error())
			return
		}
		heal := w.e.cfg.SelfHeal == nil || w.e.cfg.SelfHeal(d.Env)
		if len(dr.Changes) > 0 {
			drift = strings.Join(dr.Changes, "; ")
			if w.e.cfg.OnDrift != nil {
				w.e.cfg.OnDrift(d.App, d.Env, drift, heal)
			}
		}
		if !dr.Applied || (drift != "" && heal) {
			if err := ud.Apply(ctx, us); err != nil {
				w.say(Degraded, ReasonRuntimeError, "applying: "+err.Error())
				return
			}
			drift = ""
		}
	}
	hs, err := ud.Health(ctx, d.App, d.Env)
	if err != nil {
		w.say(Degraded, ReasonRuntimeError, "reading health: "+err.Error())
		return
	}
	if failedNewer && !restored(hs, rel) {
		// The restore after the failed rollout did not finish (the API
		// server refused it, socle stopped): it is tried again at every
		// pass until rel alone runs.
		if err := ud.Restore(ctx, d.App, d.Env, rel); err != nil {
			w.e.log.Error("restoring the previous release", "app", d.App, "env", d.Env, "release", cur.ID, "err", err)
			w.report(func(s *UnitStatus) {
				s.Release, s.Revision, s.Artifact = cur.ID, cur.Revision, cur.Artifact
				s.Replicas = workloadStatuses(hs)
				s.Phase, s.Reason = Degraded, ReasonRuntimeError
				s.Message = fmt.Sprintf("the new release failed, and restoring %s failed: %v; retried at the next pass", rel, err)
			})
			return
		}
		if hs, err = ud.Health(ctx, d.App, d.Env); err != nil {
			w.say(Degraded, ReasonRuntimeError, "reading health: "+err.Error())
			return
		}
	}
	var mine runtime.WorkloadHealth
	var why []string
	for _, h := range hs {
		if h.Release == rel {
			mine = h
		}
		if h.State != runtime.WorkloadHealthy {
			why = append(why, fmt.Sprintf("%s: %s", h.Name, h.Message))
		}
	}
	w.report(func(s *UnitStatus) {
		s.Release, s.Revision, s.Artifact = cur.ID, cur.Revision, cur.Artifact
		s.Ready, s.Desired = mine.Ready, mine.Desired
		s.Replicas = workloadStatuses(hs)
		s.URL = ""
		switch {
		case failedNewer:
			keepFailure(s, rel)
		case drift != "":
			s.Phase, s.Reason, s.Message = Degraded, ReasonDrift, "drift: "+drift+"; selfHeal is off in "+d.Env+": reported, not corrected"
		case mine.Name == "":
			s.Phase, s.Reason, s.Message = Degraded, ReasonRuntimeError, "no Deployment of "+rel+" in the cluster"
		case len(why) > 0:
			s.Phase, s.Reason, s.Message = Degraded, ReasonReplicasNotReady, strings.Join(why, "; ")
		default:
			s.Phase, s.Reason, s.Message = Synced, "", ""
		}
	})
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

func workloadStatuses(hs []runtime.WorkloadHealth) []ReplicaStatus {
	out := make([]ReplicaStatus, 0, len(hs))
	for _, h := range hs {
		msg := fmt.Sprintf("%d/%d ready, %d updated, %d available", h.Ready, h.Desired, h.Updated, h.Available)
		if h.Message != "" {
			msg += ": " + h.Message
		}
		out = append(out, ReplicaStatus{Name: "deployment/" + h.Name, Release: h.Release, State: string(h.State), Ready: h.State == runtime.WorkloadHealthy, Message: msg})
	}
	return out
}

// unitStrategy rolls release rel of d out on a unit driver. Rolling is the
// Deployment's own rolling update; blue/green starts the new release in a
// Deployment of its own, waits until it is healthy and switches the
// service's selector to it at once; a canary runs a Deployment of its own
// beside the old release, with the service over both, sized so that the
// share of pods is each step's weight, and must stay healthy through each
// pause; where the driver can split requests by weight (a Gateway API
// route) it is asked to give the canary exactly the step's weight. The old
// release is kept (not applied, not pruned) until the new one has taken
// over, then pruned with the inventory.
//
// A canary's analysis of error rates and latency needs socle's proxy, which
// Kubernetes traffic does not cross; here a step passes when the canary's
// pods stay available through the pause.
func (w *worker) unitStrategy(ctx context.Context, ud runtime.UnitDriver, d *plan.Unit, prev *store.Release, rel, artifact string) error {
	strategy := strategyOf(d)
	wl, err := w.workload(ctx, d, rel, artifact, strategy)
	if err != nil {
		return err
	}
	var keep []string
	prevServe := ""
	if prev != nil {
		// The service serves the previous release alone until the switch,
		// whatever its strategy: a rolling release's pods carry their
		// release label too, and a service over every release would send
		// requests to a blue/green release before it is switched to.
		p := releaseName(prev.ID)
		keep = []string{p}
		prevServe = p
	}
	switch {
	case prev == nil || strategy == spec.StrategyRolling:
	case strategy == spec.StrategyBlueGreen:
		if err := w.unitStep(ctx, ud, runtime.UnitSpec{App: d.App, Env: d.Env, Workloads: []runtime.Workload{wl}, Keep: keep, Serve: prevServe}, rel); err != nil {
			return err
		}
	case strategy == spec.StrategyCanary:
		steps := d.Rollout.Steps
		if len(steps) == 0 {
			steps = []spec.CanaryStep{{Weight: 50}}
		}
		n := max(d.Replicas.Min, 1)
		for i, st := range steps {
			if st.Weight >= 100 {
				break
			}
			c := wl
			c.Replicas = canaryReplicas(n, st.Weight)
			step := runtime.UnitSpec{App: d.App, Env: d.Env, Workloads: []runtime.Workload{c}, Keep: keep, Weight: st.Weight}
			if err := w.unitStep(ctx, ud, step, rel); err != nil {
				return err
			}
			w.report(func(s *UnitStatus) {
				s.Message = fmt.Sprintf("canary %s: step %d of %d, %d pod(s) beside %d (about %d%% of requests), watching its health for %s", rel, i+1, len(steps), c.Replicas, n, st.Weight, time.Duration(st.Pause))
			})
			if err := w.unitHold(ctx, ud, d, rel, time.Duration(st.Pause)); err != nil {
				return err
			}
		}
	}
	// The new release takes all the traffic; the old one is pruned once
	// the new is healthy.
	final := runtime.UnitSpec{App: d.App, Env: d.Env, Workloads: []runtime.Workload{wl}, Keep: keep, Serve: serving(wl)}
	if err := w.unitStep(ctx, ud, final, rel); err != nil {
		return err
	}
	final.Keep = nil
	return ud.Apply(ctx, final)
}

// canaryReplicas is how many canary pods beside n old ones receive about
// weight percent of requests, when the service spreads them evenly. A
// canary never runs more pods than the release will, so a step above 50%
// gets half of the requests.
func canaryReplicas(n, weight int) int {
	k := (weight*n + (100-weight)/2) / max(100-weight, 1)
	return min(max(k, 1), max(n, 1))
}

// unitStep applies us and waits until release rel's workload is healthy.
func (w *worker) unitStep(ctx context.Context, ud runtime.UnitDriver, us runtime.UnitSpec, rel string) error {
	if err := ud.Apply(ctx, us); err != nil {
		return fmt.Errorf("applying %s: %w", rel, err)
	}
	least := 0
	if len(us.Workloads) > 0 {
		wl := us.Workloads[0]
		switch {
		case wl.Replicas > 0:
			least = wl.Replicas
		case wl.Unit != nil:
			least = wl.Unit.Replicas.Min
		}
	}
	return w.unitWait(ctx, ud, us.App, us.Env, rel, least)
}

// unitWait waits until release rel's workload is healthy. Kubernetes
// itself says when a rollout is stuck (progressDeadlineSeconds, which the
// driver sets from the same deadline); socle's own deadline, twice as
// long, only covers a cluster that says nothing. Healthy is not enough:
// at least least pods must be ready, so that a Deployment scaled below the
// release's minimum (one an autoscaler has not scaled yet) never takes
// over from the release before it.
func (w *worker) unitWait(ctx context.Context, ud runtime.UnitDriver, app, env, rel string, least int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*w.e.cfg.ProgressDeadline)
	defer cancel()
	last := "not observed yet"
	for {
		hs, err := ud.Health(ctx, app, env)
		if err == nil {
			for _, h := range hs {
				if h.Release != rel {
					continue
				}
				switch {
				case h.State == runtime.WorkloadHealthy && h.Ready >= least:
					return nil
				case h.State == runtime.WorkloadFailed:
					return fmt.Errorf("deployment %s: %s", h.Name, h.Message)
				case h.State == runtime.WorkloadHealthy:
					last = fmt.Sprintf("deployment %s: %d of at least %d pods ready", h.Name, h.Ready, least)
				default:
					last = fmt.Sprintf("deployment %s: %s", h.Name, h.Message)
				}
			}
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not healthy after %s: %s", rel, 2*w.e.cfg.ProgressDeadline, last)
			}
			return ctx.Err()
		case <-time.After(unitPoll):
		}
	}
}

// unitHold watches a canary for a pause; it rolls back as soon as the
// canary's pods stop being available. A pause ends well only on health
// read after it: while health cannot be read the canary is not known to be
// healthy, and the step waits, for at most the progress deadline.
func (w *worker) unitHold(ctx context.Context, ud runtime.UnitDriver, d *plan.Unit, rel string, pause time.Duration) error {
	end := time.Now().Add(pause)
	var failing time.Time // since when health cannot be read
	for {
		hs, err := ud.Health(ctx, d.App, d.Env)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := unitPoll
		if err != nil {
			if failing.IsZero() {
				failing = time.Now()
			}
			if time.Since(failing) >= w.e.cfg.ProgressDeadline {
				return &rollback{reason: fmt.Sprintf("canary %s: its health could not be read for %s: %v", rel, w.e.cfg.ProgressDeadline, err)}
			}
		} else {
			failing = time.Time{}
			seen := false
			for _, h := range hs {
				if h.Release != rel {
					continue
				}
				seen = true
				if h.State != runtime.WorkloadHealthy {
					return &rollback{reason: fmt.Sprintf("canary %s became unhealthy: %s", h.Name, h.Message)}
				}
			}
			if !seen {
				return &rollback{reason: fmt.Sprintf("canary %s: its Deployment is gone", rel)}
			}
			if !time.Now().Before(end) {
				return nil
			}
			wait = min(unitPoll, time.Until(end)+time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// unitRestore undoes a failed rollout: the previous release runs and serves
// again, exactly as it was applied; with no previous release, nothing runs.
func (w *worker) unitRestore(ctx context.Context, ud runtime.UnitDriver, d *plan.Unit, prev *store.Release) {
	if prev == nil {
		if _, err := ud.Prune(ctx, d.App, d.Env); err != nil {
			w.e.log.Error("removing a failed first release", "app", d.App, "env", d.Env, "err", err)
		}
		return
	}
	if err := ud.Restore(ctx, d.App, d.Env, releaseName(prev.ID)); err != nil {
		// Not lost: the steady passes that follow see the failed release
		// still there, report Degraded and restore again (unitSteady).
		w.e.log.Error("restoring the previous release", "app", d.App, "env", d.Env, "release", prev.ID, "err", err)
	}
}

// unitPrune deletes a unit removed from Git, unless its environment keeps
// orphans.
func (w *worker) unitPrune(ctx context.Context, ud runtime.UnitDriver) {
	if w.e.cfg.Keep != nil && w.e.cfg.Keep(w.key.Env) {
		w.say(Orphaned, ReasonRemovedFromGit, fmt.Sprintf("removed from Git; its objects stay because %s does not prune", w.key.Env))
		return
	}
	if _, err := ud.Prune(ctx, w.key.App, w.key.Env); err != nil {
		w.say(Degraded, ReasonRuntimeError, "pruning: "+err.Error())
		return
	}
	w.e.forget(w.key)
}
