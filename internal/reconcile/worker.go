package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// worker converges one unit. Its passes run on one goroutine, so a unit is
// never acted on twice at once; triggers arriving during a pass coalesce.
type worker struct {
	e   *Engine
	key plan.Key

	mu      sync.Mutex
	desired *plan.Unit // nil: the unit was removed from Git
	set     bool       // desired was ever set (a removed unit is pruned only then)
	status  UnitStatus
	running bool
	kickc   chan struct{}

	// Owned by the worker's goroutine.
	failed   target // the target whose rollout failed; not retried until the desired state changes
	buildErr *buildFailure
	scale    int // the replicas the autoscaler wants; 0 until first observed
	scaledAt time.Time
	loads    []loadSample // recent in-flight samples
}

// target is what a release deploys; two releases with the same target are
// the same deployment.
type target struct {
	Revision, Artifact, Config string
}

// buildFailure is a build that failed, kept so that it is not run again
// at every pass: only when the app's files change, or at retryAt.
type buildFailure struct {
	source   string // the app's source hash the build failed on
	revision string
	err      error
	tail     string // the last lines of its log
	attempts int    // failed builds of this source in a row
	retryAt  time.Time
}

// Backoff of failed builds: the first retry after buildBackoff, doubling
// up to maxBuildBackoff. A compiler error does not go away by itself, a
// module proxy that was down does.
const (
	buildBackoff    = time.Minute
	maxBuildBackoff = time.Hour
)

func newWorker(e *Engine, k plan.Key) *worker {
	now := e.now()
	return &worker{e: e, key: k, kickc: make(chan struct{}, 1),
		status: UnitStatus{App: k.App, Env: k.Env, Phase: Pending, Since: now, UpdatedAt: now}}
}

func (w *worker) setDesired(u *plan.Unit) {
	w.mu.Lock()
	if u != nil {
		c := *u
		u = &c
	}
	w.desired, w.set = u, true
	w.mu.Unlock()
	w.kick()
}

func (w *worker) kick() {
	select {
	case w.kickc <- struct{}{}:
	default:
	}
}

func (w *worker) snapshot() UnitStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Replicas = slices.Clone(s.Replicas)
	return s
}

// report changes the unit's status with f. A new phase or reason starts a
// new Since, and drops what belonged to the old reason (its log tail, its
// retry time) unless f set them anew.
func (w *worker) report(f func(s *UnitStatus)) {
	w.mu.Lock()
	old := w.status
	f(&w.status)
	s := &w.status
	now := w.e.now()
	if s.Phase != old.Phase || s.Reason != old.Reason {
		s.Since = now
		if s.LogTail == old.LogTail {
			s.LogTail = ""
		}
		if s.RetryAt.Equal(old.RetryAt) {
			s.RetryAt = time.Time{}
		}
	}
	s.UpdatedAt = now
	moved, snap := s.Phase != old.Phase, *s
	w.mu.Unlock()
	if moved && w.e.cfg.OnPhase != nil {
		w.e.cfg.OnPhase(snap)
	}
}

// say reports a phase, its reason and the words that say it.
func (w *worker) say(p Phase, r Reason, msg string) {
	w.report(func(s *UnitStatus) { s.Phase, s.Reason, s.Message = p, r, msg })
}

func (w *worker) run(ctx context.Context) {
	t := time.NewTicker(w.e.cfg.Resync)
	defer t.Stop()
	for {
		w.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-w.kickc:
		case <-t.C:
		}
	}
}

// pass observes the unit and takes one step towards the desired state.
func (w *worker) pass(ctx context.Context) {
	w.mu.Lock()
	d, set := w.desired, w.set
	w.mu.Unlock()
	if !set {
		return
	}
	ud, err := w.e.unitDriver(w.key.Env)
	if err != nil {
		w.say(Degraded, ReasonRuntimeUnreachable, "the environment's runtime cannot be reached: "+err.Error()+"; what runs is untouched")
		return
	}
	if b, ok := w.e.blockedReason(w.key); ok {
		w.blocked(ctx, ud, d, b)
		return
	}
	if d == nil {
		if ud != nil {
			w.unitPrune(ctx, ud)
			return
		}
		w.prune(ctx)
		return
	}
	if d.Runtime != spec.RuntimeLocal && ud == nil {
		w.say(Unsupported, ReasonRuntimeUnsupported, fmt.Sprintf("runtime %q is not available in this version of socle; the unit is planned, not run", d.Runtime))
		return
	}
	digest := d.Artifact
	if digest == "" {
		var ok bool
		if digest, ok = w.build(ctx, d); !ok {
			return
		}
	}
	tgt := target{Revision: d.Revision, Artifact: digest, Config: configHash(d)}
	cur, err := w.e.cfg.Store.CurrentRelease(ctx, d.App, d.Env)
	hasCur := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		w.say(Degraded, ReasonStoreError, "reading releases: "+err.Error())
		return
	}
	if hasCur && (targetOf(cur) == tgt || tgt == w.failed) {
		failedNewer := tgt == w.failed && targetOf(cur) != tgt
		if ud != nil {
			w.unitSteady(ctx, ud, d, cur, failedNewer)
			return
		}
		w.steady(ctx, d, cur, failedNewer)
		return
	}
	if tgt == w.failed {
		return // failed and nothing runs: wait for a new desired state
	}
	var prev *store.Release
	if hasCur {
		prev = &cur
	}
	w.rollout(ctx, ud, d, prev, tgt)
}

// build returns the digest of the unit's image, building it if it was
// never built. A failed build is not run again at every pass: only when
// the app's files change, or once its backoff has passed; until then the
// unit says why it failed, the log's last lines, and when it retries.
func (w *worker) build(ctx context.Context, d *plan.Unit) (string, bool) {
	now := w.e.now()
	if f := w.buildErr; f != nil && f.source == d.Source && now.Before(f.retryAt) {
		w.reportBuildFailed(d, f)
		return "", false
	}
	digest, err := w.e.cfg.Images.Build(ctx, *d, func(line string) {
		w.report(func(s *UnitStatus) {
			s.Phase, s.Reason = Building, ReasonBuilding
			s.Message = fmt.Sprintf("building %s at %s; what runs is untouched", d.App, abbrevSHA(d.Revision))
			s.LogTail = line
		})
	})
	if err == nil {
		w.buildErr = nil
		return digest, true
	}
	if ctx.Err() != nil {
		return "", false // socle is stopping: not a failure of the build
	}
	f := &buildFailure{source: d.Source, revision: d.Revision, err: err, attempts: 1}
	if prev := w.buildErr; prev != nil && prev.source == d.Source {
		f.attempts = prev.attempts + 1
	}
	f.retryAt = now.Add(min(buildBackoff<<min(f.attempts-1, 16), maxBuildBackoff)) // 16: no overflow, past the bound
	// A failed build command (artifact.BuildError) says its cause apart from
	// its log.
	var be interface {
		error
		LogTail() string
	}
	if errors.As(err, &be) {
		f.tail = be.LogTail()
		if cause := errors.Unwrap(be); cause != nil {
			f.err = cause
		}
	}
	w.buildErr = f
	w.e.log.Warn("build failed", "app", d.App, "env", d.Env, "revision", abbrevSHA(d.Revision), "attempt", f.attempts, "retryAt", f.retryAt, "err", firstLine(err.Error()))
	w.reportBuildFailed(d, f)
	return "", false
}

func (w *worker) reportBuildFailed(d *plan.Unit, f *buildFailure) {
	w.report(func(s *UnitStatus) {
		s.Phase, s.Reason = Failed, ReasonBuildFailed
		s.Message = fmt.Sprintf("build of %s at %s failed: %s; what runs is untouched; socle builds again when apps/%s changes, or after a backoff",
			d.App, abbrevSHA(f.revision), firstLine(f.err.Error()), d.App)
		s.LogTail, s.RetryAt = f.tail, f.retryAt
	})
}

// abbrevSHA is a commit as people write it: its first seven digits.
func abbrevSHA(sha string) string { return sha[:min(len(sha), 7)] }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// blocked keeps what runs as it is and says why the change waits. On a
// unit driver what runs is only observed: the desired state is the blocked
// one.
func (w *worker) blocked(ctx context.Context, ud runtime.UnitDriver, d *plan.Unit, why Block) {
	if d != nil {
		if cur, err := w.e.cfg.Store.CurrentRelease(ctx, d.App, d.Env); err == nil {
			if ud != nil {
				w.unitSteady(ctx, ud, d, cur, true)
			} else {
				w.steady(ctx, d, cur, false)
			}
		}
	}
	w.say(Blocked, why.Reason, why.Message)
}

// keepFailure says that the newest release failed and rel keeps running,
// keeping the failed rollout's own words when the status has them.
func keepFailure(s *UnitStatus, rel string) {
	if s.Phase == Failed && (s.Reason == ReasonRolloutFailed || s.Reason == ReasonRolledBack) {
		return
	}
	s.Phase, s.Reason, s.Message = Failed, ReasonRolloutFailed, "the new release failed; "+rel+" keeps running"
}

func targetOf(r store.Release) target {
	return target{Revision: r.Revision, Artifact: r.Artifact, Config: r.ConfigHash}
}

// configHash identifies what a release runs besides its image: containers,
// ports and resources; not the replica count (scaling is no new release),
// nor the rollout strategy, nor the revision alone.
func configHash(u *plan.Unit) string {
	c := *u
	c.Revision, c.Source, c.Artifact, c.Rollback = "", "", "", false
	c.Replicas, c.Rollout = spec.Replicas{}, spec.Rollout{}
	b, _ := json.Marshal(c)
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func releaseName(id int64) string { return "r" + strconv.FormatInt(id, 10) }

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// replicas lists the unit's replicas, grouped by release name.
func (w *worker) replicas(ctx context.Context) (map[string][]runtime.Status, error) {
	all, err := w.e.cfg.Driver.List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]runtime.Status{}
	for _, st := range all {
		if st.Ref.App == w.key.App && st.Ref.Env == w.key.Env {
			out[st.Ref.Release] = append(out[st.Ref.Release], st)
		}
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b runtime.Status) int { return a.Ref.Index - b.Ref.Index })
	}
	return out, nil
}

// steady keeps the running release healthy, scaled, routed, and alone.
func (w *worker) steady(ctx context.Context, d *plan.Unit, cur store.Release, failedNewer bool) {
	rel := releaseName(cur.ID)
	all, err := w.replicas(ctx)
	if err != nil {
		w.say(Degraded, ReasonRuntimeError, "listing replicas: "+err.Error())
		return
	}
	n := w.wantReplicas(d, len(all[rel]))
	drift := driftOf(all, rel, n)
	heal := w.e.cfg.SelfHeal == nil || w.e.cfg.SelfHeal(d.Env)
	if drift != "" && w.e.cfg.OnDrift != nil {
		w.e.cfg.OnDrift(d.App, d.Env, drift, heal)
	}
	if drift != "" && !heal {
		w.report(func(s *UnitStatus) {
			s.Release, s.Revision, s.Artifact, s.Desired = cur.ID, cur.Revision, cur.Artifact, n
			s.Replicas = replicaStatuses(all[rel], d)
			s.Phase, s.Reason, s.Message = Degraded, ReasonDrift, "drift: "+drift+"; selfHeal is off in "+d.Env+": reported, not corrected"
		})
		return
	}
	rs, err := w.replicaSpec(ctx, d, rel, cur.Artifact)
	if err != nil {
		w.say(Degraded, ReasonRuntimeError, err.Error())
		return
	}
	// Scaling down: the replicas that go leave the routes first, and are
	// drained, before they are stopped.
	if keep := firstN(all[rel], n); len(keep) < len(all[rel]) && len(keep) > 0 {
		if err := w.route(ctx, d, map[string][]runtime.Status{rel: keep}, nil); err != nil {
			w.e.log.Warn("routing before a scale-down", "app", d.App, "env", d.Env, "err", err)
		}
	}
	if err := w.ensure(ctx, rs, all[rel], n); err != nil {
		w.say(Degraded, ReasonRuntimeError, err.Error())
		return
	}
	others := all
	all, _ = w.replicas(ctx)
	mine := all[rel]
	if err := w.route(ctx, d, map[string][]runtime.Status{rel: mine}, nil); err != nil {
		w.e.log.Warn("routing", "app", d.App, "env", d.Env, "err", err)
	}
	// Anything else of the unit is drift: a leftover of an interrupted
	// rollout, or a replica nobody asked for; routed away (and drained)
	// above, stopped now.
	for name, rs := range others {
		if name != rel {
			w.stopAll(ctx, rs)
		}
	}
	ready := 0
	var why []string
	for _, st := range mine {
		if st.Ready {
			ready++
		} else {
			why = append(why, fmt.Sprintf("%s is %s%s", st.Ref, st.State, exitWhy(st)))
		}
	}
	w.report(func(s *UnitStatus) {
		s.Release, s.Revision, s.Artifact = cur.ID, cur.Revision, cur.Artifact
		s.Ready, s.Desired = ready, n
		s.Replicas = replicaStatuses(mine, d)
		s.URL = unitURL(d)
		switch {
		case failedNewer:
			keepFailure(s, releaseName(cur.ID))
		case ready < n:
			s.Phase, s.Reason, s.Message = Degraded, ReasonReplicasNotReady, fmt.Sprintf("%d of %d replicas ready: %s; socle restarts them with backoff", ready, n, strings.Join(why, "; "))
		case len(d.Containers) > 1:
			s.Phase, s.Reason = Synced, ReasonOneContainer
			s.Message = fmt.Sprintf("runs container %s only: the local runtime runs one container per replica (%d declared)", slices.Sorted(maps.Keys(d.Containers))[0], len(d.Containers))
		default:
			s.Phase, s.Reason, s.Message = Synced, "", ""
		}
	})
}

// driftOf describes how the unit's replicas differ from n replicas of rel:
// missing ones, extra ones, replicas of another release; "" when none.
func driftOf(all map[string][]runtime.Status, rel string, n int) string {
	var parts []string
	have := map[int]bool{}
	for _, st := range all[rel] {
		if st.Ref.Index >= n {
			parts = append(parts, fmt.Sprintf("replica %s is not wanted (%d wanted)", st.Ref, n))
		}
		have[st.Ref.Index] = true
	}
	for i := range n {
		if !have[i] {
			parts = append(parts, fmt.Sprintf("replica %d of %s is missing", i, rel))
		}
	}
	for name, rs := range all {
		if name != rel {
			parts = append(parts, fmt.Sprintf("%d replica(s) of %s run beside %s", len(rs), name, rel))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

func exitWhy(st runtime.Status) string {
	if st.LastExit == nil {
		if st.Message != "" {
			return " (" + st.Message + ")"
		}
		return ""
	}
	return fmt.Sprintf(" (last exit: %s)", st.LastExit.Reason)
}

func replicaStatuses(rs []runtime.Status, d *plan.Unit) []ReplicaStatus {
	out := make([]ReplicaStatus, 0, len(rs))
	for _, st := range rs {
		r := ReplicaStatus{Name: st.Ref.String(), Release: st.Ref.Release, State: string(st.State), Ready: st.Ready, Restarts: st.Restarts, PID: st.PID, Message: st.Message}
		if b, ok := primaryBinding(st, d); ok {
			r.Address = b.Address
		}
		if st.LastExit != nil && r.Message == "" {
			r.Message = st.LastExit.Reason
		}
		out = append(out, r)
	}
	return out
}

func unitURL(d *plan.Unit) string {
	if primaryPort(d) == "" {
		return ""
	}
	return "http://" + d.App + "." + d.Env + ".localhost"
}

// ensure makes exactly n replicas of spec's release exist, indexes 0..n-1,
// starting the missing ones and stopping the others; it does not wait.
func (w *worker) ensure(ctx context.Context, rs runtime.ReplicaSpec, have []runtime.Status, n int) error {
	exists := map[int]bool{}
	for _, st := range have {
		if st.Ref.Index >= n {
			if err := w.e.cfg.Driver.Stop(ctx, st.Handle); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				return fmt.Errorf("stopping %s: %w", st.Ref, err)
			}
			continue
		}
		exists[st.Ref.Index] = true
	}
	for i := range n {
		if exists[i] {
			continue
		}
		s := rs
		s.Index = i
		if _, err := w.e.cfg.Driver.Start(ctx, s); err != nil && !errors.Is(err, runtime.ErrExists) {
			return fmt.Errorf("starting %s: %w", s.Ref, err)
		}
	}
	return nil
}

func (w *worker) stopAll(ctx context.Context, rs []runtime.Status) {
	var wg sync.WaitGroup
	for _, st := range rs {
		wg.Go(func() {
			if err := w.e.cfg.Driver.Stop(ctx, st.Handle); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				w.e.log.Warn("stopping replica", "replica", st.Ref.String(), "err", err)
			}
		})
	}
	wg.Wait()
}

// waitReady waits until n replicas of a release are ready. A replica in a
// crash loop, or the progress deadline, fails the wait with the reason.
func (w *worker) waitReady(ctx context.Context, rel string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, w.e.cfg.ProgressDeadline)
	defer cancel()
	for {
		all, err := w.replicas(ctx)
		if err != nil {
			return err
		}
		ready := 0
		for _, st := range all[rel] {
			if st.Ref.Index >= n {
				continue
			}
			if st.State == runtime.CrashLoop {
				tail := ""
				if st.LastExit != nil {
					tail = ": " + st.LastExit.Reason
					if st.LastExit.LogTail != "" {
						tail += "; log: " + lastLines(st.LastExit.LogTail, 3)
					}
				}
				return fmt.Errorf("replica %s is crash-looping%s", st.Ref, tail)
			}
			if st.Ready {
				ready++
			}
		}
		if ready >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%d of %d new replicas ready after %s", ready, n, w.e.cfg.ProgressDeadline)
			}
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// prune stops a unit removed from Git, unless its environment keeps
// orphans (the desired state of a removed unit carries no environment, so
// the engine is told through Keep).
func (w *worker) prune(ctx context.Context) {
	all, err := w.replicas(ctx)
	if err != nil {
		return
	}
	if w.e.cfg.Keep != nil && w.e.cfg.Keep(w.key.Env) {
		n := 0
		for _, rs := range all {
			n += len(rs)
		}
		w.say(Orphaned, ReasonRemovedFromGit, fmt.Sprintf("removed from Git; %d replica(s) keep running because %s does not prune", n, w.key.Env))
		return
	}
	// The routes go first, drained, then the replicas.
	for _, r := range w.e.cfg.Router.Routes() {
		if r.Name == proxy.RouteName(w.key.App, w.key.Env, "") || strings.HasSuffix(r.Name, "."+w.key.App+"."+w.key.Env) {
			if err := w.e.cfg.Router.DeleteRoute(ctx, r.Name); err != nil {
				w.e.log.Warn("deleting route", "route", r.Name, "err", err)
			}
		}
	}
	for _, rs := range all {
		w.stopAll(ctx, rs)
	}
	w.e.forget(w.key)
}

// routeNames lists the unit's routes by port name.
func routeNames(d *plan.Unit) map[string]string {
	out := map[string]string{}
	if d.Service == nil {
		return out
	}
	primary := primaryPort(d)
	for name := range d.Service.Ports {
		if name == primary {
			out[name] = proxy.RouteName(d.App, d.Env, "")
		} else {
			out[name] = proxy.RouteName(d.App, d.Env, name)
		}
	}
	return out
}

func primaryPort(d *plan.Unit) string {
	if d.Service == nil {
		return ""
	}
	return spec.PrimaryPort(slices.Collect(maps.Keys(d.Service.Ports)))
}

func primaryBinding(st runtime.Status, d *plan.Unit) (runtime.PortBinding, bool) {
	p := primaryPort(d)
	for _, b := range st.Ports {
		if b.Name == p {
			return b, true
		}
	}
	return runtime.PortBinding{}, false
}
