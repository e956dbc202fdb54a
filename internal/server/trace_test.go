package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/trace"
	"github.com/socle-dev/socle/internal/trace/tracetest"
)

// The CI pipeline's span that asks for the promotion (W3C trace context).
const (
	ciTrace = "0af7651916cd43dd8448eb211c80319c"
	ciSpan  = "b7ad6b7169203331"
	// The pipeline's span that announces a push through the webhook.
	pushTrace = "5b8efff798038103d269b633813fc60c"
	pushSpan  = "eee19b7ec3c1b174"
)

// TestDeploymentsAreTraces runs a server that exports its spans over
// OTLP/HTTP to a receiver started by the test: the first revision is a
// trace of its fetch, validation, plan, policies and builds; a promotion
// requested with a traceparent continues that trace: gates, the commit,
// the revision the commit makes, and the rollout it starts, step by step;
// a push announced through the webhook with a traceparent is a revision in
// the pipeline's trace.
func TestDeploymentsAreTraces(t *testing.T) {
	rcv := tracetest.HTTP(t)
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.Endpoint)
	stopTraces, err := trace.Setup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stopTraces(context.Background())

	repo := gitRepo(t)
	// preprod takes a promotion at once (the soak is the gates' test), and
	// web's canary pauses a second at each step, not 30.
	editFile(t, repo, "socle.yaml", "      from: dev\n      soak: 10m\n", "      from: dev\n")
	editFile(t, repo, "apps/web/socle.yaml", "pause: 30s", "pause: 1s")
	editFile(t, repo, "apps/web/socle.yaml", "pause: 30s", "pause: 1s")
	commitAll(t, repo, "preprod: no soak; web: short canary pauses")
	s := start(t, repo, t.TempDir())
	defer s.stop()
	s.waitFor(t, "web running in dev", func(st Status) bool {
		u := runtimeOf(st, "web", "dev")
		return u != nil && u.Phase == api.PhaseSynced
	})

	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/v1/apps/web/promote", strings.NewReader(`{"to":"preprod"}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+ciTrace+"-"+ciSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("promote: %s", resp.Status)
	}
	s.waitFor(t, "web running in preprod", func(st Status) bool {
		u := runtimeOf(st, "web", "preprod")
		return u != nil && u.Phase == api.PhaseSynced && u.Release != 0
	})
	// A push that a CI pipeline announces through the webhook, with its
	// traceparent: the revision goes on in the pipeline's trace.
	st := s.status(t)
	before, running := st.LastGood.SHA, runtimeOf(st, "web", "dev").Release
	commit(t, repo, "apps/web/socle.yaml", "LOG_LEVEL: debug", "LOG_LEVEL: info", "web: quieter logs in dev")
	req, _ = http.NewRequest(http.MethodPost, s.url+"/api/v1/hooks/git", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("traceparent", "00-"+pushTrace+"-"+pushSpan+"-01")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.waitFor(t, "the pushed revision rolled out in dev", func(st Status) bool {
		u := runtimeOf(st, "web", "dev")
		return st.LastGood != nil && st.LastGood.SHA != before && u != nil && u.Phase == api.PhaseSynced && u.Release > running
	})
	if err := stopTraces(context.Background()); err != nil { // sends what is left
		t.Fatal(err)
	}

	show := []string{"socle.app", "socle.env", "socle.release", "socle.outcome", "socle.blocked", "socle.step.name"}
	promotion := rcv.Trace(ciTrace)
	t.Logf("the promotion's trace %s:\n%s", ciTrace, tracetest.Tree(promotion, show...))
	tree := spanTree{t: t, spans: promotion}
	promote := tree.one("promote", ciSpan)
	tree.attrs(promote, map[string]string{"socle.app": "web", "socle.env": "preprod", "socle.outcome": "committed"})
	tree.one("gates", promote.SpanID)
	commit := tree.one("commit", promote.SpanID)
	rev := tree.one("revision", promote.SpanID)
	if rev.Attrs["socle.revision"] != commit.Attrs["socle.commit"] || rev.Attrs["socle.outcome"] != "planned" {
		t.Errorf("the revision %v is not the promotion's commit %v, planned", rev.Attrs, commit.Attrs)
	}
	for _, name := range []string{"fetch", "validate", "plan", "policy"} {
		tree.one(name, rev.SpanID)
	}
	rollout := tree.one("rollout", rev.SpanID)
	tree.attrs(rollout, map[string]string{"socle.app": "web", "socle.env": "preprod", "socle.outcome": "Succeeded", "socle.artifact": promote.Attrs["socle.artifact"]})
	steps := tree.children("rollout step", rollout.SpanID)
	if len(steps) == 0 {
		t.Error("the rollout has no step")
	}
	for _, st := range steps {
		tree.one("health wait", st.SpanID)
	}
	for _, sp := range promotion {
		if sp.Error || sp.Service != "socle" {
			t.Errorf("span %s: error %v (%s), service %q", sp.Name, sp.Error, sp.Message, sp.Service)
		}
	}

	pushed := rcv.Trace(pushTrace)
	t.Logf("the pushed revision's trace %s:\n%s", pushTrace, tracetest.Tree(pushed, show...))
	tree = spanTree{t: t, spans: pushed}
	rev = tree.one("revision", pushSpan)
	for _, name := range []string{"fetch", "validate", "plan", "policy"} {
		tree.one(name, rev.SpanID)
	}
	// web's canary in dev (in the sandbox too, maybe not finished): a
	// step per weight, each waiting for health then pausing, then the
	// scale up, the switch, and the old release stopped.
	rollouts := tree.children("rollout", rev.SpanID)
	i := slices.IndexFunc(rollouts, func(sp tracetest.Span) bool { return sp.Attrs["socle.env"] == "dev" })
	if i < 0 {
		t.Fatal("no rollout in dev")
	}
	tree.attrs(rollouts[i], map[string]string{"socle.app": "web", "socle.outcome": "Succeeded"})
	var names []string
	for _, st := range tree.children("rollout step", rollouts[i].SpanID) {
		tree.one("health wait", st.SpanID)
		names = append(names, st.Attrs["socle.step.name"])
		if strings.HasPrefix(st.Attrs["socle.step.name"], "canary ") {
			tree.one("pause", st.SpanID)
		}
	}
	if len(names) != 5 || !strings.HasSuffix(names[0], " at 10%") || !strings.HasPrefix(names[4], "stop ") {
		t.Errorf("steps %q, want the canary's 5", names)
	}

	// The first revision: a trace of its own, with the builds of its apps.
	var first []tracetest.Span
	for _, sp := range rcv.Spans() {
		if sp.Name == "build" && sp.Attrs["socle.app"] == "web" && sp.Attrs["socle.env"] == "dev" {
			first = rcv.Trace(sp.TraceID)
			break
		}
	}
	t.Logf("the first revision's trace:\n%s", tracetest.Tree(first, show...))
	tree = spanTree{t: t, spans: first}
	rev = tree.one("revision", "")
	for _, name := range []string{"fetch", "validate", "plan", "policy"} {
		tree.one(name, rev.SpanID)
	}
	builds := tree.children("build", rev.SpanID)
	if !slices.ContainsFunc(builds, func(b tracetest.Span) bool {
		return b.Attrs["socle.app"] == "web" && strings.HasPrefix(b.Attrs["socle.artifact"], "sha256:")
	}) {
		t.Errorf("builds %+v: want web's, with its artifact", builds)
	}
	if len(tree.children("rollout", rev.SpanID)) == 0 {
		t.Error("the first revision started no rollout")
	}
}

type spanTree struct {
	t     *testing.T
	spans []tracetest.Span
}

// children are the spans named name whose parent is parent.
func (s spanTree) children(name, parent string) []tracetest.Span {
	var out []tracetest.Span
	for _, sp := range s.spans {
		if sp.Name == name && sp.ParentID == parent {
			out = append(out, sp)
		}
	}
	return out
}

// one is the only span named name under parent.
func (s spanTree) one(name, parent string) tracetest.Span {
	s.t.Helper()
	c := s.children(name, parent)
	if len(c) != 1 {
		s.t.Fatalf("%d spans %q under %s, want 1", len(c), name, parent)
	}
	return c[0]
}

func (s spanTree) attrs(sp tracetest.Span, want map[string]string) {
	s.t.Helper()
	for k, v := range want {
		if sp.Attrs[k] != v {
			s.t.Errorf("span %s: %s=%q, want %q", sp.Name, k, sp.Attrs[k], v)
		}
	}
}
