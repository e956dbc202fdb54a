package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// app is a real loopback backend that answers its name and counts hits.
type app struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	healthy atomic.Bool
}

// startServer starts a backend answering name; handler, if set, answers
// instead. Its /healthz answers 200 while healthy (from the start).
func startServer(t *testing.T, name string, handler http.HandlerFunc) *app {
	t.Helper()
	s := &app{name: name}
	s.healthy.Store(true)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if !s.healthy.Load() {
				http.Error(w, "starting", http.StatusServiceUnavailable)
			}
			return
		}
		s.hits.Add(1)
		if handler != nil {
			handler(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *app) addr() string { return s.Listener.Addr().String() }

func (s *app) backend(weight int, version string) Backend {
	return Backend{ID: s.name, Addr: s.addr(), Weight: weight, Version: version}
}

// serve serves p on a loopback listener until the test ends, and returns its
// address.
func serve(t *testing.T, p *Proxy) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// front serves p and returns a client that sends every request to it
// whatever the URL's host.
func front(t *testing.T, p *Proxy) *http.Client {
	t.Helper()
	addr := serve(t, p)
	dialer := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 100,
	}}
}

func newProxy(t *testing.T, opts Options) *Proxy {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func setRoute(t *testing.T, p *Proxy, name string, backends ...Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.SetRoute(ctx, Route{Name: name, Backends: backends, Health: HealthCheck{Path: "/healthz"}}); err != nil {
		t.Fatal(err)
	}
}

// get fetches url and returns the status and body; a transport error fails
// the test (without stopping it: get runs in goroutines too).
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return resp.StatusCode, string(body)
}

func TestRoutingByHostAndPort(t *testing.T) {
	web := startServer(t, "web", nil)
	admin := startServer(t, "web-admin", nil)
	api := startServer(t, "api", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, RouteName("web", "dev", ""), web.backend(1, "v1"))
	setRoute(t, p, RouteName("web", "dev", "admin"), admin.backend(1, "v1"))
	setRoute(t, p, RouteName("api", "prod", ""), api.backend(1, "v1"))
	c := front(t, p)

	tests := []struct {
		host   string
		status int
		body   string
	}{
		{"web.dev.localhost", 200, "web"},
		{"web.dev.localhost:7080", 200, "web"},
		{"WEB.Dev.LocalHost.", 200, "web"},
		{"admin.web.dev.localhost:7080", 200, "web-admin"},
		{"api.prod.localhost", 200, "api"},
		{"api.dev.localhost", 404, `socle: no app is served on "api.dev.localhost"` + "\n"},
		{"localhost:7080", 404, `socle: no app is served on "localhost:7080"` + "\n"},
		{"web.dev.example.com", 404, `socle: no app is served on "web.dev.example.com"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			status, body := get(t, c, "http://"+tt.host+"/")
			if status != tt.status || body != tt.body {
				t.Errorf("got %d %q, want %d %q", status, body, tt.status, tt.body)
			}
		})
	}
}

func TestRouteNames(t *testing.T) {
	if got := RouteName("web", "dev", ""); got != "web.dev" {
		t.Errorf("primary: %q", got)
	}
	if got := RouteName("web", "dev", "admin"); got != "admin.web.dev" {
		t.Errorf("named: %q", got)
	}
}

func TestInvalidRoutes(t *testing.T) {
	p := newProxy(t, Options{})
	ok := Backend{ID: "a", Addr: "127.0.0.1:1", Weight: 1}
	for name, r := range map[string]Route{
		"upper case":    {Name: "Web.dev"},
		"four labels":   {Name: "a.b.c.d"},
		"empty label":   {Name: "web..dev"},
		"no id":         {Name: "web.dev", Backends: []Backend{{Addr: "127.0.0.1:1"}}},
		"duplicate id":  {Name: "web.dev", Backends: []Backend{ok, ok}},
		"bad address":   {Name: "web.dev", Backends: []Backend{{ID: "a", Addr: "localhost"}}},
		"no host":       {Name: "web.dev", Backends: []Backend{{ID: "a", Addr: ":80"}}},
		"weight":        {Name: "web.dev", Backends: []Backend{{ID: "a", Addr: "127.0.0.1:1", Weight: -1}}},
		"relative path": {Name: "web.dev", Backends: []Backend{ok}, Health: HealthCheck{Path: "healthz"}},
	} {
		if err := p.SetRoute(t.Context(), r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWeights(t *testing.T) {
	a := startServer(t, "a", nil)
	b := startServer(t, "b", nil)
	c := startServer(t, "c", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", a.backend(1, "v1"), b.backend(2, "v1"), c.backend(7, "v2"))
	client := front(t, p)

	const n = 2000
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range n / 10 {
				if status, _ := get(t, client, "http://web.dev.localhost/"); status != 200 {
					t.Errorf("status %d", status)
				}
			}
		})
	}
	wg.Wait()
	for _, tt := range []struct {
		s     *app
		share float64
	}{{a, 0.1}, {b, 0.2}, {c, 0.7}} {
		got := float64(tt.s.hits.Load()) / n
		if got < tt.share-0.02 || got > tt.share+0.02 {
			t.Errorf("%s got %.3f of requests, want %.2f±0.02", tt.s.name, got, tt.share)
		}
	}
	// Weight 0 takes no new requests.
	setRoute(t, p, "web.dev", a.backend(1, "v1"), b.backend(0, "v1"))
	before := b.hits.Load()
	for range 50 {
		get(t, client, "http://web.dev.localhost/")
	}
	if b.hits.Load() != before {
		t.Errorf("backend of weight 0 got %d requests", b.hits.Load()-before)
	}
}

func TestSmoothWRR(t *testing.T) {
	got := smoothWRR([]int{50, 10, 0, 20})
	// gcd 10: a cycle of 8 (5, 1 and 2 of each), with 0 spread out rather
	// than in one run, as nginx does it.
	want := []uint16{0, 3, 0, 0, 1, 0, 3, 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("smoothWRR = %v, want %v", got, want)
	}
	if smoothWRR([]int{0, 0}) != nil {
		t.Error("all weights 0: want no cycle")
	}
}

func TestHealthGate(t *testing.T) {
	blue := startServer(t, "blue", nil)
	green := startServer(t, "green", nil)
	green.healthy.Store(false)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", blue.backend(1, "v1"))
	c := front(t, p)

	// A gate that cannot open gives up and changes nothing.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err := p.SetRoute(ctx, Route{Name: "web.dev", Backends: []Backend{green.backend(1, "v2")}, Health: HealthCheck{Path: "/healthz"}})
	cancel()
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("SetRoute with an unhealthy backend: %v, want ErrUnhealthy naming the 503", err)
	}
	if _, body := get(t, c, "http://web.dev.localhost/"); body != "blue" {
		t.Fatalf("after a failed gate: %q", body)
	}

	// While the gate waits, blue serves everything; once green is healthy it
	// takes over.
	done := make(chan error, 1)
	go func() {
		done <- p.SetRoute(t.Context(), Route{Name: "web.dev", Backends: []Backend{green.backend(1, "v2")}, Health: HealthCheck{Path: "/healthz"}})
	}()
	for range 100 {
		if _, body := get(t, c, "http://web.dev.localhost/"); body != "blue" {
			t.Fatalf("unhealthy green got traffic: %q", body)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("SetRoute returned before green was healthy: %v", err)
	default:
	}
	green.healthy.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, c, "http://web.dev.localhost/"); body != "green" {
		t.Fatalf("after the switch: %q", body)
	}
	if green.hits.Load() != 1 {
		t.Errorf("green got %d requests before the switch", green.hits.Load()-1)
	}
}

func TestUnhealthyBackendLeavesRotation(t *testing.T) {
	a := startServer(t, "a", nil)
	b := startServer(t, "b", nil)
	p := newProxy(t, Options{})
	ctx := t.Context()
	err := p.SetRoute(ctx, Route{Name: "web.dev", Backends: []Backend{a.backend(1, "v1"), b.backend(1, "v1")},
		Health: HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond, Failures: 1}})
	if err != nil {
		t.Fatal(err)
	}
	c := front(t, p)
	b.healthy.Store(false)
	waitFor(t, func() bool { return !p.Routes()[0].Backends[1].Healthy })
	before := b.hits.Load()
	for range 50 {
		if _, body := get(t, c, "http://web.dev.localhost/"); body != "a" {
			t.Fatalf("got %q from an unhealthy backend", body)
		}
	}
	if b.hits.Load() != before {
		t.Fatal("unhealthy backend got traffic")
	}
	b.healthy.Store(true)
	waitFor(t, func() bool { return p.Routes()[0].Backends[1].Healthy })
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met after 5s")
}

func TestDrain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	old := startServer(t, "old", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "old")
	})
	next := startServer(t, "new", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", old.backend(1, "v1"))
	c := front(t, p)

	slow := make(chan string, 1)
	go func() {
		_, body := get(t, c, "http://web.dev.localhost/slow")
		slow <- body
	}()
	<-started

	switched := make(chan error, 1)
	go func() {
		switched <- p.SetRoute(t.Context(), Route{Name: "web.dev", Backends: []Backend{next.backend(1, "v2")}, Health: HealthCheck{Path: "/healthz"}})
	}()
	waitFor(t, func() bool { return p.Routes()[0].Backends[0].ID == "new" })
	for range 20 {
		if _, body := get(t, c, "http://web.dev.localhost/"); body != "new" {
			t.Fatalf("new request went to %q after the switch", body)
		}
	}
	select {
	case err := <-switched:
		t.Fatalf("SetRoute returned while a request was in flight on the old backend: %v", err)
	default:
	}
	if s := p.Stats("web.dev", "v1"); s.InFlight != 1 {
		t.Errorf("old version in flight = %d, want 1", s.InFlight)
	}
	close(release)
	if body := <-slow; body != "old" {
		t.Errorf("slow request got %q", body)
	}
	if err := <-switched; err != nil {
		t.Fatal(err)
	}

	// Drain of a backend that is gone returns at once; a drain that times
	// out says so.
	if err := p.Drain(t.Context(), "web.dev", "old"); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	inside := make(chan struct{})
	stuck := startServer(t, "stuck", func(w http.ResponseWriter, r *http.Request) { close(inside); <-hold })
	setRoute(t, p, "web.dev", next.backend(1, "v2"), stuck.backend(1000, "v2"))
	// Nearly every request goes to stuck; one that could not connect to
	// it (a loaded machine's backlog) goes to next, and the next one is
	// sent, until one is held inside stuck.
	go func() {
		for {
			select {
			case <-inside:
				return
			default:
				get(t, c, "http://web.dev.localhost/")
			}
		}
	}()
	<-inside
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx, "web.dev", "stuck"); !errors.Is(err, ErrNotDrained) {
		t.Fatalf("Drain with a request in flight: %v, want ErrNotDrained", err)
	}
	close(hold)
	if err := p.Drain(t.Context(), "web.dev", "stuck"); err != nil {
		t.Fatal(err)
	}
	if got := len(p.Routes()[0].Backends); got != 1 {
		t.Errorf("%d backends after Drain, want 1", got)
	}
}

func TestRetryOnKilledBackend(t *testing.T) {
	a := startServer(t, "a", nil)
	b := startServer(t, "b", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", a.backend(1, "v1"), b.backend(1, "v1"))
	c := front(t, p)
	for range 10 { // open keep-alive connections to both
		get(t, c, "http://web.dev.localhost/")
	}
	a.Close() // the listener and every connection: like kill -9
	for i := range 50 {
		if status, body := get(t, c, "http://web.dev.localhost/"); status != 200 || body != "b" {
			t.Fatalf("GET %d: %d %q", i, status, body)
		}
	}
	if p.Routes()[0].Backends[0].Healthy {
		t.Error("killed backend still healthy")
	}
	if s := p.Stats("web.dev", "v1"); s.Errors == 0 {
		t.Error("failed attempts not counted as errors")
	}

	// A POST is retried when it could not connect, its small body sent
	// again. (Sent on a kept-alive connection that turns out dead, it may
	// have reached the backend and is not retried: d keeps none.)
	d := startServer(t, "d", nil)
	d.Config.SetKeepAlivesEnabled(false)
	setRoute(t, p, "web.dev", d.backend(1, "v1"), b.backend(1, "v1"))
	d.Close()
	for i := range 50 {
		resp, err := c.Post("http://web.dev.localhost/", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(data) != "b" {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, data)
		}
	}
}

func TestNoRetryAfterPartialResponse(t *testing.T) {
	broken := startServer(t, "broken", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	good := startServer(t, "good", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", broken.backend(1, "v1"), good.backend(1, "v2"))
	c := front(t, p)
	// Go's client itself sends an idempotent request again when a reused
	// connection closes before any answer: one connection per request
	// keeps it from hiding what the proxy does.
	c.Transport.(*http.Transport).DisableKeepAlives = true

	var ok, failed int64
	for range 40 {
		resp, err := c.Get("http://web.dev.localhost/")
		if err != nil {
			failed++
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			failed++
		case string(body) == "good":
			ok++
		default:
			t.Fatalf("unexpected body %q", body)
		}
	}
	if failed != broken.hits.Load() || ok != good.hits.Load() {
		t.Errorf("client: %d ok, %d failed; backends: good %d, broken %d — a broken answer was retried", ok, failed, good.hits.Load(), broken.hits.Load())
	}
	if failed == 0 {
		t.Error("no request reached the broken backend")
	}
}

func TestSwitchUnderLoad(t *testing.T) {
	p := newProxy(t, Options{})
	c := front(t, p)
	versions := []*app{startServer(t, "v0", nil)}
	setRoute(t, p, "web.dev", versions[0].backend(1, "v0"))

	const clients = 50
	var (
		stop     atomic.Bool
		requests atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		bodies   = map[string]int{}
	)
	for range clients {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := c.Get("http://web.dev.localhost/")
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					t.Error(err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
					t.Errorf("%d %q %v", resp.StatusCode, body, err)
					continue
				}
				mu.Lock()
				bodies[string(body)]++
				mu.Unlock()
			}
		})
	}
	// Blue/green switches to a new version each time; the old version's
	// app is shut down as soon as SetRoute returns, as the runtime would.
	for i := 1; i <= 10 || requests.Load() < 5000; i++ {
		next := startServer(t, fmt.Sprintf("v%d", i), nil)
		setRoute(t, p, "web.dev", next.backend(1, next.name))
		versions[len(versions)-1].Close()
		versions = append(versions, next)
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failures.Load(), requests.Load())
	}
	for body := range bodies {
		if !strings.HasPrefix(body, "v") {
			t.Errorf("unexpected body %q", body)
		}
	}
	t.Logf("%d requests over %d switches, %d versions answered, 0 failed", requests.Load(), len(versions)-1, len(bodies))
}

func TestMetrics(t *testing.T) {
	ok := startServer(t, "ok", nil)
	bad := startServer(t, "bad", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", ok.backend(1, "v1"), bad.backend(1, "v2"))
	c := front(t, p)
	for range 4 {
		get(t, c, "http://web.dev.localhost/")
	}
	get(t, c, "http://nothing.dev.localhost/")
	// Round-robin gives each two, unless a health probe timed out on a
	// loaded machine meanwhile (the other then took its turn): the
	// metrics must count what each backend answered.
	nOK, nBad := ok.hits.Load(), bad.hits.Load()
	if nOK+nBad != 4 || nOK == 0 {
		t.Fatalf("the backends answered %d and %d requests, want 4 in all", nOK, nBad)
	}

	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		fmt.Sprintf(`socle_proxy_requests_total{backend="ok",route="web.dev",version="v1"} %d`, nOK),
		fmt.Sprintf(`socle_proxy_requests_total{backend="bad",route="web.dev",version="v2"} %d`, nBad),
		fmt.Sprintf(`socle_proxy_errors_total{backend="bad",route="web.dev",version="v2"} %d`, nBad),
		`socle_proxy_errors_total{backend="ok",route="web.dev",version="v1"} 0`,
		fmt.Sprintf(`socle_proxy_request_duration_seconds_bucket{backend="ok",route="web.dev",version="v1",le="+Inf"} %d`, nOK),
		fmt.Sprintf(`socle_proxy_request_duration_seconds_count{backend="bad",route="web.dev",version="v2"} %d`, nBad),
		`socle_proxy_in_flight_requests{backend="ok",route="web.dev",version="v1"} 0`,
		`socle_proxy_backend_healthy{backend="ok",route="web.dev",version="v1"} 1`,
		`socle_proxy_unknown_host_requests_total 1`,
		"# TYPE socle_proxy_request_duration_seconds histogram",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A removed backend's series go once it has drained.
	setRoute(t, p, "web.dev", ok.backend(1, "v1"))
	rec = httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(rec.Body.String(), `backend="bad"`) {
		t.Error("series of a removed backend remain")
	}
}

func TestRestore(t *testing.T) {
	web := startServer(t, "web", nil)
	admin := startServer(t, "admin", nil)
	file := filepath.Join(t.TempDir(), "routes.json")
	p := newProxy(t, Options{StateFile: file})
	setRoute(t, p, "web.dev", web.backend(3, "v1"))
	setRoute(t, p, "admin.web.dev", admin.backend(1, "v1"))
	setRoute(t, p, "gone.dev", web.backend(1, "v1"))
	if err := p.DeleteRoute(t.Context(), "gone.dev"); err != nil {
		t.Fatal(err)
	}
	want := p.Routes()
	p.Close()

	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
		t.Errorf("state directory holds %d files, want only the state file", len(entries))
	}
	q := newProxy(t, Options{StateFile: file})
	if got := q.Routes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored routes:\n%v\nwant\n%v", got, want)
	}
	c := front(t, q)
	if _, body := get(t, c, "http://web.dev.localhost/"); body != "web" {
		t.Errorf("web.dev after restore: %q", body)
	}
	if _, body := get(t, c, "http://admin.web.dev.localhost/"); body != "admin" {
		t.Errorf("admin.web.dev after restore: %q", body)
	}
	if status, _ := get(t, c, "http://gone.dev.localhost/"); status != 404 {
		t.Errorf("deleted route after restore: %d", status)
	}

	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{StateFile: file}); err == nil {
		t.Error("New accepted a corrupt state file")
	}
}

func TestStatsForCanary(t *testing.T) {
	stable := startServer(t, "stable", nil)
	var n atomic.Int64
	canary := startServer(t, "canary", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 { // one answer in four is a 500
			http.Error(w, "boom", 500)
			return
		}
		io.WriteString(w, "canary")
	})
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", stable.backend(3, "v1"), canary.backend(1, "v2"))
	c := front(t, p)

	before := p.Stats("web.dev", "v2")
	for range 400 {
		get(t, c, "http://web.dev.localhost/")
	}
	v1 := p.Stats("web.dev", "v1")
	v2 := p.Stats("web.dev", "v2").Since(before)
	all := p.Stats("web.dev", "")
	if v1.Requests != 300 || v1.Errors != 0 || v1.Backends != 1 {
		t.Errorf("v1: %+v, want 300 requests, 0 errors, 1 backend", v1)
	}
	if v2.Requests != 100 || v2.Errors != 25 || v2.ErrorRate() != 0.25 {
		t.Errorf("v2: %d requests, %d errors, rate %v; want 100, 25, 0.25", v2.Requests, v2.Errors, v2.ErrorRate())
	}
	if all.Requests != 400 || all.Backends != 2 || all.InFlight != 0 {
		t.Errorf("route: %+v", all)
	}
	if v2.P95 <= 0 || v2.P95 > time.Second {
		t.Errorf("v2 p95 = %v", v2.P95)
	}
	// A later interval only counts what happened in it.
	mark := p.Stats("web.dev", "v2")
	if d := p.Stats("web.dev", "v2").Since(mark); d.Requests != 0 || d.P95 != 0 {
		t.Errorf("empty interval: %+v", d)
	}
	// Rolled back: the canary's counters go with it.
	setRoute(t, p, "web.dev", stable.backend(1, "v1"))
	if s := p.Stats("web.dev", "v2"); s.Requests != 0 || s.Backends != 0 {
		t.Errorf("after rollback: %+v", s)
	}
}

func TestQuantile(t *testing.T) {
	var s Snapshot
	s.hist = make([]uint64, histBuckets)
	// 90 fast answers at 1ms, 10 slow ones at 200ms: p95 falls among the slow.
	s.hist[bucketOf(time.Millisecond)] += 90
	s.hist[bucketOf(200*time.Millisecond)] += 10
	if got := s.Quantile(0.5); got < time.Millisecond || got > 1125*time.Microsecond {
		t.Errorf("p50 = %v, want within 12.5%% above 1ms", got)
	}
	if got := s.Quantile(0.95); got < 200*time.Millisecond || got > 225*time.Millisecond {
		t.Errorf("p95 = %v, want within 12.5%% above 200ms", got)
	}
	for _, d := range []time.Duration{0, 15 * time.Microsecond, 16 * time.Microsecond, 33 * time.Millisecond, 7 * time.Second, 100 * time.Hour} {
		i := bucketOf(d)
		if up := bucketUpper(i); d >= up || (i > 0 && d < bucketUpper(i-1)) {
			t.Errorf("%v in bucket %d of upper bound %v", d, i, up)
		}
	}
}

// TestUpgrade checks that a 101 answer keeps working through the tracking
// of the backend's body, and that the upgraded connection is counted until it
// closes.
func TestUpgrade(t *testing.T) {
	echo := startServer(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "echo")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, rw, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	})
	p := newProxy(t, Options{})
	setRoute(t, p, "ws.dev", echo.backend(1, "v1"))

	conn, err := net.Dial("tcp", serve(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: ws.dev.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if s := p.Stats("ws.dev", "v1"); s.InFlight != 1 {
		t.Errorf("upgraded connection in flight = %d, want 1", s.InFlight)
	}
	fmt.Fprint(conn, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo hello\n" {
		t.Errorf("echo: %q", line)
	}
	conn.Close()
	waitFor(t, func() bool { return p.Stats("ws.dev", "v1").InFlight == 0 })
}

// TestHTTP checks how requests and answers cross the proxy: headers,
// framing of bodies both ways, keep-alive and HTTP/1.0.
func TestHTTP(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	be := startServer(t, "be", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s host=%s xff=%s xfh=%s len=%d te=%v body=%s",
				r.Method, r.URL.RequestURI(), r.Host, r.Header["X-Forwarded-For"], r.Header.Get("X-Forwarded-Host"),
				r.ContentLength, r.TransferEncoding, body)
		case "/big":
			io.WriteString(w, big)
		case "/stream":
			w.Header().Set("Trailer", "X-Sum")
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Sum", "3")
		case "/close":
			w.Header().Set("connection", "close") // lowercase, as some servers send it
			io.WriteString(w, "closing")
		case "/head":
			w.Header().Set("Content-Length", "42")
		}
	})
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", be.backend(1, "v1"))
	c := front(t, p)

	req, _ := http.NewRequest("POST", "http://web.dev.localhost:7080/echo?q=1", strings.NewReader("hello"))
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // a client's claim: replaced
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "POST /echo?q=1 host=web.dev.localhost:7080 xff=[127.0.0.1] xfh=web.dev.localhost:7080 len=5 te=[] body=hello"; string(body) != want {
		t.Errorf("echo:\n got %s\nwant %s", body, want)
	}

	// A body of unknown length is sent on in chunks.
	req, _ = http.NewRequest("PUT", "http://web.dev.localhost/echo", io.MultiReader(strings.NewReader("chunk"), strings.NewReader("ed")))
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "PUT /echo host=web.dev.localhost xff=[127.0.0.1] xfh=web.dev.localhost len=7 te=[] body=chunked"; string(body) != want {
		t.Errorf("chunked request body:\n got %s\nwant %s", body, want)
	}

	if _, body := get(t, c, "http://web.dev.localhost/big"); body != big {
		t.Errorf("big answer: %d bytes, want %d", len(body), len(big))
	}

	resp, err = c.Get("http://web.dev.localhost/stream")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "part0;part1;part2;" || resp.Trailer.Get("X-Sum") != "3" || resp.ContentLength != -1 {
		t.Errorf("stream: %q, trailer %v, length %d", body, resp.Trailer, resp.ContentLength)
	}

	resp, err = c.Head("http://web.dev.localhost/head")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != 42 {
		t.Errorf("HEAD: Content-Length %d, want the backend's 42", resp.ContentLength)
	}

	// The backend closing its connection is its business, not the client's.
	for range 3 {
		resp, err := c.Get("http://web.dev.localhost/close")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Close || resp.Header.Get("Connection") != "" {
			t.Errorf("backend's Connection: close reached the client: %v", resp.Header)
		}
	}
}

// TestRawHTTP speaks HTTP/1.x to the proxy by hand: pipelining, HTTP/1.0,
// Expect: 100-continue and malformed requests.
func TestRawHTTP(t *testing.T) {
	be := startServer(t, "be", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", be.backend(1, "v1"))
	addr := serve(t, p)

	exchange := func(t *testing.T, request string) string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, request)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		out, _ := io.ReadAll(conn) // until the proxy closes
		return string(out)
	}
	for _, tt := range []struct {
		name, request string
		want          []string // in order
	}{
		{"pipelined", "GET / HTTP/1.1\r\nHost: web.dev.localhost\r\n\r\nGET / HTTP/1.1\r\nHost: web.dev.localhost\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "\r\n\r\nbe", "HTTP/1.1 200 OK\r\n", "Connection: close", "\r\n\r\nbe"}},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: web.dev.localhost\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "Connection: close", "\r\n\r\nbe"}},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nHost: web.dev.localhost\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nHost: web.dev.localhost\r\n\r\n",
			[]string{"Connection: keep-alive", "\r\n\r\nbe", "Connection: close", "\r\n\r\nbe"}},
		{"expect 100-continue", "POST / HTTP/1.1\r\nHost: web.dev.localhost\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
			[]string{"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\n", "\r\n\r\nbe"}},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: web.dev.localhost\r\nExpect: magic\r\n\r\n",
			[]string{"HTTP/1.1 417 Expectation Failed\r\n"}},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", []string{"HTTP/1.1 400 Bad Request\r\n"}},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: web.dev.localhost\r\nHost: other\r\n\r\n", []string{"HTTP/1.1 400 Bad Request\r\n"}},
		{"garbage", "NOT HTTP\r\n\r\n", []string{"HTTP/1.1 400 Bad Request\r\n"}},
		{"head too large", "GET / HTTP/1.1\r\nHost: web.dev.localhost\r\nX-Big: " + strings.Repeat("x", maxHeadBytes) + "\r\n\r\n",
			[]string{"HTTP/1.1 431 Request Header Fields Too Large\r\n"}},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []string{"HTTP/1.1 505 HTTP Version Not Supported\r\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := exchange(t, tt.request)
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("answer lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestShutdown checks that Serve, once its context ends, lets a request in
// flight finish and then returns.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	slow := startServer(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", slow.backend(1, "v1"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, l) }()

	idle, err := net.Dial("tcp", l.Addr().String()) // a connection with no request: closed at once
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	answer := make(chan string, 1)
	go func() {
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			answer <- err.Error()
			return
		}
		defer conn.Close()
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: web.dev.localhost\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answer <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		answer <- string(body)
	}()
	<-started
	cancel()
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Error("idle connection still open after shutdown began")
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if got := <-answer; got != "done" {
		t.Errorf("request in flight during shutdown got %q", got)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// BenchmarkProxy measures one request through the proxy, on one kept-alive
// connection, client and backend on loopback; bench/proxy compares the
// proxy with nginx under load.
func BenchmarkProxy(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer be.Close()
	p, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	err = p.SetRoute(b.Context(), Route{Name: "web.dev", Backends: []Backend{{ID: "a", Addr: be.Listener.Addr().String(), Weight: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	go p.Serve(ctx, l)
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	req := []byte("GET / HTTP/1.1\r\nHost: web.dev.localhost\r\nUser-Agent: bench\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestSnapshotJSON: a snapshot read back from JSON gives the same interval
// counts as the one written: a canary's baseline persisted across a restart
// of socle measures the same.
func TestSnapshotJSON(t *testing.T) {
	base := Snapshot{Requests: 100, Errors: 2, latencySum: 3 * time.Second, hist: make([]uint64, histBuckets), InFlight: 7, Backends: 2}
	base.hist[bucketOf(time.Millisecond)] = 98
	base.hist[bucketOf(300*time.Millisecond)] = 2
	now := Snapshot{Requests: 150, Errors: 12, latencySum: 9 * time.Second, hist: slices.Clone(base.hist)}
	now.hist[bucketOf(300*time.Millisecond)] += 50
	b, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	want, got := now.Since(base), now.Since(back)
	if got.Requests != 50 || got.Errors != 10 || got.P95 != want.P95 || got.P95 < 300*time.Millisecond || !slices.Equal(got.hist, want.hist) {
		t.Errorf("interval from the snapshot read back: %+v, want %+v", got, want)
	}
	if back.InFlight != 0 || back.Backends != 0 {
		t.Errorf("instant figures persisted: %+v", back)
	}
	// Counts that went down were reset (a restarted proxy process): what
	// finished since is all the new snapshot counts, not nothing.
	reset := Snapshot{Requests: 30, Errors: 3, latencySum: time.Second, hist: make([]uint64, histBuckets)}
	reset.hist[bucketOf(300*time.Millisecond)] = 30
	if d := reset.Since(back); d.Requests != 30 || d.Errors != 3 || d.P95 < 300*time.Millisecond {
		t.Errorf("after a reset: %+v, want the 30 requests and 3 errors counted since", d)
	}
	for _, bad := range []string{`{"hist":{"99999":1}}`, `{"requests":"x"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s read without error", bad)
		}
	}
}
