package replicas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// Router is the part of socle's proxy the runtime drives.
type Router interface {
	SetRoute(ctx context.Context, r proxy.Route) error
	DeleteRoute(ctx context.Context, name string) error
	Route(name string) (proxy.Route, bool)
	Routes() []proxy.RouteStatus
	Stats(route, version string) proxy.Snapshot
}

// Config wires a Runtime.
type Config struct {
	// Driver runs the replicas.
	Driver runtime.Driver
	// Router routes requests to them.
	Router Router
	// Images unpacks what they run.
	Images Images
	// Registry is the host (and port) of socle's registry, from which a
	// driver that pulls images (container) pulls socle's builds.
	Registry string
	// Secret derives the made-up credentials of resources socle does not
	// provision (runtime.ResourceOutputs).
	Secret []byte
	// Resources gives the outputs of the resources socle provisions; nil:
	// none is (every resource reads made-up outputs).
	Resources Resources
	// References resolves the references to secret managers that stand
	// for a unit's secrets (ref+vault://…) when a replica starts; nil: a
	// replica with one does not start.
	References References
	// Scale says how units that autoscale are sized; zero values mean
	// defaults.
	Scale ScalePolicy
	// ProgressDeadline is how long a replica may take to become ready after
	// it started before its release is Failed, as a Deployment's
	// progressDeadlineSeconds (default 2 minutes).
	ProgressDeadline time.Duration
	Clock            clock.Clock
	Logger           *slog.Logger
}

// Runtime runs units replica by replica on a Driver, behind the proxy.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock

	mu    sync.Mutex
	units map[runtime.UnitKey]*memo
}

// memo is what the runtime keeps of a unit in memory: its autoscaler, and
// the replicas each release was last applied with. A restarted socle
// starts again from the replicas it finds.
type memo struct {
	scale  scaler
	wanted map[string]int
}

var _ runtime.UnitDriver = (*Runtime)(nil)

// New returns a runtime over cfg.Driver.
func New(cfg Config) *Runtime {
	cfg.Scale = cfg.Scale.withDefaults()
	cfg.ProgressDeadline = cmp.Or(cfg.ProgressDeadline, 2*time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{cfg: cfg, log: cfg.Logger, clock: clock.Or(cfg.Clock), units: map[runtime.UnitKey]*memo{}}
}

// Name is the driver's name: "local".
func (r *Runtime) Name() string { return r.cfg.Driver.Name() }

// Capabilities are the driver's, running whole units, one container per
// replica.
func (r *Runtime) Capabilities() runtime.Capabilities {
	c := r.cfg.Driver.Capabilities()
	c.Units, c.FirstContainerOnly = true, true
	return c
}

// Recover takes back the replicas an earlier socle left running, so that
// nothing healthy is restarted and nothing is started twice. It is called
// once, before the first Apply.
func (r *Runtime) Recover(ctx context.Context) error {
	sts, err := r.cfg.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("listing replicas: %w", err)
	}
	var errs []error
	for _, st := range sts {
		if st.State == runtime.Detached || st.State == runtime.Lost {
			if err := r.cfg.Driver.Recover(ctx, st.Handle); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				errs = append(errs, fmt.Errorf("recovering %s: %w", st.Ref, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Watch returns the units whose replicas changed (one exited, or became
// ready or not), as hints for looking at them now; the channel closes when
// ctx ends.
func (r *Runtime) Watch(ctx context.Context) <-chan runtime.UnitKey {
	out := make(chan runtime.UnitKey, 64)
	events := r.cfg.Driver.Watch(ctx)
	go func() {
		defer close(out)
		for ev := range events {
			select {
			case out <- runtime.UnitKey{App: ev.Status.Ref.App, Env: ev.Status.Ref.Env}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// Apply starts, routes and stops replicas towards spec, as far as it can
// without waiting (see the package documentation). Applying the same spec
// again moves the unit on: it routes the replicas that became ready since.
func (r *Runtime) Apply(ctx context.Context, spec runtime.UnitSpec) error {
	if len(spec.Workloads) == 0 || spec.Workloads[0].Unit == nil {
		return fmt.Errorf("applying %s.%s: no workload: %w", spec.App, spec.Env, runtime.ErrInvalidUnit)
	}
	all, err := r.list(ctx, spec.App, spec.Env)
	if err != nil {
		return err
	}
	p := r.plan(spec, all)
	r.remember(spec.App, spec.Env, p.wanted)
	specs := map[int]runtime.ReplicaSpec{}
	for _, s := range p.starts {
		rs, ok := specs[s.workload]
		if !ok {
			if rs, err = r.replicaSpec(ctx, spec.Workloads[s.workload]); err != nil {
				return err
			}
			specs[s.workload] = rs
		}
		rs.Index = s.index
		if _, err := r.cfg.Driver.Start(ctx, rs); err != nil && !errors.Is(err, runtime.ErrExists) {
			return fmt.Errorf("starting %s: %w", rs.Ref, err)
		}
	}
	if err := r.route(ctx, p.routes); err != nil {
		return err
	}
	r.stopAll(ctx, p.stops)
	return nil
}

// route sets routes; the proxy checks new backends before it sends them
// requests, and drains those removed.
func (r *Runtime) route(ctx context.Context, routes []proxy.Route) error {
	for _, rt := range routes {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.ProgressDeadline)
		err := r.cfg.Router.SetRoute(cctx, rt)
		cancel()
		if err != nil && !errors.Is(err, proxy.ErrNotDrained) {
			return fmt.Errorf("routing %s: %w", rt.Name, err)
		}
	}
	return nil
}

// Drift reports whether applying spec would change nothing, and what of
// the unit differs from what was applied last: a replica gone, one nobody
// asked for, another release running beside. An autoscaled unit is sized
// here too: a new size is a change to apply, not drift.
func (r *Runtime) Drift(ctx context.Context, spec runtime.UnitSpec) (runtime.Drift, error) {
	if len(spec.Workloads) == 0 || spec.Workloads[0].Unit == nil {
		return runtime.Drift{}, fmt.Errorf("observing %s.%s: no workload: %w", spec.App, spec.Env, runtime.ErrInvalidUnit)
	}
	all, err := r.list(ctx, spec.App, spec.Env)
	if err != nil {
		return runtime.Drift{}, err
	}
	applied := r.wantedOf(spec.App, spec.Env)
	p := r.plan(spec, all)
	dr := runtime.Drift{Applied: p.empty()}
	if len(spec.Workloads) == 1 && len(spec.Keep) == 0 {
		rel := spec.Workloads[0].Release
		n, ok := applied[rel]
		if !ok {
			n = p.wanted[rel]
		}
		dr.Changes = driftOf(all, rel, n)
	}
	return dr, nil
}

// driftOf describes how the unit's replicas differ from n replicas of rel:
// missing ones, extra ones, replicas of another release; nil when none.
func driftOf(all map[string][]runtime.Status, rel string, n int) []string {
	var out []string
	have := map[int]bool{}
	for _, st := range all[rel] {
		if st.Ref.Index >= n {
			out = append(out, fmt.Sprintf("replica %s is not wanted (%d wanted)", st.Ref, n))
		}
		have[st.Ref.Index] = true
	}
	for i := range n {
		if !have[i] {
			out = append(out, fmt.Sprintf("replica %d of %s is missing", i, rel))
		}
	}
	for name, rs := range all {
		if name != rel {
			out = append(out, fmt.Sprintf("%d replica(s) of %s run beside %s", len(rs), name, rel))
		}
	}
	slices.Sort(out)
	return out
}

// Health reports each release of the unit, newest first, with its
// replicas. A release is Failed when one of its replicas is in a crash
// loop, or has not been ready for ProgressDeadline since it started.
func (r *Runtime) Health(ctx context.Context, app, env string) ([]runtime.WorkloadHealth, error) {
	all, err := r.list(ctx, app, env)
	if err != nil {
		return nil, err
	}
	wanted := r.wantedOf(app, env)
	now := r.clock.Now()
	out := make([]runtime.WorkloadHealth, 0, len(all))
	for rel, rs := range all {
		n, ok := wanted[rel]
		if !ok {
			n = len(rs)
		}
		h := runtime.WorkloadHealth{Name: rel, Release: rel, Desired: n, Updated: len(rs), Replicas: rs}
		var why []string
		failed := ""
		for _, st := range rs {
			switch {
			case st.Ref.Index >= n:
			case st.Ready:
				h.Ready++
			case st.State == runtime.CrashLoop && failed == "":
				failed = fmt.Sprintf("replica %s is crash-looping%s", st.Ref, crashTail(st))
			case st.State == runtime.Starting && now.Sub(st.StartedAt) >= r.cfg.ProgressDeadline && failed == "":
				failed = fmt.Sprintf("replica %s is not ready %s after it started", st.Ref, r.cfg.ProgressDeadline)
			default:
				why = append(why, fmt.Sprintf("%s is %s%s", st.Ref, st.State, exitWhy(st)))
			}
		}
		h.Available = h.Ready
		switch {
		case failed != "":
			h.State, h.Message = runtime.WorkloadFailed, failed
		case h.Ready >= n:
			h.State = runtime.WorkloadHealthy
		default:
			h.State = runtime.WorkloadProgressing
			h.Message = fmt.Sprintf("%d of %d replicas ready: %s", h.Ready, n, strings.Join(why, "; "))
		}
		out = append(out, h)
	}
	// Release names are r<id>: longer is newer, then by text.
	slices.SortFunc(out, func(a, b runtime.WorkloadHealth) int {
		return cmp.Or(cmp.Compare(len(b.Release), len(a.Release)), strings.Compare(b.Release, a.Release))
	})
	return out, nil
}

func crashTail(st runtime.Status) string {
	if st.LastExit == nil {
		return ""
	}
	tail := ": " + st.LastExit.Reason
	if st.LastExit.LogTail != "" {
		tail += "; log: " + lastLines(st.LastExit.LogTail, 3)
	}
	return tail
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

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Restore makes release the one that runs and serves, after a rollout
// failed: its ready replicas take every route of the unit at once, and the
// replicas of every other release leave and stop. With no replica of
// release ready, the routes stay as they are, and so do the replicas they
// send requests to.
func (r *Runtime) Restore(ctx context.Context, app, env, release string) error {
	all, err := r.list(ctx, app, env)
	if err != nil {
		return err
	}
	if len(all[release]) == 0 {
		return fmt.Errorf("restoring %s.%s to %s: no replica of it runs", app, env, release)
	}
	ready := slices.DeleteFunc(slices.Clone(all[release]), func(st runtime.Status) bool { return !st.Ready })
	var ports []string
	for _, st := range ready {
		for _, b := range st.Ports {
			if !slices.Contains(ports, b.Name) {
				ports = append(ports, b.Name)
			}
		}
	}
	primary := spec.PrimaryPort(ports)
	var routes []proxy.Route
	routed := map[string]bool{}
	for _, port := range ports {
		name := proxy.RouteName(app, env, port)
		if port == primary {
			name = proxy.RouteName(app, env, "")
		}
		cur, has := r.cfg.Router.Route(name)
		want := proxy.Route{Name: name, Health: proxy.HealthCheck{Interval: routeCheck}}
		if has {
			want.Health = cur.Health
		}
		want.Backends = backends(port, map[string][]runtime.Status{release: ready}, nil)
		for _, b := range want.Backends {
			routed[b.ID] = true
		}
		if !has || !slices.Equal(cur.Backends, want.Backends) {
			routes = append(routes, want)
		}
	}
	if err := r.route(ctx, routes); err != nil {
		return err
	}
	var stops []runtime.Status
	for rel, rs := range all {
		for _, st := range rs {
			if rel != release && (len(ready) > 0 || !r.routed(app, env, st)) {
				stops = append(stops, st)
			}
		}
	}
	r.stopAll(ctx, stops)
	r.remember(app, env, map[string]int{release: len(all[release])})
	return nil
}

// routed reports whether a route of the unit sends requests to st.
func (r *Runtime) routed(app, env string, st runtime.Status) bool {
	for _, b := range st.Ports {
		for _, name := range []string{proxy.RouteName(app, env, ""), proxy.RouteName(app, env, b.Name)} {
			if rt, ok := r.cfg.Router.Route(name); ok && slices.ContainsFunc(rt.Backends, func(be proxy.Backend) bool { return be.ID == st.Ref.String() }) {
				return true
			}
		}
	}
	return false
}

// Prune removes the unit: its routes first, drained, then its replicas.
// It returns how many replicas it stopped.
func (r *Runtime) Prune(ctx context.Context, app, env string) (int, error) {
	all, err := r.list(ctx, app, env)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, rt := range r.cfg.Router.Routes() {
		if rt.Name == proxy.RouteName(app, env, "") || strings.HasSuffix(rt.Name, "."+app+"."+env) {
			if err := r.cfg.Router.DeleteRoute(ctx, rt.Name); err != nil && !errors.Is(err, proxy.ErrNotDrained) {
				errs = append(errs, fmt.Errorf("deleting route %s: %w", rt.Name, err))
			}
		}
	}
	var stops []runtime.Status
	for _, rs := range all {
		stops = append(stops, rs...)
	}
	r.stopAll(ctx, stops)
	r.mu.Lock()
	delete(r.units, runtime.UnitKey{App: app, Env: env})
	r.mu.Unlock()
	return len(stops), errors.Join(errs...)
}

// Units lists the units that have replicas.
func (r *Runtime) Units(ctx context.Context) ([]runtime.UnitKey, error) {
	sts, err := r.cfg.Driver.List(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[runtime.UnitKey]bool{}
	var out []runtime.UnitKey
	for _, st := range sts {
		k := runtime.UnitKey{App: st.Ref.App, Env: st.Ref.Env}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// Stats returns what the proxy counted of release's requests on the unit's
// primary route ("": of every release): a canary's analysis compares two
// of them.
func (r *Runtime) Stats(app, env, release string) proxy.Snapshot {
	return r.cfg.Router.Stats(proxy.RouteName(app, env, ""), release)
}

// URL is where the proxy serves the unit's primary port, "" when it has
// none.
func (r *Runtime) URL(u *plan.Unit) string {
	if primaryPort(u) == "" {
		return ""
	}
	return "http://" + proxy.RouteName(u.App, u.Env, "") + ".localhost"
}

// list returns the unit's replicas by release, each release's by index.
func (r *Runtime) list(ctx context.Context, app, env string) (map[string][]runtime.Status, error) {
	sts, err := r.cfg.Driver.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing replicas: %w", err)
	}
	out := map[string][]runtime.Status{}
	for _, st := range sts {
		if st.Ref.App == app && st.Ref.Env == env {
			out[st.Ref.Release] = append(out[st.Ref.Release], st)
		}
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b runtime.Status) int { return a.Ref.Index - b.Ref.Index })
	}
	return out, nil
}

func (r *Runtime) stopAll(ctx context.Context, sts []runtime.Status) {
	var wg sync.WaitGroup
	for _, st := range sts {
		wg.Go(func() {
			if err := r.cfg.Driver.Stop(ctx, st.Handle); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				r.log.Warn("stopping replica", "replica", st.Ref.String(), "err", err)
			}
		})
	}
	wg.Wait()
}

func (r *Runtime) memoLocked(app, env string) *memo {
	k := runtime.UnitKey{App: app, Env: env}
	m := r.units[k]
	if m == nil {
		m = &memo{}
		r.units[k] = m
	}
	return m
}

func (r *Runtime) remember(app, env string, wanted map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.memoLocked(app, env).wanted = maps.Clone(wanted)
}

func (r *Runtime) wantedOf(app, env string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.memoLocked(app, env).wanted)
}
