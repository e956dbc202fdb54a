package replicas

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// routeCheck is how often the proxy checks a backend of socle's routes.
const routeCheck = 500 * time.Millisecond

// work is what applying a spec takes now: replicas to start, routes to
// set, then replicas to stop (once no route sends them requests).
type work struct {
	starts []start
	routes []proxy.Route
	stops  []runtime.Status
	// wanted is how many replicas each release of the unit should have.
	wanted map[string]int
}

// start is replica index of the spec's workload-th workload.
type start struct{ workload, index int }

func (w work) empty() bool { return len(w.starts) == 0 && len(w.routes) == 0 && len(w.stops) == 0 }

// plan computes what applying spec takes, given the unit's replicas by
// release (all) and the routes as the proxy serves them.
//
// Each workload should have its replicas (Workload.Replicas, or what the
// autoscaler says); a release spec keeps runs as it is; any other stops.
// A rolling workload (not Dedicated) applied with a release to keep
// replaces that release as a Deployment would: it starts maxSurge replicas
// more than it has ready (at least one), and the kept release keeps as
// many as the new one lacks, so that as many as the unit needs serve
// throughout. Only ready replicas are routed, by spec.Weight between the
// workload and the first kept release, to spec.Serve alone, or else to
// every release that runs; a route left with no backend stays as it is,
// and the replicas it still sends requests to are not stopped.
func (r *Runtime) plan(spec runtime.UnitSpec, all map[string][]runtime.Status) work {
	w := work{wanted: map[string]int{}}
	stays := map[string][]runtime.Status{} // the replicas that keep running, by release
	mine := map[string]bool{}
	replaced, readyNew := "", 0
	for i, wl := range spec.Workloads {
		mine[wl.Release] = true
		have := all[wl.Release]
		n := wl.Replicas
		if n <= 0 {
			n = r.size(wl.Unit, all)
		}
		w.wanted[wl.Release] = n
		upTo := n
		if i == 0 && !wl.Dedicated && len(spec.Keep) > 0 && spec.Keep[0] != wl.Release && len(all[spec.Keep[0]]) > 0 {
			replaced, readyNew = spec.Keep[0], countReady(have, n)
			upTo = min(n, readyNew+surge(wl.Unit))
		}
		exists := map[int]bool{}
		for _, st := range have {
			if st.Ref.Index >= n {
				w.stops = append(w.stops, st)
				continue
			}
			exists[st.Ref.Index] = true
			stays[wl.Release] = append(stays[wl.Release], st)
		}
		for idx := range upTo {
			if !exists[idx] {
				w.starts = append(w.starts, start{workload: i, index: idx})
			}
		}
	}
	for _, k := range spec.Keep {
		if mine[k] {
			continue
		}
		mine[k] = true
		keep := len(all[k])
		if k == replaced {
			keep = max(w.wanted[spec.Workloads[0].Release]-readyNew, 0)
		}
		for _, st := range all[k] {
			if k == replaced && st.Ref.Index >= keep {
				w.stops = append(w.stops, st)
			} else {
				stays[k] = append(stays[k], st)
			}
		}
		w.wanted[k] = len(stays[k])
	}
	for rel, rs := range all {
		if !mine[rel] {
			w.stops = append(w.stops, rs...)
		}
	}

	// Route the ready replicas; what stays routed cannot stop yet.
	sets, shares := serving(spec, stays)
	d := spec.Workloads[0].Unit
	names := routeNames(d)
	routed := map[string]bool{}
	for _, port := range slices.Sorted(maps.Keys(names)) {
		want := proxy.Route{Name: names[port], Health: proxy.HealthCheck{Interval: routeCheck}}
		if port == primaryPort(d) {
			want.Health.Path = readinessPath(d)
		}
		want.Backends = backends(port, sets, shares)
		want.Hosts = hostRoutes(d, port)
		cur, has := r.cfg.Router.Route(want.Name)
		if len(want.Backends) == 0 {
			want = cur
		} else if !has || cur.Health.Path != want.Health.Path || cur.Health.Interval != want.Health.Interval || !slices.Equal(cur.Backends, want.Backends) || !slices.Equal(cur.Hosts, want.Hosts) {
			w.routes = append(w.routes, want)
		}
		for _, b := range want.Backends {
			routed[b.ID] = true
		}
	}
	w.stops = slices.DeleteFunc(w.stops, func(st runtime.Status) bool { return routed[st.Ref.String()] })
	return w
}

// serving returns the replicas to route, by release, and each release's
// share of requests (nil: every replica weighs the same).
func serving(spec runtime.UnitSpec, stays map[string][]runtime.Status) (map[string][]runtime.Status, map[string]int) {
	ready := func(rel string) []runtime.Status {
		return slices.DeleteFunc(slices.Clone(stays[rel]), func(st runtime.Status) bool { return !st.Ready })
	}
	sets := map[string][]runtime.Status{}
	switch {
	case spec.Weight > 0 && len(spec.Keep) > 0:
		nw, old := spec.Workloads[0].Release, spec.Keep[0]
		a, b := ready(nw), ready(old)
		if len(a) > 0 {
			sets[nw] = a
		}
		if len(b) > 0 {
			sets[old] = b
		}
		if len(a) > 0 && len(b) > 0 {
			return sets, map[string]int{nw: spec.Weight, old: 100 - spec.Weight}
		}
	case spec.Serve != "":
		if rs := ready(spec.Serve); len(rs) > 0 {
			sets[spec.Serve] = rs
		}
	default:
		for rel := range stays {
			if rs := ready(rel); len(rs) > 0 {
				sets[rel] = rs
			}
		}
	}
	return sets, nil
}

// backends are the backends of the replicas of sets that serve port.
func backends(port string, sets map[string][]runtime.Status, shares map[string]int) []proxy.Backend {
	weights := backendWeights(sets, shares)
	var out []proxy.Backend
	for rel, rs := range sets {
		for _, st := range rs {
			for _, b := range st.Ports {
				if b.Name == port && b.Address != "" {
					out = append(out, proxy.Backend{ID: st.Ref.String(), Addr: b.Address, Weight: weights[rel], Version: rel})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b proxy.Backend) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// size is how many replicas an autoscaled unit should run now.
func (r *Runtime) size(d *plan.Unit, all map[string][]runtime.Status) int {
	running := 0
	for _, rs := range all {
		running = max(running, len(rs))
	}
	measured := primaryPort(d) != "" && d.Replicas.Max > d.Replicas.Min
	var load float64
	if measured {
		load = float64(r.cfg.Router.Stats(proxy.RouteName(d.App, d.Env, ""), "").InFlight)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.memoLocked(d.App, d.Env).scale.want(r.cfg.Scale, d, running, load, measured, r.clock.Now())
}

// surge is how many replicas a rolling release starts beyond those ready:
// maxSurge, or maxUnavailable if larger, at least one.
func surge(d *plan.Unit) int {
	n := 1
	if s := d.Rollout.MaxSurge; s != nil && *s > 0 {
		n = *s
	}
	if u := d.Rollout.MaxUnavailable; u != nil && *u > n {
		n = *u
	}
	return n
}

func countReady(rs []runtime.Status, n int) int {
	k := 0
	for _, st := range rs {
		if st.Ref.Index < n && st.Ready {
			k++
		}
	}
	return k
}

// hostRoutes returns the hosts and path prefixes that the unit's routes
// (socle.yaml routes) give its port.
func hostRoutes(d *plan.Unit, port string) []proxy.HostRoute {
	var out []proxy.HostRoute
	for _, rt := range d.Routes {
		if cmp.Or(rt.Port, primaryPort(d)) == port {
			out = append(out, proxy.HostRoute{Host: rt.Host, PathPrefix: rt.Path, Strip: rt.Strip})
		}
	}
	return out
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

// readinessPath is the HTTP path of the readiness probe of the container
// the replicas run, which the proxy checks too.
func readinessPath(d *plan.Unit) string {
	names := slices.Sorted(maps.Keys(d.Containers))
	if len(names) == 0 {
		return ""
	}
	if p := d.Containers[names[0]].ReadinessProbe; p != nil && p.HttpGet != nil {
		return p.HttpGet.Path
	}
	return ""
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
