package proxyd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/syncbuf"
)

// The test binary is also `socle proxy`: the supervisor runs it with
// "proxy" as its first argument, as socle up runs its own binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		os.Exit(Main(context.Background(), os.Args[2:], os.Stderr))
	}
	os.Exit(m.Run())
}

// backend is a real loopback backend answering its name.
type backend struct {
	*httptest.Server
	name    string
	healthy atomic.Bool
	hits    atomic.Int64
	release chan struct{} // GET /slow waits for it
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name, release: make(chan struct{})}
	b.healthy.Store(true)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if !b.healthy.Load() {
				http.Error(w, "no", http.StatusServiceUnavailable)
			}
			return
		case "/slow":
			<-b.release
		}
		b.hits.Add(1)
		io.WriteString(w, b.name)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// supervise starts a supervisor on data, and stops it and its proxy at the
// end of the test; opts.Command, if set, are flags of socle proxy.
func supervise(t *testing.T, data string, opts Options) (*Supervisor, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	opts.Data = data
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	opts.Command = append([]string{os.Args[0], "proxy"}, opts.Command...) // the test's flags after
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the proxy process: %v\n%s\nproxy.log:\n%s", err, logs, readLog(data))
	}
	return s, logs
}

// stopAll stops the proxy process of data, whoever supervises it.
func stopAll(t *testing.T, data string) {
	t.Cleanup(func() {
		sockets, _ := filepath.Glob(filepath.Join(data, Dir, "proxy-*.sock"))
		for _, sock := range sockets {
			c := NewClient(sock, nil)
			info, err := c.Info(context.Background())
			if err == nil {
				syscall.Kill(info.PID, syscall.SIGKILL)
			}
			c.Close()
		}
	})
}

func readLog(data string) string {
	b, _ := os.ReadFile(filepath.Join(data, Dir, "proxy.log"))
	return string(b)
}

// get sends GET path for host through the proxy at addr.
func get(c *http.Client, addr, host, path string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func route(name string, bs ...proxy.Backend) proxy.Route {
	return proxy.Route{Name: name, Backends: bs, Health: proxy.HealthCheck{Path: "/healthz", Interval: 50 * time.Millisecond}}
}

// TestControlPath drives a proxy process through its control socket:
// the health gate, weights, drain, per-version stats, route status and the
// metrics relayed to socle's registry.
func TestControlPath(t *testing.T) {
	data := t.TempDir()
	stopAll(t, data)
	reg := prometheus.NewRegistry()
	s, logs := supervise(t, data, Options{Registry: reg})
	defer s.Detach()
	c := s.Client()
	ctx := context.Background()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	close(b.release) // b answers /slow at once
	hc := &http.Client{Timeout: 10 * time.Second}

	// Weights: 1 against 3.
	if err := c.SetRoute(ctx, route("web.dev",
		proxy.Backend{ID: "a", Addr: a.addr(), Weight: 1, Version: "v1"},
		proxy.Backend{ID: "b", Addr: b.addr(), Weight: 3, Version: "v2"})); err != nil {
		t.Fatalf("SetRoute: %v\n%s", err, logs)
	}
	for range 400 {
		if code, _, err := get(hc, s.Addr(), "web.dev.localhost", "/"); err != nil || code != 200 {
			t.Fatalf("GET through the proxy process: %d %v", code, err)
		}
	}
	if a.hits.Load() != 100 || b.hits.Load() != 300 {
		t.Errorf("weights 1:3 gave a %d and b %d of 400 requests, want 100 and 300", a.hits.Load(), b.hits.Load())
	}
	if st := c.Stats("web.dev", "v2"); st.Requests != 300 || st.Backends != 1 || st.P95 == 0 {
		t.Errorf("stats of v2: %+v, want 300 requests on 1 backend with a p95", st)
	}
	if rt, ok := c.Route("web.dev"); !ok || len(rt.Backends) != 2 {
		t.Errorf("Route(web.dev) = %+v, %v", rt, ok)
	}
	if rs := c.Routes(); len(rs) != 1 || !rs[0].Backends[0].Healthy || !rs[0].Backends[1].Healthy {
		t.Errorf("Routes() = %+v, want web.dev with two healthy backends", rs)
	}

	// The health gate: a new backend that never becomes healthy leaves
	// the route as it was.
	bad := newBackend(t, "bad")
	bad.healthy.Store(false)
	gctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := c.SetRoute(gctx, route("web.dev", proxy.Backend{ID: "bad", Addr: bad.addr(), Weight: 1, Version: "v3"}))
	cancel()
	if !errors.Is(err, proxy.ErrUnhealthy) {
		t.Fatalf("SetRoute to an unhealthy backend: %v, want ErrUnhealthy", err)
	}
	if rt, _ := c.Route("web.dev"); len(rt.Backends) != 2 {
		t.Errorf("after a failed health gate the client's route is %+v, want the two backends kept", rt)
	}
	if _, body, _ := get(hc, s.Addr(), "web.dev.localhost", "/"); body != "a" && body != "b" {
		t.Errorf("after a failed health gate the route answered %q", body)
	}

	// Drain: a request in flight on a removed backend finishes before the
	// change returns.
	done := make(chan string)
	go func() {
		for {
			// Until the slow request is on a.
			_, body, _ := get(hc, s.Addr(), "web.dev.localhost", "/slow")
			if body == "a" {
				done <- body
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats("web.dev", "v1").InFlight == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no request in flight on a")
		}
		time.Sleep(10 * time.Millisecond)
	}
	changed := make(chan error, 1)
	go func() {
		changed <- c.SetRoute(ctx, route("web.dev", proxy.Backend{ID: "b", Addr: b.addr(), Weight: 1, Version: "v2"}))
	}()
	select {
	case err := <-changed:
		t.Fatalf("SetRoute returned (%v) while a removed backend had a request in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(a.release)
	if err := <-changed; err != nil {
		t.Fatalf("SetRoute after the drain: %v", err)
	}
	if body := <-done; body != "a" {
		t.Errorf("the drained request answered %q", body)
	}

	// Metrics reach socle's registry through the relay.
	fams, err := prometheus.Gatherers{reg, c}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	for _, want := range []string{"socle_proxy_requests_total", "socle_proxy_request_duration_seconds", "socle_proxy_up", "socle_proxy_restarts_total"} {
		if !names[want] {
			t.Errorf("gathered metrics lack %s", want)
		}
	}

	// The control socket is its owner's only.
	fi, err := os.Stat(filepath.Join(data, Dir))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, %v; want 0700", Dir, fi.Mode().Perm(), err)
	}
	sockets, _ := filepath.Glob(filepath.Join(data, Dir, "proxy-*.sock"))
	for _, sock := range sockets {
		if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", sock, fi.Mode().Perm(), err)
		}
	}
	// An invalid route is refused with the field named.
	if err := c.SetRoute(ctx, proxy.Route{Name: "web.dev", Backends: []proxy.Backend{{ID: "x", Addr: "nowhere", Weight: 1}}}); err == nil || !strings.Contains(err.Error(), "address") {
		t.Errorf("SetRoute of a bad address: %v", err)
	}
}

// load sends GETs through the proxy from conns keep-alive clients until
// stop is called, and counts the answers.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(addr, host string, conns int) *load {
	l := &load{stop: make(chan struct{})}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range conns {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, _, err := get(c, addr, host, "/")
				if err != nil || code != 200 {
					l.failed.Add(1)
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Sprint(code, err))
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

// waitServed waits until the load has n more answers than now.
func (l *load) waitServed(t *testing.T, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	deadline := time.Now().Add(20 * time.Second)
	for l.ok.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the load got %d answers, want %d", l.ok.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSocleGoneAndBack: the supervisor detaches (socle stopped or killed)
// and a new one adopts the same proxy process, under 50 connections: no
// request fails, the route table is the same, the listener never closed.
func TestSocleGoneAndBack(t *testing.T) {
	data := t.TempDir()
	stopAll(t, data)
	s, _ := supervise(t, data, Options{})
	a := newBackend(t, "a")
	if err := s.Client().SetRoute(context.Background(), route("web.dev", proxy.Backend{ID: "a", Addr: a.addr(), Weight: 1, Version: "v1"})); err != nil {
		t.Fatal(err)
	}
	pid, addr := s.PID(), s.Addr()
	l := startLoad(addr, "web.dev.localhost", 50)
	l.waitServed(t, 1000)
	s.Detach()
	l.waitServed(t, 1000) // socle is away
	s2, logs := supervise(t, data, Options{})
	defer s2.Detach()
	l.waitServed(t, 1000)
	l.end()
	if s2.PID() != pid || s2.Addr() != addr {
		t.Errorf("the second supervisor has proxy %d on %s, want %d on %s adopted\n%s", s2.PID(), s2.Addr(), pid, addr, logs)
	}
	if rt, ok := s2.Client().Route("web.dev"); !ok || len(rt.Backends) != 1 || rt.Backends[0].ID != "a" {
		t.Errorf("adopted route table: %+v, %v", rt, ok)
	}
	t.Logf("socle away and back under 50 connections: %d answered, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 {
		t.Errorf("%d requests failed: %v", l.failed.Load(), l.errs[:min(5, len(l.errs))])
	}
}

// TestProxyKilled: kill -9 of the proxy process; the supervisor restarts
// it at once on the same listening socket, with its route table.
func TestProxyKilled(t *testing.T) {
	data := t.TempDir()
	stopAll(t, data)
	restarts := make(chan Restart, 10)
	s, logs := supervise(t, data, Options{OnRestart: func(r Restart) { restarts <- r }})
	defer s.Detach()
	a := newBackend(t, "a")
	if err := s.Client().SetRoute(context.Background(), route("web.dev", proxy.Backend{ID: "a", Addr: a.addr(), Weight: 1, Version: "v1"})); err != nil {
		t.Fatal(err)
	}
	l := startLoad(s.Addr(), "web.dev.localhost", 50)
	defer l.end()
	for i := range 3 {
		l.waitServed(t, 500)
		pid := s.PID()
		syscall.Kill(pid, syscall.SIGKILL)
		var r Restart
		select {
		case r = <-restarts:
		case <-time.After(30 * time.Second):
			t.Fatalf("the proxy process %d was not restarted\n%s", pid, logs)
		}
		if r.Died != pid || r.PID == pid || r.PID != s.PID() {
			t.Errorf("restart %+v after killing %d; current %d", r, pid, s.PID())
		}
		// A new connection is served: the socket stayed open.
		code, body, err := get(&http.Client{Timeout: 10 * time.Second}, s.Addr(), "web.dev.localhost", "/")
		if err != nil || code != 200 || body != "a" {
			t.Fatalf("after restart %d: %d %q %v", i, code, body, err)
		}
		t.Logf("kill %d: proxy %d restarted as %d in %s", i, pid, r.PID, r.Gap)
	}
	l.waitServed(t, 500)
	if rt, ok := s.Client().Route("web.dev"); !ok || len(rt.Backends) != 1 {
		t.Errorf("route after restarts: %+v %v", rt, ok)
	}
	t.Logf("3 kills of the proxy under 50 connections: %d answered, %d failed", l.ok.Load(), l.failed.Load())
}

// TestStop: Stop drains the proxy process and closes the listening socket.
func TestStop(t *testing.T) {
	data := t.TempDir()
	stopAll(t, data)
	s, _ := supervise(t, data, Options{})
	a := newBackend(t, "a")
	if err := s.Client().SetRoute(context.Background(), route("web.dev", proxy.Backend{ID: "a", Addr: a.addr(), Weight: 1, Version: "v1"})); err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan string)
	go func() {
		_, body, _ := get(&http.Client{}, s.Addr(), "web.dev.localhost", "/slow")
		inFlight <- body
	}()
	for s.Client().Stats("web.dev", "").InFlight == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	stopped := make(chan error)
	go func() { stopped <- s.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(a.release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if body := <-inFlight; body != "a" {
		t.Errorf("the request in flight at Stop answered %q", body)
	}
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Errorf("the listening socket is still open after Stop")
	}
	if _, err := os.Stat(filepath.Join(data, Dir, recordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the record is left after Stop: %v", err)
	}
	if !bytes.Contains([]byte(readLog(data)), []byte("asked to stop")) {
		t.Errorf("proxy.log does not say it was asked to stop:\n%s", readLog(data))
	}
}
