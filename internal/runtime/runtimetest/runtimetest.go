package runtimetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
)

// Harness is what a driver's tests give the suite.
type Harness struct {
	// Open returns a driver over new, empty state of its own, and reopen,
	// which returns another driver over the same state; the suite closes
	// the first one before it calls reopen. Open is called by parallel
	// tests. The suite stops and closes every driver it gets.
	Open func(t *testing.T) (d runtime.Driver, reopen func() runtime.Driver)
	// Server returns the spec of a replica that runs the test server with
	// args: what locates it (Root or Image) and Command. The suite fills in
	// the rest.
	Server func(t *testing.T, args ...string) runtime.ReplicaSpec
}

// The suite's spec: container port 8080, probes and backoff in tens of
// milliseconds.
const (
	containerPort = 8080
	probePeriod   = 50 * time.Millisecond
	waitTimeout   = 20 * time.Second
)

var restartPolicy = runtime.RestartPolicy{Backoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, CrashLoopAfter: 3}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	// Tests that talk to the replica's process need one that runs: a
	// Simulated driver's replicas only look ready.
	serves := func(c runtime.Capabilities) bool { return !c.Simulated }
	tests := []struct {
		name string
		need func(runtime.Capabilities) bool
		run  func(*fixture)
	}{
		{"StartServes", nil, testStartServes},
		{"StartRejectsInvalidSpec", nil, testStartRejectsInvalidSpec},
		{"StartTwiceIsErrExists", nil, testStartTwice},
		{"ReplicasHaveTheirOwnAddress", serves, testOwnAddress},
		{"ReadinessGates", serves, testReadinessGates},
		{"ExecProbe", func(c runtime.Capabilities) bool { return c.ExecProbes && serves(c) }, testExecProbe},
		{"LivenessFailureRestarts", serves, testLivenessRestarts},
		{"CrashLoopBacksOff", serves, testCrashLoop},
		{"StopIsGraceful", serves, testStopIsGraceful},
		{"StopKillsAfterGracePeriod", serves, testStopKills},
		{"StopAll", nil, testStopAll},
		{"Logs", serves, testLogs},
		{"UnknownHandle", nil, testUnknownHandle},
		{"WatchEndsWithContext", nil, testWatchEnds},
		{"RecoverAdoptsRunning", func(c runtime.Capabilities) bool { return c.Reattach && serves(c) }, testRecoverAdopts},
		{"RecoverRestartsLost", func(c runtime.Capabilities) bool { return c.Reattach && serves(c) }, testRecoverLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, h)
			if tc.need != nil && !tc.need(f.caps) {
				t.Skipf("driver %s lacks the capability", f.d.Name())
			}
			tc.run(f)
		})
	}
}

// fixture is one test's driver.
type fixture struct {
	*testing.T
	ctx    context.Context
	h      Harness
	d      runtime.Driver
	reopen func() runtime.Driver
	caps   runtime.Capabilities
}

func newFixture(t *testing.T, h Harness) *fixture {
	f := &fixture{T: t, h: h}
	// Open may first build or start what the driver needs (the Kubernetes
	// driver's test cluster takes minutes on a new machine): the test's own
	// deadline starts once the driver is there.
	d, reopen := h.Open(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	f.ctx = ctx
	f.reopen = func() runtime.Driver { return f.use(reopen()) }
	f.d = f.use(d)
	f.caps = d.Capabilities()
	return f
}

// use makes the fixture stop and close d at the end.
func (f *fixture) use(d runtime.Driver) runtime.Driver {
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := d.StopAll(ctx); err != nil && !errors.Is(err, runtime.ErrClosed) {
			f.Errorf("StopAll: %v", err)
		}
		if err := d.Close(); err != nil {
			f.Errorf("Close: %v", err)
		}
	})
	f.d = d
	return d
}

// spec returns the spec of replica index of the test server run with args.
func (f *fixture) spec(index int, args ...string) runtime.ReplicaSpec {
	return Spec(f.h.Server(f.T, args...), index)
}

// Spec completes base, a spec from Harness.Server, as the suite does: app
// "app", env "test", release "r1", replica index, GREETING=hello,
// LISTEN naming the port by its placeholders, port
// "http" 8080 with a readiness probe on /readyz every 50ms, a grace period
// of 5s and a backoff from 50ms to 400ms, crash loop from 3 failures.
func Spec(base runtime.ReplicaSpec, index int) runtime.ReplicaSpec {
	s := base
	s.Ref = runtime.Ref{App: "app", Env: "test", Release: "r1", Index: index}
	s.Variables = maps.Clone(s.Variables)
	if s.Variables == nil {
		s.Variables = map[string]string{}
	}
	s.Variables["GREETING"] = "hello"
	s.Variables["LISTEN"] = "port " + runtime.PortPlaceholder + ", http " + runtime.PortPlaceholderOf("http")
	s.Ports = []runtime.Port{{Name: "http", Port: containerPort}}
	s.Readiness = httpProbe("/readyz")
	s.GracePeriod = waitTimeout / 4
	s.Restart = restartPolicy
	return s
}

func httpProbe(path string) *runtime.Probe {
	return &runtime.Probe{
		HTTPGet:          &runtime.HTTPGetAction{Path: path, Port: containerPort},
		Period:           probePeriod,
		FailureThreshold: 2,
	}
}

func (f *fixture) start(spec runtime.ReplicaSpec) runtime.Handle {
	f.Helper()
	h, err := f.d.Start(f.ctx, spec)
	if err != nil {
		f.Fatalf("Start: %v", err)
	}
	return h
}

// wait returns h's status once cond holds.
func (f *fixture) wait(h runtime.Handle, what string, cond func(runtime.Status) bool) runtime.Status {
	f.Helper()
	st, err := runtime.WaitFor(f.ctx, f.d, h, cond)
	if err != nil {
		f.Fatalf("waiting until %s: %v", what, err)
	}
	return st
}

func (f *fixture) startReady(spec runtime.ReplicaSpec) runtime.Status {
	f.Helper()
	return f.wait(f.start(spec), "ready", runtime.IsReady)
}

// call sends a request to the replica's first port and returns the body.
func (f *fixture) call(st runtime.Status, method, path string) (string, error) {
	if len(st.Ports) == 0 {
		return "", fmt.Errorf("replica %s reports no ports", st.Ref)
	}
	req, err := http.NewRequestWithContext(f.ctx, method, "http://"+st.Ports[0].Address+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return string(b), err
}

func (f *fixture) get(st runtime.Status, path string) string {
	f.Helper()
	body, err := f.call(st, http.MethodGet, path)
	if err != nil {
		f.Fatal(err)
	}
	return body
}

func (f *fixture) post(st runtime.Status, path string) {
	f.Helper()
	if _, err := f.call(st, http.MethodPost, path); err != nil {
		f.Fatal(err)
	}
}

// event returns the first event of type typ about h from events.
func (f *fixture) event(events <-chan runtime.Event, h runtime.Handle, typ runtime.EventType) runtime.Event {
	f.Helper()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				f.Fatalf("events closed before %s", typ)
			}
			if ev.Status.Handle == h && ev.Type == typ {
				return ev
			}
		case <-f.ctx.Done():
			f.Fatalf("no %s event: %v", typ, f.ctx.Err())
		}
	}
}

func testStartServes(f *fixture) {
	h := f.start(f.spec(0))
	if h.Driver != f.d.Name() || h.ID == "" {
		f.Errorf("handle %+v: want driver %q and an id", h, f.d.Name())
	}
	st := f.wait(h, "ready", runtime.IsReady)
	if st.State != runtime.Running || st.Ref != f.spec(0).Ref || st.Handle != h {
		f.Errorf("status %+v: want Running, ref and handle of the spec", st)
	}
	if len(st.Ports) != 1 || st.Ports[0].Name != "http" || st.Ports[0].Port != containerPort || st.Ports[0].Address == "" {
		f.Fatalf("ports %+v: want http:%d at some address", st.Ports, containerPort)
	}
	if list, err := f.d.List(f.ctx); err != nil || len(list) != 1 || list[0].Handle != h {
		f.Errorf("List = %+v, %v; want the one replica", list, err)
	}
	if f.caps.Simulated {
		return // nothing answers at the address
	}
	if got := f.get(st, "/env?name=GREETING"); got != "hello" {
		f.Errorf("GREETING = %q, want hello", got)
	}
	wantPort := strconv.Itoa(containerPort)
	if f.caps.PerReplicaPorts {
		u, _ := url.Parse("http://" + st.Ports[0].Address)
		wantPort = u.Port()
	}
	for _, name := range []string{"PORT", "PORT_HTTP"} {
		if got := f.get(st, "/env?name="+name); got != wantPort {
			f.Errorf("%s = %q, want %s", name, got, wantPort)
		}
	}
	if got, want := f.get(st, "/env?name=LISTEN"), "port "+wantPort+", http "+wantPort; got != want {
		f.Errorf("LISTEN = %q, want %q: the port placeholders are not expanded", got, want)
	}
	if f.caps.HostExecutables && st.PID <= 0 {
		f.Errorf("PID = %d for a host process", st.PID)
	}
}

func testStartRejectsInvalidSpec(f *fixture) {
	for name, change := range map[string]func(*runtime.ReplicaSpec){
		"bad app name":     func(s *runtime.ReplicaSpec) { s.App = "No_Such" },
		"no command":       func(s *runtime.ReplicaSpec) { s.Command = nil },
		"probe on no port": func(s *runtime.ReplicaSpec) { s.Readiness.HTTPGet.Port = 9999 },
		"probe of both kinds": func(s *runtime.ReplicaSpec) {
			s.Readiness.Exec = &runtime.ExecAction{Command: s.Command}
		},
	} {
		spec := f.spec(0)
		change(&spec)
		if _, err := f.d.Start(f.ctx, spec); !errors.Is(err, runtime.ErrInvalid) {
			f.Errorf("%s: Start = %v, want ErrInvalid", name, err)
		}
	}
	if list, err := f.d.List(f.ctx); err != nil || len(list) != 0 {
		f.Errorf("List = %+v, %v; want nothing after failed starts", list, err)
	}
}

func testStartTwice(f *fixture) {
	f.start(f.spec(0))
	if _, err := f.d.Start(f.ctx, f.spec(0)); !errors.Is(err, runtime.ErrExists) {
		f.Errorf("second Start = %v, want ErrExists", err)
	}
	if list, err := f.d.List(f.ctx); err != nil || len(list) != 1 {
		f.Errorf("List = %d replicas, %v; want 1", len(list), err)
	}
}

func testOwnAddress(f *fixture) {
	a, b := f.startReady(f.spec(0)), f.startReady(f.spec(1))
	if a.Ports[0].Address == b.Ports[0].Address {
		f.Fatalf("both replicas at %s", a.Ports[0].Address)
	}
	if f.get(a, "/id") == f.get(b, "/id") {
		f.Errorf("both addresses reach the same process")
	}
}

func testReadinessGates(f *fixture) {
	h := f.start(f.spec(0, "-ready=false"))
	time.Sleep(5 * probePeriod) // probes, which must not make it ready
	st, err := f.d.Status(f.ctx, h)
	if err != nil {
		f.Fatal(err)
	}
	if st.Ready || st.State != runtime.Starting {
		f.Fatalf("status %s ready=%v before the probe passes, want Starting and not ready", st.State, st.Ready)
	}
	if st.Message == "" {
		f.Errorf("a replica that is not ready says nothing of why")
	}
	f.post(st, "/ready?v=true")
	st = f.wait(h, "ready", runtime.IsReady)
	if st.State != runtime.Running {
		f.Errorf("ready replica is %s, want Running", st.State)
	}
	f.post(st, "/ready?v=false")
	st = f.wait(h, "not ready again", func(st runtime.Status) bool { return !st.Ready })
	if st.State != runtime.Running || st.Message == "" || st.Restarts != 0 {
		f.Errorf("unready replica: %s %q restarts=%d; want Running, a reason, no restart", st.State, st.Message, st.Restarts)
	}
}

func testExecProbe(f *fixture) {
	spec := f.spec(0, "-ready=false")
	spec.Readiness = &runtime.Probe{
		Exec:   &runtime.ExecAction{Command: []string{spec.Command[0], "-check", "/readyz"}},
		Period: probePeriod,
	}
	h := f.start(spec)
	time.Sleep(5 * probePeriod)
	st, err := f.d.Status(f.ctx, h)
	if err != nil {
		f.Fatal(err)
	}
	if st.Ready {
		f.Fatalf("ready although the exec probe fails")
	}
	f.post(st, "/ready?v=true")
	f.wait(h, "ready", runtime.IsReady)
}

func testLivenessRestarts(f *fixture) {
	spec := f.spec(0)
	spec.Liveness = httpProbe("/healthz")
	st := f.startReady(spec)
	id := f.get(st, "/id")
	f.post(st, "/sick")
	st = f.wait(st.Handle, "restarted and ready", func(st runtime.Status) bool { return st.Restarts >= 1 && st.Ready })
	if got := f.get(st, "/id"); got == id {
		f.Errorf("the sick process still answers")
	}
	if st.LastExit == nil || !strings.Contains(st.LastExit.Reason, "liveness") {
		f.Errorf("LastExit = %+v, want a liveness failure", st.LastExit)
	}
}

func testCrashLoop(f *fixture) {
	events := f.d.Watch(f.ctx)
	h := f.start(f.spec(0, "-exit", "3"))
	st := f.wait(h, "in a crash loop", func(st runtime.Status) bool {
		return st.State == runtime.CrashLoop && st.Failures >= 5
	})
	if e := st.LastExit; e == nil || e.Code != 3 || !strings.Contains(e.LogTail, "exiting with code 3") {
		f.Errorf("LastExit = %+v, want code 3 and the log's tail", e)
	}
	if st.Ready || st.Message == "" || st.NextRestart.IsZero() {
		f.Errorf("crash loop status %+v: want not ready, a message and the next restart", st)
	}
	// Every failure waits longer than the one before, up to the cap.
	delays := map[int]time.Duration{}
	for len(delays) < 5 {
		ev := f.event(events, h, runtime.EventExited)
		s := ev.Status
		if s.LastExit == nil {
			f.Fatalf("Exited event without LastExit: %+v", s)
		}
		delays[s.Failures] = s.NextRestart.Sub(s.LastExit.At)
		if want := restartPolicy.Delay(s.Failures); delays[s.Failures] != want {
			f.Errorf("after failure %d: next start %v after the exit, want %v", s.Failures, delays[s.Failures], want)
		}
		if wantState := runtime.Backoff; s.Failures < restartPolicy.CrashLoopAfter && s.State != wantState {
			f.Errorf("after failure %d: state %s, want %s", s.Failures, s.State, wantState)
		}
	}
	if !(delays[1] < delays[2] && delays[2] < delays[3] && delays[3] < delays[4] && delays[4] == delays[5]) {
		f.Errorf("backoff %v: want growing, then capped", delays)
	}
}

func testStopIsGraceful(f *fixture) {
	st := f.startReady(f.spec(0, "-term-delay", "100ms"))
	events := f.d.Watch(f.ctx)
	if err := f.d.Stop(f.ctx, st.Handle); err != nil {
		f.Fatalf("Stop: %v", err)
	}
	ev := f.event(events, st.Handle, runtime.EventStopped)
	if e := ev.Status.LastExit; e == nil || e.Code != 0 || e.Signal != "" {
		f.Errorf("LastExit = %+v, want a clean exit", e)
	}
	if _, err := f.d.Status(f.ctx, st.Handle); !errors.Is(err, runtime.ErrNotFound) {
		f.Errorf("Status after Stop = %v, want ErrNotFound", err)
	}
	if _, err := f.call(st, http.MethodGet, "/id"); err == nil {
		f.Errorf("the stopped replica still answers")
	}
	if err := f.d.Stop(f.ctx, st.Handle); !errors.Is(err, runtime.ErrNotFound) {
		f.Errorf("second Stop = %v, want ErrNotFound", err)
	}
}

func testStopKills(f *fixture) {
	spec := f.spec(0, "-ignore-term")
	spec.GracePeriod = 300 * time.Millisecond
	st := f.startReady(spec)
	events := f.d.Watch(f.ctx)
	if err := f.d.Stop(f.ctx, st.Handle); err != nil {
		f.Fatalf("Stop: %v", err)
	}
	ev := f.event(events, st.Handle, runtime.EventStopped)
	if e := ev.Status.LastExit; e == nil || e.Signal != "SIGKILL" {
		f.Errorf("LastExit = %+v, want killed by SIGKILL", e)
	}
	if _, err := f.call(st, http.MethodGet, "/id"); err == nil {
		f.Errorf("the stopped replica still answers")
	}
}

func testStopAll(f *fixture) {
	a, b := f.startReady(f.spec(0)), f.startReady(f.spec(1))
	if err := f.d.StopAll(f.ctx); err != nil {
		f.Fatalf("StopAll: %v", err)
	}
	if list, err := f.d.List(f.ctx); err != nil || len(list) != 0 {
		f.Errorf("List after StopAll = %+v, %v", list, err)
	}
	for _, st := range []runtime.Status{a, b} {
		if f.caps.Simulated {
			break // nothing ever answered
		}
		if _, err := f.call(st, http.MethodGet, "/id"); err == nil {
			f.Errorf("replica %d still answers", st.Ref.Index)
		}
	}
}

func testLogs(f *fixture) {
	st := f.startReady(f.spec(0))
	f.post(st, "/log?line=to-stdout")
	f.post(st, "/log?line=to-stderr&stream=stderr")
	rc, err := f.d.Logs(f.ctx, st.Handle, false)
	if err != nil {
		f.Fatalf("Logs: %v", err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		f.Fatalf("reading logs: %v", err)
	}
	for _, want := range []string{"listening on", "this line is on stderr", "to-stdout\n", "to-stderr\n"} {
		if !strings.Contains(string(b), want) {
			f.Errorf("logs lack %q:\n%s", want, b)
		}
	}

	rc, err = f.d.Logs(f.ctx, st.Handle, true)
	if err != nil {
		f.Fatalf("Logs(follow): %v", err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	f.post(st, "/log?line=later")
	followed := false
	for line := range lines {
		if followed = line == "later"; followed {
			break
		}
	}
	if !followed {
		f.Errorf("the followed log ended before the line written after it was opened")
	}
	if err := rc.Close(); err != nil {
		f.Errorf("closing the log: %v", err)
	}
	for range lines { // Close ends the reader
	}
}

func testUnknownHandle(f *fixture) {
	h := runtime.Handle{Driver: f.d.Name(), ID: "no-such-replica"}
	if _, err := f.d.Status(f.ctx, h); !errors.Is(err, runtime.ErrNotFound) {
		f.Errorf("Status = %v, want ErrNotFound", err)
	}
	if err := f.d.Stop(f.ctx, h); !errors.Is(err, runtime.ErrNotFound) {
		f.Errorf("Stop = %v, want ErrNotFound", err)
	}
	if _, err := f.d.Logs(f.ctx, h, false); !errors.Is(err, runtime.ErrNotFound) {
		f.Errorf("Logs = %v, want ErrNotFound", err)
	}
	if f.caps.Reattach {
		if err := f.d.Recover(f.ctx, h); !errors.Is(err, runtime.ErrNotFound) {
			f.Errorf("Recover = %v, want ErrNotFound", err)
		}
	}
}

func testWatchEnds(f *fixture) {
	ctx, cancel := context.WithCancel(f.ctx)
	events := f.d.Watch(ctx)
	cancel()
	for range events {
	}
}

func testRecoverAdopts(f *fixture) {
	var before []runtime.Status
	var ids []string
	for i := range 2 {
		st := f.startReady(f.spec(i))
		before, ids = append(before, st), append(ids, f.get(st, "/id"))
	}
	if err := f.d.Close(); err != nil {
		f.Fatalf("Close: %v", err)
	}
	for i, st := range before {
		if got := f.get(st, "/id"); got != ids[i] {
			f.Fatalf("replica %d changed when the driver closed", st.Ref.Index)
		}
	}

	d := f.reopen()
	list, err := d.List(f.ctx)
	if err != nil || len(list) != 2 || list[0].Handle != before[0].Handle || list[1].Handle != before[1].Handle {
		f.Fatalf("List after reopening = %+v, %v; want the 2 replicas", list, err)
	}
	if _, err := d.Start(f.ctx, f.spec(0)); !errors.Is(err, runtime.ErrExists) {
		f.Errorf("Start of a replica found again = %v, want ErrExists", err)
	}
	for _, st := range before {
		if err := d.Recover(f.ctx, st.Handle); err != nil {
			f.Fatalf("Recover: %v", err)
		}
		if err := d.Recover(f.ctx, st.Handle); err != nil {
			f.Fatalf("second Recover: %v", err)
		}
	}
	for i, st := range before {
		now := f.wait(st.Handle, "ready after Recover", runtime.IsReady)
		if got := f.get(now, "/id"); got != ids[i] || now.Restarts != 0 || now.PID != st.PID {
			f.Errorf("replica %d after Recover: id %s, pid %d, %d restarts; want the same process", st.Ref.Index, got, now.PID, now.Restarts)
		}
		if now.Ports[0].Address != st.Ports[0].Address {
			f.Errorf("replica %d moved from %s to %s", st.Ref.Index, st.Ports[0].Address, now.Ports[0].Address)
		}
	}
	if list, err := d.List(f.ctx); err != nil || len(list) != 2 {
		f.Errorf("List after Recover = %d replicas, %v; want 2", len(list), err)
	}
}

func testRecoverLost(f *fixture) {
	st := f.startReady(f.spec(0))
	id := f.get(st, "/id")
	if err := f.d.Close(); err != nil {
		f.Fatalf("Close: %v", err)
	}
	_, _ = f.call(st, http.MethodPost, "/exit?code=7") // no answer: it exits
	for f.ctx.Err() == nil {
		if _, err := f.call(st, http.MethodGet, "/id"); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	d := f.reopen()
	if err := d.Recover(f.ctx, st.Handle); err != nil {
		f.Fatalf("Recover: %v", err)
	}
	now := f.wait(st.Handle, "started again and ready", func(st runtime.Status) bool { return st.Ready && st.Restarts == 1 })
	if now.LastExit == nil {
		f.Errorf("no LastExit for a replica that ended while no driver watched")
	}
	if got := f.get(now, "/id"); got == id {
		f.Errorf("the same process answers")
	}
}

// BuildServer compiles the test server, static, into dir and returns the
// path of the executable.
func BuildServer(dir string) (string, error) {
	out := filepath.Join(dir, "testserver")
	cmd := exec.Command("go", "build", "-o", out, "github.com/socle-dev/socle/internal/runtime/runtimetest/testserver")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test server: %w\n%s", err, b)
	}
	return out, nil
}
