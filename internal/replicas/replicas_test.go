package replicas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/local"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/spec"
)

// The tests run real replicas (runtimetest's test server, as processes of
// the local runtime) behind a real proxy on loopback.

var image string // a directory holding the test server: the image every replica runs

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "socle-replicas-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	image = dir
	if _, err := runtimetest.BuildServer(image); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testImages unpacks every image as the test server, run with the
// arguments the release's artifact names ("sha256:exit" makes one that
// exits at once).
type testImages struct{}

func (testImages) Unpack(_ context.Context, _, digest string) (Image, error) {
	img := Image{Root: image, Entrypoint: []string{"/testserver"}}
	if digest == "sha256:exit" {
		img.Cmd = []string{"-exit", "3"}
	}
	return img, nil
}

// env is a runtime over a local driver and a proxy that serves.
type env struct {
	t     *testing.T
	rt    *Runtime
	d     *local.Driver
	p     *proxy.Proxy
	proxy string // the proxy's address
}

func newEnv(t *testing.T) *env {
	t.Helper()
	// Rollouts, not the sandbox, are under test here (internal/runtime/
	// local tests the sandbox, with the same driver).
	d, err := local.New(local.Options{StateDir: t.TempDir(), Sandbox: sandbox.Off()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { p.Serve(ctx, ln); close(served) }()
	t.Cleanup(func() {
		cancel()
		<-served
		p.Close()
		stop, done := context.WithTimeout(context.Background(), 20*time.Second)
		defer done()
		d.StopAll(stop)
		d.Close()
	})
	rt := New(Config{Driver: d, Router: p, Images: testImages{}, ProgressDeadline: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &env{t: t, rt: rt, d: d, p: p, proxy: ln.Addr().String()}
}

// app is a unit of n replicas of the test server with a readiness probe,
// behind port http.
func app(n int, rollout spec.Rollout) *plan.Unit {
	return &plan.Unit{App: "web", Env: "dev", Runtime: spec.RuntimeLocal, Replicas: spec.Replicas{Min: n, Max: n}, Rollout: rollout,
		Containers: map[string]types.Container{"web": {Image: ".",
			ReadinessProbe: &types.ContainerProbe{HttpGet: &types.HttpProbe{Path: "/readyz", Port: 8080}}}},
		Service: &types.WorkloadService{Ports: types.WorkloadServicePorts{"http": {Port: 8080}}},
	}
}

func release(d *plan.Unit, rel string, dedicated bool) runtime.Workload {
	return runtime.Workload{Release: rel, Unit: d, Artifact: "sha256:" + rel, Dedicated: dedicated}
}

// converge applies us until applying it changes nothing and release rel
// is healthy, checking after each Apply what check says of the route.
func (e *env) converge(us runtime.UnitSpec, rel string, check func(proxy.Route)) {
	e.t.Helper()
	ctx := e.t.Context()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := e.rt.Apply(ctx, us); err != nil {
			e.t.Fatalf("Apply: %v", err)
		}
		if check != nil {
			rt, _ := e.p.Route("web.dev")
			check(rt)
		}
		// Health before Drift: a replica that became ready after Drift
		// listed the replicas (and so is not routed yet) would otherwise
		// make the release healthy with the unit applied but not routed.
		hs, err := e.rt.Health(ctx, "web", "dev")
		if err != nil {
			e.t.Fatal(err)
		}
		dr, err := e.rt.Drift(ctx, us)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, h := range hs {
			if h.Release == rel && h.State == runtime.WorkloadHealthy && dr.Applied {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // replicas become ready on their own; no event is waited for here
	}
	e.t.Fatalf("%s never healthy with %+v applied", rel, us)
}

// routed returns the route's backends by release.
func routed(rt proxy.Route) map[string]int {
	out := map[string]int{}
	for _, b := range rt.Backends {
		out[b.Version]++
	}
	return out
}

// replicas returns the unit's replicas by release.
func (e *env) replicas() map[string]int {
	e.t.Helper()
	all, err := e.rt.list(e.t.Context(), "web", "dev")
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for rel, rs := range all {
		out[rel] = len(rs)
	}
	return out
}

// load sends requests through the proxy until stopped, and counts those
// that failed.
type load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func (e *env) load(clients int) *load {
	l := &load{stop: make(chan struct{})}
	for range clients {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+e.proxy+"/id", nil)
				req.Host = "web.dev.localhost"
				resp, err := c.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
				} else {
					l.ok.Add(1)
				}
			}
		})
	}
	return l
}

func (l *load) halt() { close(l.stop); l.wg.Wait() }

// TestRollingReplacesAsReady: a rolling release replaces the one it keeps
// maxSurge at a time as its replicas become ready: as many replicas as the
// unit needs are routed throughout, nothing routed is stopped, and no
// request fails.
func TestRollingReplacesAsReady(t *testing.T) {
	e := newEnv(t)
	one := 1
	d := app(3, spec.Rollout{Strategy: spec.StrategyRolling, MaxSurge: &one})
	e.converge(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r1", false)}}, "r1", nil)
	if got := routed(mustRoute(t, e.p)); got["r1"] != 3 {
		t.Fatalf("after the first release, routed %v", got)
	}
	l := e.load(8)
	most := 0
	e.converge(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r2", false)}, Keep: []string{"r1"}}, "r2", func(rt proxy.Route) {
		if n := len(rt.Backends); n < 3 {
			t.Errorf("only %d backends routed during the rolling update: %v", n, routed(rt))
		}
		reps := e.replicas()
		most = max(most, reps["r1"]+reps["r2"])
	})
	e.converge(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r2", false)}}, "r2", nil)
	l.halt()
	if got := routed(mustRoute(t, e.p)); got["r2"] != 3 || got["r1"] != 0 {
		t.Errorf("after the rolling update, routed %v", got)
	}
	if got := e.replicas(); got["r1"] != 0 || got["r2"] != 3 {
		t.Errorf("after the rolling update, replicas %v", got)
	}
	if most > 4 {
		t.Errorf("%d replicas ran at once, beyond 3 and a surge of 1", most)
	}
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("%d requests failed, %d served", l.failed.Load(), l.ok.Load())
	}
}

func mustRoute(t *testing.T, p *proxy.Proxy) proxy.Route {
	t.Helper()
	rt, ok := p.Route("web.dev")
	if !ok {
		t.Fatal("no route web.dev")
	}
	return rt
}

// TestCanaryWeightsAndRestore: a canary step routes its replicas with the
// step's share of requests beside the release it keeps; Restore sends
// everything back to that release and stops the canary.
func TestCanaryWeightsAndRestore(t *testing.T) {
	e := newEnv(t)
	d := app(2, spec.Rollout{Strategy: spec.StrategyCanary})
	e.converge(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r1", true)}, Serve: "r1"}, "r1", nil)
	canary := release(d, "r2", true)
	canary.Replicas = 1
	e.converge(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{canary}, Keep: []string{"r1"}, Weight: 20}, "r2", nil)
	rt := mustRoute(t, e.p)
	weight := map[string]int{}
	for _, b := range rt.Backends {
		weight[b.Version] += b.Weight
	}
	if got := routed(rt); got["r1"] != 2 || got["r2"] != 1 {
		t.Fatalf("routed %v, want both of r1 and the canary", got)
	}
	if share := 100 * weight["r2"] / (weight["r1"] + weight["r2"]); share != 20 {
		t.Errorf("the canary's share is %d%% (weights %v), want 20%%", share, weight)
	}
	if err := e.rt.Restore(t.Context(), "web", "dev", "r1"); err != nil {
		t.Fatal(err)
	}
	if got := routed(mustRoute(t, e.p)); got["r1"] != 2 || got["r2"] != 0 {
		t.Errorf("after the restore, routed %v", got)
	}
	if got := e.replicas(); got["r2"] != 0 || got["r1"] != 2 {
		t.Errorf("after the restore, replicas %v", got)
	}
	if err := e.rt.Restore(t.Context(), "web", "dev", "r9"); err == nil {
		t.Error("restoring a release that does not run: no error")
	}
}

// TestBlueGreenSwitch: the new release runs beside the old one, which
// alone serves, until the spec names the new one: then all the routes
// switch at once.
func TestBlueGreenSwitch(t *testing.T) {
	e := newEnv(t)
	d := app(2, spec.Rollout{Strategy: spec.StrategyBlueGreen})
	e.converge(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r1", true)}, Serve: "r1"}, "r1", nil)
	green := runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r2", true)}, Keep: []string{"r1"}, Serve: "r1"}
	e.converge(green, "r2", func(rt proxy.Route) {
		if got := routed(rt); got["r2"] != 0 {
			t.Errorf("the new release got requests before the switch: %v", got)
		}
	})
	green.Serve = "r2"
	e.converge(green, "r2", nil)
	if got := routed(mustRoute(t, e.p)); got["r2"] != 2 || got["r1"] != 0 {
		t.Errorf("after the switch, routed %v", got)
	}
	if got := e.replicas(); got["r1"] != 2 {
		t.Errorf("the old release is kept until the spec drops it: %v", got)
	}
	green.Keep = nil
	e.converge(green, "r2", nil)
	if got := e.replicas(); got["r1"] != 0 {
		t.Errorf("the old release runs on after the spec dropped it: %v", got)
	}
}

// TestDriftAndHealth: a replica stopped behind socle's back is drift, and
// applying the spec again starts it; a release whose replicas crash is
// Failed, with the reason and the log's end.
func TestDriftAndHealth(t *testing.T) {
	e := newEnv(t)
	d := app(2, spec.Rollout{})
	us := runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r1", false)}}
	e.converge(us, "r1", nil)
	all, _ := e.rt.list(t.Context(), "web", "dev")
	if err := e.d.Stop(t.Context(), all["r1"][1].Handle); err != nil {
		t.Fatal(err)
	}
	dr, err := e.rt.Drift(t.Context(), us)
	if err != nil || dr.Applied || !slices.Equal(dr.Changes, []string{"replica 1 of r1 is missing"}) {
		t.Fatalf("Drift = %+v, %v; want the missing replica", dr, err)
	}
	e.converge(us, "r1", nil)
	if dr, _ := e.rt.Drift(t.Context(), us); len(dr.Changes) != 0 {
		t.Errorf("after applying again: %+v", dr)
	}

	bad := runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{{Release: "r2", Unit: d, Artifact: "sha256:exit"}}, Keep: []string{"r1"}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := e.rt.Apply(t.Context(), bad); err != nil {
			t.Fatal(err)
		}
		hs, err := e.rt.Health(t.Context(), "web", "dev")
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(hs, func(h runtime.WorkloadHealth) bool { return h.Release == "r2" && h.State == runtime.WorkloadFailed }); i >= 0 {
			if !strings.Contains(hs[i].Message, "crash-looping: exit status 3") || !strings.Contains(hs[i].Message, "exiting with code 3") {
				t.Errorf("failed with %q, want the crash loop, its exit and its log", hs[i].Message)
			}
			if len(hs[i].Replicas) == 0 || hs[0].Release != "r2" {
				t.Errorf("health %+v: want the newest release first, with its replicas", hs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crashing release never Failed: %+v", hs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := routed(mustRoute(t, e.p)); got["r1"] != 2 || got["r2"] != 0 {
		t.Errorf("routed %v: the crashing release got requests", got)
	}
}

// TestPruneAndUnits: Prune removes the routes and stops the replicas;
// Units lists the units that have some.
func TestPruneAndUnits(t *testing.T) {
	e := newEnv(t)
	d := app(1, spec.Rollout{})
	e.converge(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{release(d, "r1", false)}}, "r1", nil)
	us, err := e.rt.Units(t.Context())
	if err != nil || !slices.Equal(us, []runtime.UnitKey{{App: "web", Env: "dev"}}) {
		t.Fatalf("Units = %v, %v", us, err)
	}
	if n, err := e.rt.Prune(t.Context(), "web", "dev"); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1 replica stopped", n, err)
	}
	if _, ok := e.p.Route("web.dev"); ok {
		t.Error("the route outlived the unit")
	}
	if us, _ := e.rt.Units(t.Context()); len(us) != 0 {
		t.Errorf("Units after Prune = %v", us)
	}
	if _, err := e.rt.Health(t.Context(), "web", "dev"); err != nil {
		t.Errorf("Health of a pruned unit: %v", err)
	}
	if err := e.rt.Apply(t.Context(), runtime.UnitSpec{App: "web", Env: "dev"}); !errors.Is(err, runtime.ErrInvalidUnit) {
		t.Errorf("Apply without a workload: %v, want ErrInvalidUnit", err)
	}
}

// TestBackendWeights: release shares become per-backend weights whatever
// the replica counts.
func TestBackendWeights(t *testing.T) {
	st := func(n int) []runtime.Status { return make([]runtime.Status, n) }
	for _, tc := range []struct {
		old, canary, share int
	}{{2, 1, 20}, {9, 1, 10}, {3, 3, 50}, {1, 2, 90}} {
		w := backendWeights(map[string][]runtime.Status{"old": st(tc.old), "new": st(tc.canary)}, map[string]int{"old": 100 - tc.share, "new": tc.share})
		total := w["old"]*tc.old + w["new"]*tc.canary
		if got := 100 * w["new"] * tc.canary / total; got != tc.share || w["old"] > 1000 || w["new"] > 1000 {
			t.Errorf("%d old, %d new at %d%%: weights %v give the new %d%%", tc.old, tc.canary, tc.share, w, got)
		}
	}
}
