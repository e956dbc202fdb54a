package proxyd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/socle-dev/socle/internal/proxy"
)

// ErrUnreachable means that the proxy process did not answer on its
// control socket (it is being restarted, say); nothing was changed that
// the client knows of.
var ErrUnreachable = errors.New("proxy process unreachable")

// Client drives a proxy process over its control socket. It implements
// what socle's replica runtime asks of a router, and is a
// prometheus.Gatherer of the proxy's metrics. It keeps a copy of the route
// table as the proxy last confirmed it, so that Route answers without a
// round trip and while the proxy is restarted (only socle changes routes,
// and the proxy saves its table before it answers a change, so a new proxy
// process restores the same table).
type Client struct {
	socket atomic.Pointer[string]
	http   *http.Client
	log    *slog.Logger

	mu     sync.Mutex
	routes map[string]proxy.Route
	pauses []proxy.Pause                // as the proxy last confirmed them
	stats  map[[2]string]proxy.Snapshot // the last answer, for when the proxy is away
}

var _ prometheus.Gatherer = (*Client)(nil)

// NewClient returns a client of the proxy process listening on socket.
func NewClient(socket string, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{log: log, routes: map[string]proxy.Route{}, stats: map[[2]string]proxy.Snapshot{}}
	c.socket.Store(&socket)
	var d net.Dialer
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", *c.socket.Load())
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	return c
}

// retarget points the client at another proxy process's socket.
func (c *Client) retarget(socket string) {
	c.socket.Store(&socket)
	c.http.CloseIdleConnections()
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// call sends a control request and decodes a 2xx answer's JSON into out.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	// The proxy bounds a change by ctx's deadline, sent along; the call
	// waits a little longer for its answer (ErrUnhealthy, ErrNotDrained)
	// but is cut at once if ctx is cancelled.
	callCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithDeadline(context.WithoutCancel(ctx), dl.Add(answerGrace))
		defer cancel()
		stop := context.AfterFunc(ctx, func() {
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				cancel()
			}
		})
		defer stop()
	}
	req, err := http.NewRequestWithContext(callCtx, method, "http://proxy"+path, body)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set(timeoutHeader, time.Until(dl).String())
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if callCtx.Err() != nil {
			return context.Cause(callCtx)
		}
		return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e errorBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		switch e.Code {
		case "unhealthy":
			return fmt.Errorf("%w (proxy process: %s)", proxy.ErrUnhealthy, e.Error)
		case "not_drained":
			return fmt.Errorf("%w (proxy process: %s)", proxy.ErrNotDrained, e.Error)
		case "not_found":
			return errNotFound
		}
		return fmt.Errorf("proxy process: %s", e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

var errNotFound = errors.New("not found")

const (
	// timeoutHeader carries the time a change may take, as a Go duration.
	timeoutHeader = "Socle-Timeout"
	// answerGrace is how long past its deadline a call waits for the
	// proxy's answer.
	answerGrace = 5 * time.Second
)

// Info asks the proxy process who it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	err := c.call(ctx, http.MethodGet, "/v1/info", nil, &i)
	return i, err
}

// Stop asks the proxy process to stop accepting, finish its requests in
// flight and exit; it returns once the process has the message.
func (c *Client) Stop(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/stop", nil, nil)
}

// SetRoute changes a route as [proxy.Proxy.SetRoute] does, in the proxy
// process; ctx bounds the health gate and the drain there.
func (c *Client) SetRoute(ctx context.Context, r proxy.Route) error {
	r.Backends = slices.Clone(r.Backends)
	if err := r.Validate(); err != nil {
		return err
	}
	err := c.call(ctx, http.MethodPut, "/v1/routes/"+url.PathEscape(r.Name), r, nil)
	c.settled(ctx, r.Name, err)
	return err
}

// DeleteRoute removes a route as [proxy.Proxy.DeleteRoute] does.
func (c *Client) DeleteRoute(ctx context.Context, name string) error {
	err := c.call(ctx, http.MethodDelete, "/v1/routes/"+url.PathEscape(name), nil, nil)
	c.settled(ctx, name, err)
	return err
}

// SetPauses sets the routes in maintenance mode as
// [proxy.Proxy.SetPauses] does, in the proxy process.
func (c *Client) SetPauses(ctx context.Context, pauses []proxy.Pause) error {
	if pauses == nil {
		pauses = []proxy.Pause{}
	}
	for _, pa := range pauses {
		if err := pa.Validate(); err != nil {
			return err
		}
	}
	if err := c.call(ctx, http.MethodPut, "/v1/pauses", pauses, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.pauses = slices.Clone(pauses)
	c.mu.Unlock()
	return nil
}

// Pauses returns the pauses the proxy process serves; while it does not
// answer, those it last confirmed.
func (c *Client) Pauses() []proxy.Pause {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ps []proxy.Pause
	if err := c.call(ctx, http.MethodGet, "/v1/pauses", nil, &ps); err == nil {
		c.mu.Lock()
		c.pauses = slices.Clone(ps)
		c.mu.Unlock()
		return ps
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pauses)
}

// settled updates the copy of route name after a change that returned
// err: the change is made unless it failed its health gate or never got
// there; when that is not known (the call broke off) the route is read
// back.
func (c *Client) settled(ctx context.Context, name string, err error) {
	if err != nil && errors.Is(err, proxy.ErrUnhealthy) {
		return
	}
	var rt proxy.Route
	rerr := c.call(context.WithoutCancel(ctx), http.MethodGet, "/v1/routes/"+url.PathEscape(name), nil, &rt)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case rerr == nil:
		c.routes[name] = rt
		c.forgetStatsLocked(name, rt.Backends)
	case errors.Is(rerr, errNotFound):
		delete(c.routes, name)
		c.forgetStatsLocked(name, nil)
	default:
		// Unknown: the next Refresh (at the proxy's restart) tells.
		c.log.Warn("proxy process: route state unknown after a change", "route", name, "err", rerr)
	}
}

// forgetStatsLocked drops the last stats kept of the versions that route
// no longer has backends of.
func (c *Client) forgetStatsLocked(route string, backends []proxy.Backend) {
	for k := range c.stats {
		if k[0] == route && (k[1] != "" || backends == nil) && !slices.ContainsFunc(backends, func(b proxy.Backend) bool { return b.Version == k[1] }) {
			delete(c.stats, k)
		}
	}
}

// Refresh reads the whole route table from the proxy process into the
// client's copy.
func (c *Client) Refresh(ctx context.Context) error {
	var rs []proxy.RouteStatus
	if err := c.call(ctx, http.MethodGet, "/v1/routes", nil, &rs); err != nil {
		return err
	}
	routes := make(map[string]proxy.Route, len(rs))
	for _, s := range rs {
		r := proxy.Route{Name: s.Name, Health: s.Health, Hosts: s.Hosts}
		for _, b := range s.Backends {
			r.Backends = append(r.Backends, b.Backend)
		}
		routes[s.Name] = r
	}
	c.mu.Lock()
	c.routes = routes
	c.mu.Unlock()
	return nil
}

// Route returns the route as the proxy process last confirmed it.
func (c *Client) Route(name string) (proxy.Route, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.routes[name]
	r.Backends = slices.Clone(r.Backends)
	return r, ok
}

// Routes returns the routes with their backends' health and requests in
// flight, as the proxy process serves them; while it does not answer, the
// routes it last confirmed, their backends unhealthy.
func (c *Client) Routes() []proxy.RouteStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rs []proxy.RouteStatus
	if err := c.call(ctx, http.MethodGet, "/v1/routes", nil, &rs); err == nil {
		return rs
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]proxy.RouteStatus, 0, len(c.routes))
	for _, name := range slices.Sorted(maps.Keys(c.routes)) {
		r := c.routes[name]
		s := proxy.RouteStatus{Name: name, Health: r.Health}
		for _, b := range r.Backends {
			s.Backends = append(s.Backends, proxy.BackendStatus{Backend: b})
		}
		out = append(out, s)
	}
	return out
}

// Stats returns what the proxy process counted (see [proxy.Proxy.Stats]);
// while it does not answer, its last answer for the same route and
// version. Counts start again from zero when the proxy process is
// restarted, which [proxy.Snapshot.Since] takes as no requests.
func (c *Client) Stats(route, version string) proxy.Snapshot {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := [2]string{route, version}
	var st Stats
	q := url.Values{"route": {route}, "version": {version}}
	if err := c.call(ctx, http.MethodGet, "/v1/stats?"+q.Encode(), nil, &st); err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.stats[key]
	}
	s := st.Counts
	s.InFlight, s.Backends = st.InFlight, st.Backends
	c.mu.Lock()
	c.stats[key] = s
	c.mu.Unlock()
	return s
}

// Gather scrapes the proxy process's /metrics: socle's /metrics relays
// them. While the proxy does not answer it gathers nothing (socle's own
// socle_proxy_up says so).
func (c *Client) Gather() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://proxy/metrics", nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("the proxy process's metrics: %w", err)
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		out = append(out, fams[name])
	}
	return out, nil
}
