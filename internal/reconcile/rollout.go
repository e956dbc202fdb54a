package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// rollout replaces the release that runs (prev, nil for a first deploy) with
// one of tgt, by the unit's strategy. It is written as steps that find their
// work already done when a restarted socle resumes the same release: the
// store returns the Progressing release instead of a new one, replicas that
// exist are not started again, routes that are right are not changed.
//
// On a unit driver (ud not nil) the driver applies each step and the
// engine keeps the replicas (see unitStrategy).
func (w *worker) rollout(ctx context.Context, ud runtime.UnitDriver, d *plan.Unit, prev *store.Release, tgt target) {
	trigger := store.TriggerSync
	if d.Rollback {
		trigger = store.TriggerRollback
	}
	var notes []byte
	if w.e.cfg.Notes != nil && prev != nil {
		notes = w.e.cfg.Notes(ctx, d.App, prev.Revision, tgt.Revision)
	}
	var author string
	if w.e.cfg.Author != nil {
		author = w.e.cfg.Author(ctx, d.App, d.Env)
	}
	rel, err := w.e.cfg.Store.BeginRelease(ctx, store.Release{
		App: d.App, Env: d.Env, Revision: tgt.Revision, Artifact: tgt.Artifact, ConfigHash: tgt.Config,
		Strategy: string(strategyOf(d)), Trigger: trigger, Previous: prevID(prev), Notes: notes, Author: author, Emergency: emergencyOf(d, prev, tgt),
	}, &store.AuditRecord{Actor: "socle", Action: "release.begin"})
	if err != nil {
		w.say(Degraded, ReasonStoreError, "recording the release: "+err.Error())
		return
	}
	name := releaseName(rel.ID)
	w.say(Progressing, ReasonRollingOut, fmt.Sprintf("rolling out %s (%s, %s) with %s", name, short(tgt.Revision), short(tgt.Artifact), strategyOf(d)))
	w.e.log.Info("rollout started", "app", d.App, "env", d.Env, "release", rel.ID, "revision", short(tgt.Revision), "artifact", short(tgt.Artifact), "strategy", strategyOf(d))
	w.e.emit(ReleaseEvent{Release: rel, Phase: "started"})
	if ud != nil {
		err = w.unitStrategy(ctx, ud, d, prev, name, tgt.Artifact)
	} else {
		var rs runtime.ReplicaSpec
		if rs, err = w.replicaSpec(ctx, d, name, tgt.Artifact); err == nil {
			err = w.strategy(ctx, d, prev, rs)
		}
	}
	if ctx.Err() != nil {
		return // socle is stopping: the release stays Progressing and is resumed
	}
	status, reason := store.Succeeded, ""
	var rb *rollback
	if errors.As(err, &rb) {
		status, reason = store.RolledBack, rb.reason
	} else if err != nil {
		status, reason = store.Failed, err.Error()
	}
	if status != store.Succeeded {
		// Traffic goes back to what ran before at once; the new replicas go.
		if ud != nil {
			w.unitRestore(ctx, ud, d, prev)
		} else {
			w.restore(ctx, d, prev, name)
		}
		w.failed = tgt
	} else {
		w.failed = target{}
	}
	if err := w.e.cfg.Store.FinishRelease(ctx, rel.ID, status, reason, &store.AuditRecord{Actor: "socle", Action: "release." + strings.ToLower(string(status))}); err != nil {
		w.e.log.Error("recording the release outcome", "app", d.App, "env", d.Env, "release", rel.ID, "err", err)
	}
	w.e.log.Info("rollout finished", "app", d.App, "env", d.Env, "release", rel.ID, "status", status, "reason", reason)
	rel.Status, rel.Reason = status, reason
	w.e.emit(ReleaseEvent{Release: rel, Phase: "finished"})
	if status != store.Succeeded {
		keeps := "nothing runs"
		if prev != nil {
			keeps = releaseName(prev.ID) + " keeps running"
		}
		why := ReasonRolloutFailed
		if status == store.RolledBack {
			why = ReasonRolledBack
		}
		w.say(Failed, why, fmt.Sprintf("release %s %s: %s; %s; socle retries when the desired state changes", name, strings.ToLower(string(status)), reason, keeps))
	}
	w.kick() // observe the result at once
}

// emergencyOf returns the reason of the emergency change a release of tgt
// after prev is, or "": the release that brings an emergency pin's target,
// not a later one that keeps the pin.
func emergencyOf(d *plan.Unit, prev *store.Release, tgt target) string {
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

func strategyOf(d *plan.Unit) spec.Strategy {
	if d.Rollout.Strategy == "" {
		return spec.StrategyRolling
	}
	return d.Rollout.Strategy
}

// rollback is a rollout aborted by its analysis.
type rollback struct{ reason string }

func (r *rollback) Error() string { return r.reason }

func (w *worker) strategy(ctx context.Context, d *plan.Unit, prev *store.Release, rs runtime.ReplicaSpec) error {
	newRel := rs.Release
	all, err := w.replicas(ctx)
	if err != nil {
		return err
	}
	var oldRel string
	var old []runtime.Status
	if prev != nil {
		oldRel = releaseName(prev.ID)
		old = all[oldRel]
	}
	n := w.wantReplicas(d, len(old))
	// Leftovers of other releases (an interrupted rollout) go first.
	for rel, rs := range all {
		if rel != newRel && rel != oldRel {
			w.stopAll(ctx, rs)
		}
	}
	switch {
	case prev == nil || len(old) == 0:
		return w.replace(ctx, d, rs, n, oldRel, old)
	case strategyOf(d) == "blueGreen":
		return w.replace(ctx, d, rs, n, oldRel, old)
	case strategyOf(d) == "canary":
		return w.canary(ctx, d, rs, n, oldRel, old)
	default:
		return w.rolling(ctx, d, rs, n, oldRel, old)
	}
}

// replace starts every new replica, waits until all are ready, switches the
// routes at once, drains and stops the old: blue/green, and a first deploy.
func (w *worker) replace(ctx context.Context, d *plan.Unit, rs runtime.ReplicaSpec, n int, oldRel string, old []runtime.Status) error {
	if err := w.startAndWait(ctx, rs, n); err != nil {
		return err
	}
	if err := w.routeOnly(ctx, d, rs.Release); err != nil {
		return err
	}
	w.stopAll(ctx, old)
	return nil
}

// rolling replaces old replicas by new ones maxSurge at a time, never
// going below n - maxUnavailable ready replicas behind the route.
func (w *worker) rolling(ctx context.Context, d *plan.Unit, rs runtime.ReplicaSpec, n int, oldRel string, old []runtime.Status) error {
	step := 1
	if d.Rollout.MaxSurge != nil && *d.Rollout.MaxSurge > 0 {
		step = *d.Rollout.MaxSurge
	}
	if d.Rollout.MaxUnavailable != nil && *d.Rollout.MaxUnavailable > step {
		step = *d.Rollout.MaxUnavailable
	}
	for k := min(step, n); ; k = min(k+step, n) {
		if err := w.startAndWait(ctx, rs, k); err != nil {
			return err
		}
		keepOld := max(len(old)-k, 0)
		all, err := w.replicas(ctx)
		if err != nil {
			return err
		}
		sets := map[string][]runtime.Status{rs.Release: firstN(all[rs.Release], k)}
		if keepOld > 0 {
			sets[oldRel] = firstN(all[oldRel], keepOld)
		}
		if err := w.route(ctx, d, sets, nil); err != nil {
			return err
		}
		for _, st := range all[oldRel] {
			if st.Ref.Index >= keepOld {
				w.stopAll(ctx, []runtime.Status{st})
			}
		}
		if k == n {
			return nil
		}
	}
}

// canary moves traffic to the new release step by step; during each pause
// it compares the new release's error rate and p95 latency, measured by the
// proxy, with the thresholds, and rolls back at the first breach.
func (w *worker) canary(ctx context.Context, d *plan.Unit, rs runtime.ReplicaSpec, n int, oldRel string, old []runtime.Status) error {
	steps := d.Rollout.Steps
	if len(steps) == 0 {
		steps = []spec.CanaryStep{{Weight: 50}}
	}
	newRel := rs.Release
	canaries := 1
	if err := w.startAndWait(ctx, rs, canaries); err != nil {
		return err
	}
	for i, st := range steps {
		if st.Weight >= 100 {
			break
		}
		all, err := w.replicas(ctx)
		if err != nil {
			return err
		}
		sets := map[string][]runtime.Status{newRel: firstN(all[newRel], canaries), oldRel: all[oldRel]}
		if err := w.route(ctx, d, sets, map[string]int{newRel: st.Weight, oldRel: 100 - st.Weight}); err != nil {
			return err
		}
		w.report(func(s *UnitStatus) {
			s.Message = fmt.Sprintf("canary %s: step %d of %d, %d%% of requests, analysing for %s", newRel, i+1, len(steps), st.Weight, time.Duration(st.Pause))
		})
		if err := w.analyse(ctx, d, newRel, time.Duration(st.Pause)); err != nil {
			return err
		}
	}
	return w.replace(ctx, d, rs, n, oldRel, old)
}

// analyse watches the new release's traffic for a pause.
func (w *worker) analyse(ctx context.Context, d *plan.Unit, rel string, pause time.Duration) error {
	a := d.Rollout.Analysis
	route := proxy.RouteName(d.App, d.Env, "")
	base := w.e.cfg.Router.Stats(route, rel)
	end := time.Now().Add(pause)
	for {
		if a != nil {
			s := w.e.cfg.Router.Stats(route, rel).Since(base)
			if s.Requests > 0 && int(s.Requests) >= a.MinRequests {
				if a.MaxErrorRate != nil && s.ErrorRate() > *a.MaxErrorRate {
					return &rollback{reason: fmt.Sprintf("canary error rate %.1f%% over %d requests exceeds %.1f%%", 100*s.ErrorRate(), s.Requests, 100**a.MaxErrorRate)}
				}
				if a.MaxP95 > 0 && s.P95 > time.Duration(a.MaxP95) {
					return &rollback{reason: fmt.Sprintf("canary p95 latency %s over %d requests exceeds %s", s.P95.Round(time.Millisecond), s.Requests, time.Duration(a.MaxP95))}
				}
			}
		}
		if !time.Now().Before(end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(100*time.Millisecond, time.Until(end)+time.Millisecond)):
		}
	}
}

// restore sends traffic back to the previous release and stops the new one.
func (w *worker) restore(ctx context.Context, d *plan.Unit, prev *store.Release, newRel string) {
	all, err := w.replicas(ctx)
	if err != nil {
		return
	}
	if prev != nil && len(all[releaseName(prev.ID)]) > 0 {
		if err := w.route(ctx, d, map[string][]runtime.Status{releaseName(prev.ID): all[releaseName(prev.ID)]}, nil); err != nil {
			w.e.log.Error("restoring traffic to the previous release", "app", d.App, "env", d.Env, "err", err)
		}
	}
	w.stopAll(ctx, all[newRel])
}

func (w *worker) startAndWait(ctx context.Context, rs runtime.ReplicaSpec, n int) error {
	all, err := w.replicas(ctx)
	if err != nil {
		return err
	}
	var have []runtime.Status
	for _, st := range all[rs.Release] {
		if st.Ref.Index < n {
			have = append(have, st)
		}
	}
	for i := range n {
		if !slices.ContainsFunc(have, func(st runtime.Status) bool { return st.Ref.Index == i }) {
			s := rs
			s.Index = i
			if _, err := w.e.cfg.Driver.Start(ctx, s); err != nil && !errors.Is(err, runtime.ErrExists) {
				return fmt.Errorf("starting %s: %w", s.Ref, err)
			}
		}
	}
	return w.waitReady(ctx, rs.Release, n)
}

func (w *worker) routeOnly(ctx context.Context, d *plan.Unit, rel string) error {
	all, err := w.replicas(ctx)
	if err != nil {
		return err
	}
	return w.route(ctx, d, map[string][]runtime.Status{rel: all[rel]}, nil)
}

// route points every route of the unit at the given releases' replicas.
// shares, when set, is each release's percentage of requests; otherwise
// every replica weighs the same.
func (w *worker) route(ctx context.Context, d *plan.Unit, sets map[string][]runtime.Status, shares map[string]int) error {
	names := routeNames(d)
	if len(names) == 0 {
		return nil
	}
	weights := backendWeights(sets, shares)
	var health proxy.HealthCheck
	for _, c := range d.Containers {
		if c.ReadinessProbe != nil && c.ReadinessProbe.HttpGet != nil {
			health.Path = c.ReadinessProbe.HttpGet.Path
		}
	}
	for _, port := range slices.Sorted(maps.Keys(names)) {
		r := proxy.Route{Name: names[port], Health: proxy.HealthCheck{Interval: 500 * time.Millisecond}}
		if port == primaryPort(d) {
			r.Health.Path = health.Path
		}
		for rel, rs := range sets {
			for _, st := range rs {
				for _, b := range st.Ports {
					if b.Name == port && b.Address != "" {
						r.Backends = append(r.Backends, proxy.Backend{ID: st.Ref.String(), Addr: b.Address, Weight: weights[rel], Version: rel})
					}
				}
			}
		}
		if len(r.Backends) == 0 {
			continue
		}
		slices.SortFunc(r.Backends, func(a, b proxy.Backend) int { return strings.Compare(a.ID, b.ID) })
		cctx, cancel := context.WithTimeout(ctx, w.e.cfg.ProgressDeadline)
		err := w.e.cfg.Router.SetRoute(cctx, r)
		cancel()
		if err != nil && !errors.Is(err, proxy.ErrNotDrained) {
			return fmt.Errorf("routing %s: %w", r.Name, err)
		}
	}
	return nil
}

// backendWeights turns release shares into per-backend weights: with No old
// and Nn new backends, new weighing s·No and old (100−s)·Nn gives the new
// release s% of requests whatever the counts.
func backendWeights(sets map[string][]runtime.Status, shares map[string]int) map[string]int {
	out := map[string]int{}
	if shares == nil {
		for rel := range sets {
			out[rel] = 1
		}
		return out
	}
	prod := 1
	for _, rs := range sets {
		prod *= max(len(rs), 1)
	}
	for rel, rs := range sets {
		out[rel] = shares[rel] * prod / max(len(rs), 1)
	}
	// Keep weights within the proxy's 0..1000 by a common factor.
	g := 0
	for _, v := range out {
		g = gcd(g, v)
	}
	for rel, v := range out {
		if g > 0 {
			v /= g
		}
		for v > 1000 {
			v /= 2
		}
		out[rel] = v
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func firstN(rs []runtime.Status, n int) []runtime.Status {
	var out []runtime.Status
	for _, st := range rs {
		if st.Ref.Index < n {
			out = append(out, st)
		}
	}
	return out
}
