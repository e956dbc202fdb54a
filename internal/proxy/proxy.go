package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var (
	// ErrUnhealthy means that a change was given up because a new backend did
	// not pass its health check before the context ended; the route was left
	// as it was.
	ErrUnhealthy = errors.New("backend not healthy")
	// ErrNotDrained means that a change was made but a removed backend still
	// had requests in flight when the context ended. They go on; the
	// backend's process should be stopped gracefully.
	ErrNotDrained = errors.New("backend not drained")
)

// Options configure a [Proxy]. The zero value is a working in-memory proxy
// for *.localhost.
type Options struct {
	// Domain is the domain every routed host is under: route "web.dev"
	// answers on web.dev.<Domain>. "localhost" when empty.
	Domain string
	// StateFile is the file the route table is saved to after each change
	// and restored from by [New]. Empty: the table lives in memory only.
	StateFile string
	// Registry receives the proxy's metrics; a new registry when nil.
	Registry *prometheus.Registry
	// Logger receives route changes and health transitions; nothing is
	// logged when nil.
	Logger *slog.Logger
	// DialTimeout bounds connecting to a backend, 2s when zero. A request
	// whose connection fails is tried on another backend.
	DialTimeout time.Duration
	// AccessLog receives a line per request (request_id, client, method,
	// host, path, status, duration, route, backend, attempts); none when
	// nil.
	AccessLog *slog.Logger
	// AccessLogEvery samples the access log: one request in every
	// AccessLogEvery is logged, and every answer of 500 or more (or cut
	// short). 0 or 1: every request.
	AccessLogEvery int
	// MaxRequestBody bounds a request body, in bytes: a larger one is
	// answered 413 (before a byte is read when its length is declared);
	// 0 is no limit.
	MaxRequestBody int64
	// TrustedProxies are the addresses of proxies in front of this one
	// (a load balancer): their X-Forwarded-For chain, -Proto and -Host
	// are passed on, with the proxy's address appended to the chain. Any
	// other client's are replaced by what the proxy sees.
	TrustedProxies []netip.Prefix
	// TLS configures HTTPS ([Proxy.ServeTLS]): certificates from files and
	// over ACME. nil: plain HTTP only.
	TLS *TLSOptions
}

// Proxy is socle's reverse proxy. Serve it on one listener with
// [Proxy.Serve] and tell it where to route with [Proxy.SetRoute].
//
// A change of a route follows kamal-proxy's deploy: the proxy builds the
// backends that are new, starts checking their health, waits until every one
// has passed a check (the health gate; if the context ends first it gives up
// with [ErrUnhealthy] and nothing changed), then swaps in the new backend set
// at once, under the route's lock, and saves the route table. Backends the
// change removed get no new requests from that moment; the change then drains
// them, waiting until their requests in flight have finished, so that when it
// returns their processes can be stopped. Backends the change keeps (same ID,
// address and version) keep their health and counters; a change of weights
// only is immediate. So a blue/green switch is one SetRoute with the new
// replicas, a rolling step is one SetRoute that adds one replica and removes
// another, and a canary step or rollback is one SetRoute that changes weights
// or drops the canary.
//
// Each request reads an immutable route table through an atomic pointer: the
// hot path takes no lock. It picks the next healthy backend in smooth
// weighted round-robin order, and is forwarded over a kept-alive HTTP/1.1
// connection to it; a request that could not reach its backend is retried on
// another (see [Proxy.Serve]).
type Proxy struct {
	domainSuffix string
	stateFile    string
	log          *slog.Logger
	registry     *prometheus.Registry
	metrics      *metrics
	dialer       *net.Dialer
	buffers      *sync.Pool // of *[32 << 10]byte
	checks       *checker
	edge         *edge
	tls          *tlsEdge // nil without Options.TLS
	h2Once       sync.Once
	h2rp         *httputil.ReverseProxy // HTTP/2 requests' forwarder

	ctx   context.Context // ends at Close: stops health checks
	close context.CancelFunc

	table atomic.Pointer[table]

	mu         sync.Mutex // held by writers: the table, what follows, the state file
	routeLocks map[string]*sync.Mutex
	draining   map[string][]*backend // removed backends with requests in flight, by route
	// refs counts the backends of each version of a route (live, draining
	// or waiting for the health gate); retired holds the counts of those
	// already gone, so that a version's Stats do not go down while it has
	// backends left.
	refs    map[versionKey]int
	retired map[versionKey]*Snapshot
}

type versionKey struct{ route, version string }

// New returns a proxy with the routes saved in opts.StateFile, if it exists.
// Restored backends are taken as healthy until a check or a request says
// otherwise, so that a restart of socle does not interrupt traffic. Call
// Close when done.
func New(opts Options) (*Proxy, error) {
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	p := &Proxy{
		domainSuffix: "." + strings.ToLower(opts.Domain),
		stateFile:    opts.StateFile,
		log:          opts.Logger,
		registry:     opts.Registry,
		dialer:       dialer,
		buffers:      newBufferPool(),
		edge:         newEdge(opts),
		routeLocks:   map[string]*sync.Mutex{},
		draining:     map[string][]*backend{},
		refs:         map[versionKey]int{},
		retired:      map[versionKey]*Snapshot{},
		checks: &checker{
			dialer: dialer,
			client: &http.Client{
				Transport: &http.Transport{
					DialContext:         dialer.DialContext,
					MaxIdleConnsPerHost: 1,
					IdleConnTimeout:     5 * time.Second, // so that connections to removed backends go
					DisableCompression:  true,
				},
				// A redirect is an answer, so a healthy one.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
		},
	}
	p.checks.log = p.logHealth
	if opts.TLS != nil {
		var err error
		if p.tls, err = newTLSEdge(p, opts.TLS); err != nil {
			return nil, err
		}
	}
	p.ctx, p.close = context.WithCancel(context.Background())
	var err error
	if p.metrics, err = newMetrics(opts.Registry, p); err != nil {
		p.close()
		return nil, err
	}
	p.table.Store(&table{routes: map[string]*routeEntry{}})
	if err := p.restore(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close stops health checks, closes idle connections to backends and takes
// the proxy's metrics out of the registry. Requests in flight are not
// interrupted (Serve stops with its own context). The route table stays in
// the state file.
func (p *Proxy) Close() error {
	p.close()
	p.metrics.unregister(p.registry)
	for _, e := range p.table.Load().routes {
		for _, b := range e.backends {
			b.pool.close()
		}
	}
	return nil
}

// MetricsHandler serves the proxy's registry in the Prometheus text format,
// for the server to mount on /metrics.
func (p *Proxy) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
}

// routeName returns the route named by a Host header: the host without port,
// trailing dot and the proxy's domain, lowercased.
func (p *Proxy) routeName(host string) (string, bool) {
	name, ok := p.nameOf(hostOf(host))
	return name, ok
}

// nameOf returns the route named by a host as hostOf returns it.
func (p *Proxy) nameOf(host string) (string, bool) {
	name, ok := strings.CutSuffix(host, p.domainSuffix)
	return name, ok && name != ""
}

// SetRoute makes r the route's desired state, creating the route if needed,
// as described on [Proxy]: new backends must pass a health check before
// anything changes ([ErrUnhealthy] otherwise), then the new set replaces the
// old at once, the table is saved, and SetRoute waits until the removed
// backends have no request in flight ([ErrNotDrained] if ctx ends first).
// Changes of one route are serialized; changes of different routes are not.
func (p *Proxy) SetRoute(ctx context.Context, r Route) error {
	r.Backends = slices.Clone(r.Backends)
	if err := r.validate(); err != nil {
		return err
	}
	return p.change(ctx, r.Name, func(*Route) (*Route, error) { return &r, nil })
}

// DeleteRoute removes a route, and waits until its backends have drained
// ([ErrNotDrained] if ctx ends first). Its host then answers 404.
func (p *Proxy) DeleteRoute(ctx context.Context, name string) error {
	return p.change(ctx, name, func(*Route) (*Route, error) { return nil, nil })
}

// Drain removes backend id from route if it is still there, and waits until
// every backend of that ID removed from the route (now or by an earlier
// change that returned [ErrNotDrained]) has no request in flight.
func (p *Proxy) Drain(ctx context.Context, route, id string) error {
	err := p.change(ctx, route, func(cur *Route) (*Route, error) {
		if cur == nil {
			return nil, nil
		}
		next := *cur
		next.Backends = slices.DeleteFunc(slices.Clone(cur.Backends), func(b Backend) bool { return b.ID == id })
		return &next, nil
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	var waiting []*backend
	for _, b := range p.draining[route] {
		if b.ID == id {
			waiting = append(waiting, b)
		}
	}
	p.mu.Unlock()
	return waitDrained(ctx, waiting)
}

// change applies edit to the route's current configuration (nil when there
// is none; a nil result deletes the route), following the lifecycle described
// on Proxy.
func (p *Proxy) change(ctx context.Context, name string, edit func(cur *Route) (*Route, error)) error {
	unlock := p.lockRoute(name)
	cur := p.table.Load().routes[name]
	var curCfg *Route
	if cur != nil {
		c := cur.config
		curCfg = &c
	}
	want, err := edit(curCfg)
	if err != nil || (want == nil && cur == nil) || (want != nil && cur != nil && sameRoute(*want, cur.config)) {
		unlock()
		return err
	}

	// Build: reuse the backends the change keeps, create the others and
	// start checking them.
	existing := map[string]*backend{}
	if cur != nil {
		for _, b := range cur.backends {
			existing[b.key()] = b
		}
	}
	var next, fresh []*backend
	if want != nil {
		want.Health = want.Health.withDefaults()
		for _, be := range want.Backends {
			b, ok := existing[be.key()]
			if ok {
				delete(existing, be.key())
			} else {
				b = p.newBackend(name, be, false)
				fresh = append(fresh, b)
				p.startChecks(b, want.Health)
			}
			next = append(next, b)
		}
	}

	// Wait until the new backends are healthy.
	if err := waitHealthy(ctx, fresh); err != nil {
		p.mu.Lock()
		for _, b := range fresh {
			b.stopChecks()
			p.forgetLocked(b)
		}
		p.mu.Unlock()
		unlock()
		return fmt.Errorf("route %s: %w", name, err)
	}

	// Swap.
	removed := slices.Collect(maps.Values(existing))
	p.mu.Lock()
	routes := maps.Clone(p.table.Load().routes)
	if want == nil {
		delete(routes, name)
	} else {
		if cur != nil && want.Health != cur.config.Health {
			for _, b := range next {
				if !slices.Contains(fresh, b) {
					p.startChecks(b, want.Health)
				}
			}
		}
		routes[name] = newRouteEntry(*want, next)
	}
	p.table.Store(p.newTable(routes, p.table.Load().pauses))
	for _, b := range removed {
		b.stopChecks()
		b.drain()
		p.draining[name] = append(p.draining[name], b)
		go p.retire(b)
	}
	saveErr := p.saveLocked()
	p.mu.Unlock()
	unlock()
	p.log.Info("route changed", "route", name, "backends", len(next), "added", len(fresh), "removed", len(removed))

	// Drain. Forget the drained backends before returning, so that the
	// caller sees neither their metric series nor their version's counters.
	drainErr := waitDrained(ctx, removed)
	if drainErr == nil {
		for _, b := range removed {
			p.forgetDrained(b)
		}
	}
	return errors.Join(saveErr, drainErr)
}

// sameRoute reports whether applying want to a route now configured as cur
// changes nothing.
func sameRoute(want, cur Route) bool {
	return want.Health.withDefaults() == cur.Health && slices.Equal(want.Backends, cur.Backends) && slices.Equal(want.Hosts, cur.Hosts)
}

func (p *Proxy) lockRoute(name string) (unlock func()) {
	p.mu.Lock()
	l := p.routeLocks[name]
	if l == nil {
		l = new(sync.Mutex)
		p.routeLocks[name] = l
	}
	p.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// newBackend creates the live side of be; restored backends start healthy.
func (p *Proxy) newBackend(route string, be Backend, healthy bool) *backend {
	b := &backend{
		Backend:    be,
		route:      route,
		ready:      make(chan struct{}),
		quiet:      make(chan struct{}),
		stopChecks: func() {},
	}
	if healthy {
		b.healthy.Store(true)
		b.once.Do(func() { close(b.ready) })
	}
	p.mu.Lock()
	p.refs[versionKey{route, be.Version}]++
	p.mu.Unlock()
	return b
}

// startChecks (re)starts the active health check of b with hc.
func (p *Proxy) startChecks(b *backend, hc HealthCheck) {
	b.stopChecks()
	ctx, cancel := context.WithCancel(p.ctx)
	b.stopChecks = cancel
	go p.checks.run(ctx, b, hc)
}

func (p *Proxy) logHealth(b *backend, healthy bool, reason string) {
	if healthy {
		p.log.Info("backend healthy", "route", b.route, "backend", b.ID, "version", b.Version)
		return
	}
	p.log.Warn("backend unhealthy", "route", b.route, "backend", b.ID, "version", b.Version, "reason", reason)
}

// retire forgets b once it has drained (or the proxy is closed), if the
// change that removed it has not done so already.
func (p *Proxy) retire(b *backend) {
	select {
	case <-b.quiet:
	case <-p.ctx.Done():
	}
	p.forgetDrained(b)
}

// forgetDrained removes b from the draining backends and forgets it; only the
// first call for a backend does anything.
func (p *Proxy) forgetDrained(b *backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.draining[b.route])
	p.draining[b.route] = slices.DeleteFunc(p.draining[b.route], func(d *backend) bool { return d == b })
	if len(p.draining[b.route]) == n {
		return
	}
	if len(p.draining[b.route]) == 0 {
		delete(p.draining, b.route)
	}
	p.forgetLocked(b)
}

// forgetLocked drops b, which serves no more: its counts go to its version's
// retired counts, or away with the version's last backend.
func (p *Proxy) forgetLocked(b *backend) {
	k := versionKey{b.route, b.Version}
	if p.refs[k]--; p.refs[k] <= 0 {
		delete(p.refs, k)
		delete(p.retired, k)
		return
	}
	r := p.retired[k]
	if r == nil {
		r = new(Snapshot)
		p.retired[k] = r
	}
	b.counters.addTo(r)
}

func waitHealthy(ctx context.Context, backends []*backend) error {
	for _, b := range backends {
		select {
		case <-b.ready:
		case <-ctx.Done():
			reason := "no check finished"
			if r := b.lastErr.Load(); r != nil {
				reason = *r
			}
			return fmt.Errorf("%w: %s (%s): %s: %w", ErrUnhealthy, b.ID, b.Addr, reason, context.Cause(ctx))
		}
	}
	return nil
}

func waitDrained(ctx context.Context, backends []*backend) error {
	for _, b := range backends {
		select {
		case <-b.quiet:
		case <-ctx.Done():
			return fmt.Errorf("%w: %s (%s): %d requests in flight: %w", ErrNotDrained, b.ID, b.Addr, b.inFlight.Load(), context.Cause(ctx))
		}
	}
	return nil
}

// Stats returns what the proxy has counted for the backends of version on
// route, or for all of the route's backends when version is empty. The
// rollout compares two versions' error rate and p95 with it; the autoscaler
// reads in-flight requests per replica.
func (p *Proxy) Stats(route, version string) Snapshot {
	s := Snapshot{hist: make([]uint64, histBuckets)}
	p.mu.Lock()
	defer p.mu.Unlock()
	match := func(v string) bool { return version == "" || v == version }
	for k, r := range p.retired {
		if k.route == route && match(k.version) {
			s.add(*r)
		}
	}
	count := func(b *backend) {
		if match(b.Version) {
			b.counters.addTo(&s)
			s.InFlight += b.inFlight.Load()
		}
	}
	if e := p.table.Load().routes[route]; e != nil {
		for _, b := range e.backends {
			count(b)
			if match(b.Version) {
				s.Backends++
			}
		}
	}
	for _, b := range p.draining[route] {
		count(b)
	}
	s.P95 = s.Quantile(0.95)
	return s
}

// eachBackend calls f for every backend routed or draining.
func (p *Proxy) eachBackend(f func(*backend)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.table.Load().routes {
		for _, b := range e.backends {
			f(b)
		}
	}
	for _, bs := range p.draining {
		for _, b := range bs {
			f(b)
		}
	}
}

// BackendStatus is one backend of a route as the proxy sees it now.
type BackendStatus struct {
	Backend
	// Healthy is the result of the last health check, or false after a
	// failed connection on live traffic.
	Healthy bool
	// InFlight is the number of requests on the backend now.
	InFlight int64
}

// RouteStatus is a route as the proxy serves it now.
type RouteStatus struct {
	Name     string
	Health   HealthCheck
	Hosts    []HostRoute `json:",omitempty"`
	Backends []BackendStatus
}

// Route returns the configuration of the route name as it is served now,
// and whether there is one.
func (p *Proxy) Route(name string) (Route, bool) {
	e := p.table.Load().routes[name]
	if e == nil {
		return Route{}, false
	}
	r := e.config
	r.Backends = slices.Clone(r.Backends)
	r.Hosts = slices.Clone(r.Hosts)
	return r, true
}

// Routes returns the routes served now, sorted by name.
func (p *Proxy) Routes() []RouteStatus {
	t := p.table.Load()
	out := make([]RouteStatus, 0, len(t.routes))
	for _, name := range slices.Sorted(maps.Keys(t.routes)) {
		e := t.routes[name]
		rs := RouteStatus{Name: name, Health: e.config.Health, Hosts: slices.Clone(e.config.Hosts)}
		for i, b := range e.backends {
			rs.Backends = append(rs.Backends, BackendStatus{Backend: e.config.Backends[i], Healthy: b.healthy.Load(), InFlight: b.inFlight.Load()})
		}
		out = append(out, rs)
	}
	return out
}
