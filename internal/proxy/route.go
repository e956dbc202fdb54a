package proxy

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Route is the desired state of one route: the backends that serve a host and
// how the proxy checks their health. It is what [Proxy.SetRoute] takes and
// what the state file holds.
type Route struct {
	// Name is the host without the proxy's domain: "<app>.<env>" for an
	// app's primary port, "<port>.<app>.<env>" for another named port
	// ([RouteName] builds it). Lowercase DNS labels.
	Name string `json:"name"`
	// Backends serve the route. Their order does not matter; their IDs are
	// unique within the route.
	Backends []Backend `json:"backends"`
	// Health says how the proxy checks each backend.
	Health HealthCheck `json:"health"`
	// Hosts are more hosts and path prefixes the route serves (see
	// [HostRoute]); it serves its own host in any case.
	Hosts []HostRoute `json:"hosts,omitempty"`
}

// Backend is one replica behind a route.
type Backend struct {
	// ID names the backend within its route and stays the same while the
	// replica lives (its replica name, say), so that changing only weights
	// keeps its health, in-flight requests and counters.
	ID string `json:"id"`
	// Addr is the replica's host:port, usually on loopback.
	Addr string `json:"addr"`
	// Weight is the backend's relative share of new requests, 0 to 1000. A
	// backend of weight 0 is kept and health-checked but gets no new
	// requests. Weights are per backend: a canary of one replica taking 10%
	// beside three old replicas is weight 10 against 30 each.
	Weight int `json:"weight"`
	// Version is the release the backend serves; metrics and [Proxy.Stats]
	// group backends by it.
	Version string `json:"version"`
}

// HealthCheck says how the proxy checks a route's backends, actively and on
// its own, whatever the runtime also does.
type HealthCheck struct {
	// Path is the HTTP path probed with GET, normally the path of the
	// workload's readiness probe; a 2xx or 3xx answer is healthy. Empty: the
	// check is a TCP connect to the backend's address.
	Path string `json:"path,omitempty"`
	// Interval is the time between two checks of a healthy backend, 1s by
	// default. A backend that is not (or no longer) healthy is checked every
	// 100ms (or Interval if shorter), so that it joins quickly.
	Interval time.Duration `json:"interval,omitempty"`
	// Timeout bounds one check, 1s by default.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Failures is how many checks in a row must fail before a healthy
	// backend is taken out of rotation, 2 by default. One success brings it
	// back. A refused connection on live traffic takes it out at once.
	Failures int `json:"failures,omitempty"`
}

const (
	maxWeight   = 1000
	maxBackends = 1024
	// unhealthyInterval is the check period of a backend that is waiting to
	// become healthy; short so that a deploy's health gate opens quickly.
	unhealthyInterval = 100 * time.Millisecond
)

// withDefaults returns h with its zero fields set to their defaults.
func (h HealthCheck) withDefaults() HealthCheck {
	if h.Interval <= 0 {
		h.Interval = time.Second
	}
	if h.Timeout <= 0 {
		h.Timeout = time.Second
	}
	if h.Failures <= 0 {
		h.Failures = 2
	}
	return h
}

// RouteName returns the name of the route that serves a port of app in env:
// "<app>.<env>" when port is empty, for the app's primary port (see
// [spec.PrimaryPort]), reached on <app>.<env>.localhost; "<port>.<app>.<env>" for
// any other named port, reached on <port>.<app>.<env>.localhost.
func RouteName(app, env, port string) string {
	if port == "" {
		return app + "." + env
	}
	return port + "." + app + "." + env
}

// Validate reports the first problem with r, naming the field: what
// [Proxy.SetRoute] would refuse it for.
func (r Route) Validate() error {
	return r.validate()
}

// validate reports the first problem with r, naming the field.
func (r *Route) validate() error {
	if err := validRouteName(r.Name); err != nil {
		return fmt.Errorf("route name %q: %w", r.Name, err)
	}
	if r.Health.Path != "" && !strings.HasPrefix(r.Health.Path, "/") {
		return fmt.Errorf("route %s: health path %q must start with /", r.Name, r.Health.Path)
	}
	if len(r.Backends) > maxBackends {
		return fmt.Errorf("route %s: %d backends, at most %d", r.Name, len(r.Backends), maxBackends)
	}
	if len(r.Hosts) > maxBackends {
		return fmt.Errorf("route %s: %d hosts, at most %d", r.Name, len(r.Hosts), maxBackends)
	}
	for _, h := range r.Hosts {
		if err := h.validate(); err != nil {
			return fmt.Errorf("route %s: %w", r.Name, err)
		}
	}
	seen := make(map[string]bool, len(r.Backends))
	for _, b := range r.Backends {
		switch {
		case b.ID == "":
			return fmt.Errorf("route %s: backend %s: empty id", r.Name, b.Addr)
		case seen[b.ID]:
			return fmt.Errorf("route %s: backend id %q appears twice", r.Name, b.ID)
		case b.Weight < 0 || b.Weight > maxWeight:
			return fmt.Errorf("route %s: backend %s: weight %d, want 0 to %d", r.Name, b.ID, b.Weight, maxWeight)
		}
		seen[b.ID] = true
		host, port, err := net.SplitHostPort(b.Addr)
		if err == nil && host == "" {
			err = errors.New("no host")
		}
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return fmt.Errorf("route %s: backend %s: address %q: want host:port: %w", r.Name, b.ID, b.Addr, err)
		}
	}
	return nil
}

// validRouteName accepts one to three lowercase DNS labels separated by dots.
func validRouteName(name string) error {
	labels := strings.Split(name, ".")
	if len(labels) > 3 {
		return errors.New("want <app>.<env> or <port>.<app>.<env>")
	}
	for _, l := range labels {
		if err := validLabel(l); err != nil {
			return err
		}
	}
	return nil
}

// validLabel accepts a lowercase DNS label.
func validLabel(l string) error {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q: want 1 to 63 of a-z, 0-9 and inner -", l)
	}
	for _, c := range []byte(l) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("label %q: want 1 to 63 of a-z, 0-9 and inner -", l)
		}
	}
	return nil
}

// table is the immutable routing state read by every request: a new table
// replaces the old one atomically at each change.
type table struct {
	routes map[string]*routeEntry
	// pauses are the routes in maintenance mode, by Pause.Scope.
	pauses map[string]*pausePage
	// hosts index the routes' Hosts by host name; nil when none has any.
	hosts map[string][]prefixRoute
}

// routeEntry is one route as the hot path sees it.
type routeEntry struct {
	config   Route      // a private copy, for status and the state file
	backends []*backend // parallel to config.Backends
	schedule []uint16   // indexes into backends, in smooth weighted round-robin order
	next     atomic.Uint32
}

func newRouteEntry(r Route, backends []*backend) *routeEntry {
	weights := make([]int, len(r.Backends))
	for i, b := range r.Backends {
		weights[i] = b.Weight
	}
	return &routeEntry{config: r, backends: backends, schedule: smoothWRR(weights)}
}

// pick returns the next backend in weighted order that is healthy and not in
// tried. When none is healthy it returns the first one not tried, so that a
// route whose checks are all failing still tries its backends rather than
// refusing every request; nil when every backend has been tried.
func (e *routeEntry) pick(tried []*backend) *backend {
	n := uint32(len(e.schedule))
	if n == 0 {
		return nil
	}
	start := e.next.Add(1)
	var fallback *backend
	for i := range n {
		b := e.backends[e.schedule[(start+i)%n]]
		if slices.Contains(tried, b) {
			continue
		}
		if b.healthy.Load() {
			return b
		}
		if fallback == nil {
			fallback = b
		}
	}
	return fallback
}

// smoothWRR expands weights into one cycle of smooth weighted round-robin
// (nginx's algorithm): each index appears weight/g times (g the weights'
// greatest common divisor), spread out rather than in runs. Walking the cycle
// with an atomic counter then needs no lock.
func smoothWRR(weights []int) []uint16 {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	if g == 0 {
		return nil
	}
	total := 0
	for _, w := range weights {
		total += w / g
	}
	current := make([]int, len(weights))
	cycle := make([]uint16, 0, total)
	for range total {
		best := -1
		for i, w := range weights {
			if w == 0 {
				continue
			}
			current[i] += w / g
			if best < 0 || current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		cycle = append(cycle, uint16(best))
	}
	return cycle
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
