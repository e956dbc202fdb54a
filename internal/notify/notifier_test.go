package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
	"github.com/socle-dev/socle/internal/syncbuf"
)

// fast retries, so that the package's tests stay within seconds.
var fast = Retry{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond, Attempts: 10, MaxAge: time.Minute, Timeout: 2 * time.Second}

// request is what a receiver got.
type request struct {
	body     []byte
	header   http.Header
	received time.Time
}

// receiver is a real loopback webhook receiver. answer, given the 1-based
// number of the request, writes the response; nil answers 200.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	answer func(n int, w http.ResponseWriter)
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, request{body, req.Header.Clone(), time.Now()})
	n := len(r.reqs)
	r.mu.Unlock()
	if r.answer != nil {
		r.answer(n, w)
	}
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// kinds lists the X-Socle-Event of the requests received.
func (r *receiver) kinds() []string {
	var ks []string
	for _, q := range r.requests() {
		ks = append(ks, q.header.Get("X-Socle-Event"))
	}
	return ks
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) { w.WriteHeader(code) }
}

// harness is a Notifier under test with its spool, metrics and logs.
type harness struct {
	*Notifier
	dir  string
	reg  *prometheus.Registry
	logs *syncbuf.Buffer
}

// start returns a Notifier on dir (a new one if empty) with fast retries;
// edit changes its options.
func start(t *testing.T, dir string, p *spec.Platform, edit func(*Options)) *harness {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "notify")
	}
	h := &harness{dir: dir, reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}}
	opts := Options{
		Dir:      dir,
		Platform: p,
		Logger:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: h.reg,
		Retry:    fast,
	}
	if edit != nil {
		edit(&opts)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	go n.Run(context.Background()) // until Close
	t.Cleanup(func() { n.Close() })
	h.Notifier = n
	return h
}

// metric returns the value of the series of name for target.
func (h *harness) metric(t *testing.T, name, target string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == target {
					if m.Counter != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// spooled lists the files in the spool.
func (h *harness) spooled(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// idle waits until every delivery has ended: the spool is empty.
func (h *harness) idle(t *testing.T) {
	t.Helper()
	waitFor(t, "the spool to empty", func() bool { return len(h.spooled(t)) == 0 })
}

// waitFor polls cond; the deadline only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// platform has dev and prod; targets maps each target to its receiver URL
// and events filter.
func platform(devNotify, prodNotify []string, targets ...spec.Notification) *spec.Platform {
	return &spec.Platform{
		Environments: []spec.Environment{
			{Name: "dev", Notify: devNotify},
			{Name: "prod", Notify: prodNotify},
		},
		Notifications: targets,
	}
}

func target(name string, typ spec.NotificationType, url string, events ...Kind) spec.Notification {
	t := spec.Notification{Name: name, Type: typ, URL: url}
	for _, k := range events {
		t.Events = append(t.Events, string(k))
	}
	return t
}

func deploy(kind Kind, env string) Event {
	return Event{Kind: kind, App: "web", Env: env, Revision: "9f2c4e1ab37d5c60e8f14b2a9c7d3e5f60718293", Release: 7, Actor: "alice", URL: "http://socle.test/apps/web"}
}

func TestRouting(t *testing.T) {
	all, deploys, failures := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	p := platform(
		[]string{"all", "deploys", "all"}, // a repeated name is one target
		[]string{"all", "failures"},
		target("all", TypeWebhook, all.URL),
		target("deploys", TypeSlack, deploys.URL, DeploySucceeded),
		target("failures", TypeTeams, failures.URL, DeployFailed, Rollback),
	)
	h := start(t, "", p, nil)
	ctx := context.Background()
	for _, ev := range []Event{
		deploy(DeployStarted, "dev"),   // all
		deploy(DeploySucceeded, "dev"), // all, deploys
		deploy(DeployFailed, "prod"),   // all, failures
		deploy(DeploySucceeded, "prod"),
		deploy(DeployFailed, "sandbox"), // no such environment: nowhere
	} {
		if err := h.Notify(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// A budget's explicit list; the failures target does not want budget alerts.
	if err := h.NotifyTargets(ctx, []string{"failures", "all"}, Event{Kind: BudgetAlert, Message: "80%"}); err != nil {
		t.Fatal(err)
	}
	h.idle(t)
	for _, c := range []struct {
		name string
		r    *receiver
		want []string
	}{
		{"all", all, []string{"deploy.started", "deploy.succeeded", "deploy.failed", "deploy.succeeded", "budget.alert"}},
		{"deploys", deploys, []string{"deploy.succeeded"}},
		{"failures", failures, []string{"deploy.failed"}},
	} {
		if got := c.r.kinds(); !slices.Equal(got, c.want) {
			t.Errorf("%s got %v, want %v", c.name, got, c.want)
		}
	}

	// What each receiver got is its type's body, with the headers.
	first := all.requests()[0]
	var ev Event
	if err := json.Unmarshal(first.body, &ev); err != nil {
		t.Fatalf("generic body: %v\n%s", err, first.body)
	}
	if ev.Kind != DeployStarted || ev.App != "web" || ev.Env != "dev" || ev.Title != "Deploying web to dev" || ev.Time.IsZero() {
		t.Errorf("generic body: %+v", ev)
	}
	if ct := first.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if first.header.Get("X-Socle-Delivery") == "" {
		t.Error("no X-Socle-Delivery header")
	}
	// The same event as the generic target's second one, in Slack's format.
	if err := json.Unmarshal(all.requests()[1].body, &ev); err != nil {
		t.Fatal(err)
	}
	got := deploys.requests()[0]
	want, _ := Render(TypeSlack, ev)
	if !bytes.Equal(got.body, want) {
		t.Errorf("slack body:\n%s\nwant\n%s", got.body, want)
	}
	var card struct {
		Type        string
		Attachments []struct{ ContentType string }
	}
	if err := json.Unmarshal(failures.requests()[0].body, &card); err != nil || card.Type != "message" || card.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" {
		t.Errorf("teams body: %v %+v", err, card)
	}

	// A new revision: dev now notifies the deploys target only.
	h.SetPlatform(platform([]string{"deploys"}, nil,
		target("all", TypeWebhook, all.URL),
		target("deploys", TypeSlack, deploys.URL, DeploySucceeded)))
	if err := h.Notify(ctx, deploy(DeploySucceeded, "dev")); err != nil {
		t.Fatal(err)
	}
	h.idle(t)
	if n := len(all.requests()); n != 5 {
		t.Errorf("the all target got %d requests after the swap, want still 5", n)
	}
	if n := len(deploys.requests()); n != 2 {
		t.Errorf("the deploys target got %d requests, want 2", n)
	}
	if err := h.NotifyTargets(ctx, []string{"failures", "all"}, Event{Kind: BudgetAlert}); !errors.Is(err, ErrUnknownTarget) || !strings.Contains(err.Error(), `"failures"`) {
		t.Errorf("NotifyTargets of a removed target: %v, want ErrUnknownTarget naming it", err)
	}
	h.idle(t) // the other target still got it
	if err := h.Notify(ctx, Event{Kind: "deploy.exploded", Env: "dev"}); err == nil {
		t.Error("no error for an unknown kind")
	}
	if v := h.metric(t, "socle_notify_sent_total", "all"); v != 6 {
		t.Errorf("sent{all} = %v, want 6", v)
	}
}

// TestZoneRouting: an event of a zone's own goes to the zone's notify
// list, or without one to those of the zone's environments; an event of
// an environment is routed by the environment as before.
func TestZoneRouting(t *testing.T) {
	platformTeam, devTeam, prodTeam := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	p := platform([]string{"dev-team"}, []string{"prod-team", "dev-team"},
		target("platform-team", TypeWebhook, platformTeam.URL),
		target("dev-team", TypeWebhook, devTeam.URL),
		target("prod-team", TypeWebhook, prodTeam.URL))
	p.Zones = []spec.Zone{{Name: "connectivity", Notify: []string{"platform-team"}}, {Name: "apps"}, {Name: "empty"}}
	p.Environments[0].Zone, p.Environments[1].Zone = "apps", "apps"
	h := start(t, "", p, nil)
	ctx := context.Background()
	for _, zone := range []string{"connectivity", "apps", "empty", "nowhere"} {
		if err := h.Notify(ctx, Event{Kind: ApprovalNeeded, App: "hub", Zone: zone, Title: "Approval needed: stack hub @ " + zone}); err != nil {
			t.Fatal(err)
		}
	}
	h.idle(t)
	for _, c := range []struct {
		name string
		r    *receiver
		want int
	}{{"platform-team", platformTeam, 1}, {"dev-team", devTeam, 1}, {"prod-team", prodTeam, 1}} {
		if n := len(c.r.requests()); n != c.want {
			t.Errorf("%s got %d requests, want %d", c.name, n, c.want)
		}
	}
	var ev Event
	if err := json.Unmarshal(platformTeam.requests()[0].body, &ev); err != nil || ev.Zone != "connectivity" || ev.Env != "" {
		t.Errorf("the zone's event as sent: %+v %v", ev, err)
	}
}

// deliverOne sends one event to a receiver answering with answer, through a
// Notifier that edit configures, and returns once the delivery has ended.
func deliverOne(t *testing.T, answer func(int, http.ResponseWriter), edit func(*Options)) (*harness, []request) {
	t.Helper()
	r := newReceiver(t, answer)
	h := start(t, "", platform([]string{"hook"}, nil, target("hook", TypeWebhook, r.URL)), edit)
	if err := h.Notify(context.Background(), deploy(DeploySucceeded, "dev")); err != nil {
		t.Fatal(err)
	}
	h.idle(t)
	return h, r.requests()
}

// expect checks the metrics of the target "hook".
func (h *harness) expect(t *testing.T, want map[string]float64) {
	t.Helper()
	for name, v := range want {
		if got := h.metric(t, name, "hook"); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	h, reqs := deliverOne(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}, nil)
	if len(reqs) != 3 {
		t.Fatalf("%d attempts, want 3", len(reqs))
	}
	for _, q := range reqs[1:] {
		if id := q.header.Get("X-Socle-Delivery"); id != reqs[0].header.Get("X-Socle-Delivery") {
			t.Errorf("retry has delivery ID %q, want the first's %q", id, reqs[0].header.Get("X-Socle-Delivery"))
		}
	}
	h.expect(t, map[string]float64{"socle_notify_sent_total": 1, "socle_notify_retries_total": 2, "socle_notify_failed_total": 0, "socle_notify_pending": 0})
}

func TestRetryAfter(t *testing.T) {
	h, reqs := deliverOne(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}, nil)
	if len(reqs) != 2 {
		t.Fatalf("%d attempts, want 2", len(reqs))
	}
	// A lower bound: the backoff alone would have waited 40ms at most.
	if gap := reqs[1].received.Sub(reqs[0].received); gap < time.Second {
		t.Errorf("retried after %v, before the second that Retry-After asked for", gap)
	}
	h.expect(t, map[string]float64{"socle_notify_sent_total": 1, "socle_notify_retries_total": 1})
}

func TestGivesUp(t *testing.T) {
	for _, c := range []struct {
		name     string
		answer   func(int, http.ResponseWriter)
		attempts int // the most attempts allowed
		want     int // the attempts made
		log      string
	}{
		{"permanent 400", func(_ int, w http.ResponseWriter) { http.Error(w, "invalid_payload", http.StatusBadRequest) }, 10, 1, "HTTP 400 Bad Request: invalid_payload"},
		{"redirect", func(_ int, w http.ResponseWriter) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
		}, 10, 1, "HTTP 302 Found"},
		{"out of attempts", status(http.StatusBadGateway), 3, 3, "out of attempts: HTTP 502 Bad Gateway"},
		{"retry-after beyond max age", func(_ int, w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		}, 10, 1, "no attempt left before expiry: HTTP 503"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			h, reqs := deliverOne(t, c.answer, func(o *Options) {
				o.Events = st
				o.Retry.Attempts = c.attempts
			})
			if len(reqs) != c.want {
				t.Errorf("%d attempts, want %d", len(reqs), c.want)
			}
			h.expect(t, map[string]float64{"socle_notify_failed_total": 1, "socle_notify_retries_total": float64(c.want - 1), "socle_notify_sent_total": 0})
			if logs := h.logs.String(); !strings.Contains(logs, "notification failed for good") || !strings.Contains(logs, c.log) {
				t.Errorf("the logs do not say %q:\n%s", c.log, logs)
			}
			// The event log says it too, for the portal.
			evs, err := st.Events(context.Background(), store.EventFilter{Kind: "notify.failed"})
			if err != nil || len(evs) != 1 {
				t.Fatalf("event log: %v, %v", evs, err)
			}
			if e := evs[0]; e.App != "web" || e.Env != "dev" || !strings.Contains(e.Message, `"hook"`) || !strings.Contains(e.Message, c.log) {
				t.Errorf("event log: %+v", e)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestReceiverDownThenUp(t *testing.T) {
	addr := closedAddr(t)
	h := start(t, "", platform([]string{"hook"}, nil, target("hook", TypeWebhook, "http://"+addr+"/hook")), nil)
	if err := h.Notify(context.Background(), deploy(DeployStarted, "dev")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two failed attempts", func() bool { return h.metric(t, "socle_notify_retries_total", "hook") >= 2 })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	r := &receiver{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.Listener.Close()
	r.Listener = ln
	r.Start()
	t.Cleanup(r.Close)
	h.idle(t)
	if n := len(r.requests()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
	h.expect(t, map[string]float64{"socle_notify_sent_total": 1, "socle_notify_failed_total": 0})
}

func TestPendingDeliveriesSurviveARestart(t *testing.T) {
	var mu sync.Mutex
	up := false
	r := newReceiver(t, func(_ int, w http.ResponseWriter) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	p := platform([]string{"hook"}, nil, target("hook", TypeWebhook, r.URL))
	// Waits long enough that the first Notifier is stopped between attempts.
	slow := func(o *Options) { o.Retry.Base, o.Retry.Max = 200*time.Millisecond, 200*time.Millisecond }
	first := start(t, "", p, slow)
	if err := first.Notify(context.Background(), deploy(DeploySucceeded, "dev")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed attempt", func() bool { return first.metric(t, "socle_notify_retries_total", "hook") >= 1 })
	first.Close()
	if err := first.Notify(context.Background(), deploy(DeploySucceeded, "dev")); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify after Close: %v, want ErrClosed", err)
	}
	files := first.spooled(t)
	if len(files) != 1 {
		t.Fatalf("spool holds %v, want one delivery", files)
	}
	d, err := readDelivery(filepath.Join(first.dir, files[0]))
	if err != nil || d.Attempts < 1 || d.Target != "hook" || d.Event.Kind != DeploySucceeded {
		t.Fatalf("spooled delivery %+v, %v", d, err)
	}
	tried := len(r.requests())

	mu.Lock()
	up = true
	mu.Unlock()
	// The second Notifier starts before the platform is known: the delivery waits for it.
	second := start(t, first.dir, nil, slow)
	second.SetPlatform(p)
	second.idle(t)
	second.Close()
	reqs := r.requests()
	if len(reqs) != tried+1 {
		t.Fatalf("%d requests after the restart, want exactly 1", len(reqs)-tried)
	}
	if id := reqs[len(reqs)-1].header.Get("X-Socle-Delivery"); id != d.ID {
		t.Errorf("delivered with ID %q, want the spooled %q", id, d.ID)
	}
	if !strings.Contains(second.logs.String(), "resuming pending notifications") {
		t.Error("the restart does not log what it resumes")
	}
}

func TestQueueIsBounded(t *testing.T) {
	release := make(chan struct{})
	r := newReceiver(t, func(int, http.ResponseWriter) { <-release })
	h := start(t, "", platform([]string{"hook"}, nil, target("hook", TypeWebhook, r.URL)), func(o *Options) { o.QueueSize = 2 })
	ctx := context.Background()
	for range 2 {
		if err := h.Notify(ctx, deploy(DeployStarted, "dev")); err != nil {
			t.Fatal(err)
		}
	}
	err := h.Notify(ctx, deploy(DeployStarted, "dev"))
	close(release)
	if !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), `"hook"`) {
		t.Errorf("third Notify: %v, want ErrQueueFull naming the target", err)
	}
	h.idle(t)
	if n := len(r.requests()); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
	h.expect(t, map[string]float64{"socle_notify_sent_total": 2, "socle_notify_dropped_total": 1})
}

func TestSecretURLNeverShows(t *testing.T) {
	const secret = "s3cr3tT0ken"
	// A receiver that quotes the request's URL, long, in its error answers.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, strings.Repeat("no service at "+req.URL.String()+" (http://"+req.Host+req.URL.Path+") ", 20), http.StatusInternalServerError)
	}))
	t.Cleanup(echo.Close)
	t.Setenv("SOCLE_TEST_ECHO", echo.URL+"/services/T0123/B0456/"+secret+"?sig="+secret)
	t.Setenv("SOCLE_TEST_DOWN", "http://"+closedAddr(t)+"/services/T0123/B0456/"+secret)
	t.Setenv("SOCLE_TEST_BAD", "http://exa mple.com/services/T0123/B0456/"+secret)
	t.Setenv("SOCLE_TEST_USER", "http://user:"+secret+"@"+closedAddr(t)+"/")
	names := []string{"echo", "down", "bad", "user", "unset"}
	var targets []spec.Notification
	for _, name := range names {
		targets = append(targets, spec.Notification{Name: name, Type: TypeSlack, URLFromEnv: "SOCLE_TEST_" + strings.ToUpper(name)})
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := start(t, "", platform(names, nil, targets...), func(o *Options) {
		o.Events = st
		o.Retry.Attempts = 3
		o.Retry.Base, o.Retry.Max = 50*time.Millisecond, 50*time.Millisecond
	})
	if err := h.Notify(context.Background(), deploy(DeployFailed, "dev")); err != nil {
		t.Fatal(err)
	}
	// While retrying, the spool holds the target's name only.
	waitFor(t, "a retry", func() bool { return h.metric(t, "socle_notify_retries_total", "echo") >= 1 })
	var spooled strings.Builder
	for _, f := range h.spooled(t) {
		b, _ := os.ReadFile(filepath.Join(h.dir, f))
		spooled.Write(b)
	}
	h.idle(t)
	for _, name := range names {
		if got := h.metric(t, "socle_notify_failed_total", name); got != 1 {
			t.Errorf("failed{%s} = %v, want 1", name, got)
		}
	}
	evs, err := st.Events(context.Background(), store.EventFilter{Kind: "notify.failed"})
	if err != nil {
		t.Fatal(err)
	}
	var recorded strings.Builder
	for _, e := range evs {
		recorded.WriteString(e.Message + string(e.Data) + "\n")
	}
	logs := h.logs.String()
	for what, text := range map[string]string{"logs": logs, "spool": spooled.String(), "event log": recorded.String()} {
		if strings.Contains(text, "s3cr3t") || strings.Contains(text, "/services/") {
			t.Errorf("the secret URL shows in the %s:\n%s", what, text)
		}
	}
	for _, want := range []string{"HTTP 500 Internal Server Error", "connection refused", "environment variable SOCLE_TEST_UNSET is not set", "environment variable SOCLE_TEST_BAD is not an http or https URL"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs do not say %q:\n%s", want, logs)
		}
	}
}

func TestSpoolSetsAsideWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"0000000000000001-00000000.json": "{not json",
		".tmp-123":                       `{"id":"x"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, dir, nil, nil)
	if got := h.spooled(t); !slices.Equal(got, []string{"0000000000000001-00000000.json.bad"}) {
		t.Errorf("spool holds %v after start", got)
	}
	if !strings.Contains(h.logs.String(), "unreadable pending notification") {
		t.Errorf("nothing logged:\n%s", h.logs.String())
	}
}

// TestDeliversOnlyWhileRunRuns: a Notifier whose Run does not run (its
// process does not hold the lease of the notifications) queues and spools
// what it is told and sends nothing; Run sends it; once Run's context
// ends, what comes next waits in the spool for the next Run.
func TestDeliversOnlyWhileRunRuns(t *testing.T) {
	r := newReceiver(t, nil)
	dir := filepath.Join(t.TempDir(), "notify")
	n, err := New(Options{Dir: dir, Platform: platform([]string{"hook"}, nil, target("hook", TypeWebhook, r.URL)), Retry: fast,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	h := &harness{Notifier: n, dir: dir}
	if err := n.Notify(t.Context(), deploy(DeploySucceeded, "dev")); err != nil {
		t.Fatal(err)
	}
	if got := len(h.spooled(t)); got != 1 || len(r.requests()) != 0 {
		t.Fatalf("without Run: %d spooled, %d sent; want 1 and 0", got, len(r.requests()))
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	h.idle(t)
	if got := len(r.requests()); got != 1 {
		t.Fatalf("Run sent %d requests, want 1", got)
	}
	if err := n.Run(t.Context()); err == nil {
		t.Error("a second Run ran beside the first")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil when its context ends", err)
	}

	if err := n.Notify(t.Context(), deploy(DeployFailed, "dev")); err != nil {
		t.Fatal(err)
	}
	if got := len(h.spooled(t)); got != 1 {
		t.Fatalf("after Run ended: %d spooled, want the new delivery", got)
	}
	go func() { done <- n.Run(t.Context()) }()
	h.idle(t)
	if got := r.kinds(); len(got) != 2 || got[1] != string(DeployFailed) {
		t.Errorf("received %v, want the second delivery once Run ran again", got)
	}
	n.Close()
	if err := <-done; err != nil {
		t.Errorf("Run after Close = %v", err)
	}
	if err := n.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
}

// An event without a time is dated by the Notifier's clock, so that what
// a notification says agrees with socle's other records when a test moves
// socle's time; delivery is not held by the clock being far ahead.
func TestEventTimeIsTheClocks(t *testing.T) {
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	_, reqs := deliverOne(t, nil, func(o *Options) { o.Clock = clock.NewFake(at) })
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	var ev Event
	if err := json.Unmarshal(reqs[0].body, &ev); err != nil {
		t.Fatal(err)
	}
	if !ev.Time.Equal(at) {
		t.Errorf("the event says %v, want the clock's %v", ev.Time, at)
	}
}
