package trace_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/trace"
	"github.com/socle-dev/socle/internal/trace/tracetest"
)

// unset clears the OTEL_* variables a test does not set.
func unset(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
}

const (
	ciTrace     = "4bf92f3577b34da6a3ce929d0e0e4736"
	ciSpan      = "00f067aa0ba902b7"
	traceparent = "00-" + ciTrace + "-" + ciSpan + "-01"
)

// TestOffUnlessConfigured: without a collector named, or with the
// exporter set to none, nothing is exported and a request's traceparent is
// not even read.
func TestOffUnlessConfigured(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"nothing set", nil},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unset(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			stop, err := trace.Setup(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer stop(context.Background())
			if trace.Enabled() {
				t.Fatal("tracing is on")
			}
			r, _ := http.NewRequest(http.MethodPost, "http://socle/api/v1/apps/web/promote", nil)
			r.Header.Set("traceparent", traceparent)
			if trace.Extract(r) != r {
				t.Error("Extract read the traceparent of a socle that does not trace")
			}
			ctx := context.Background()
			if got, span := trace.Start(ctx, "promote"); got != ctx || span.SpanContext().IsValid() {
				t.Error("Start made a span of a socle that does not trace")
			}
		})
	}
}

func TestRefusesWhatItCannotExport(t *testing.T) {
	for _, env := range []map[string]string{
		{"OTEL_TRACES_EXPORTER": "zipkin"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
	} {
		unset(t)
		for k, v := range env {
			t.Setenv(k, v)
		}
		if _, err := trace.Setup(context.Background()); err == nil {
			t.Errorf("%v: no error", env)
		} else {
			t.Logf("%v: %v", env, err)
		}
	}
}

// TestExports sends spans over OTLP/HTTP and OTLP/gRPC to a receiver: a
// request's traceparent is their parent, a span handed over is the parent
// of work started later, the service is socle unless OTEL_SERVICE_NAME
// says otherwise, and a failure is the span's status.
func TestExports(t *testing.T) {
	for _, tc := range []struct {
		protocol, service string
		receiver          func(testing.TB) *tracetest.Receiver
	}{
		{"http/protobuf", "", tracetest.HTTP},
		{"grpc", "ci-socle", tracetest.GRPC},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			unset(t)
			rcv := tc.receiver(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.Endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
			t.Setenv("OTEL_SERVICE_NAME", tc.service)
			stop, err := trace.Setup(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			r, _ := http.NewRequest(http.MethodPost, "http://socle/api/v1/apps/web/promote", nil)
			r.Header.Set("traceparent", traceparent)
			ctx, span := trace.Start(trace.Extract(r).Context(), "promote", trace.App("web"))
			trace.Hand(ctx, trace.CommitKey("abc"))
			trace.End(span, nil)
			later, ok := trace.From(context.Background(), trace.CommitKey("abc"), true)
			if !ok {
				t.Fatal("nothing handed for the commit")
			}
			if _, again := trace.From(context.Background(), trace.CommitKey("abc"), true); again {
				t.Error("a hand taken is there again")
			}
			// A failed span's message goes through the redactor: it can
			// quote a build's log, and the collector is outside socle.
			trace.SetRedactor(func(s string) string { return strings.ReplaceAll(s, "hunter2", "[redacted]") })
			t.Cleanup(func() { trace.SetRedactor(func(s string) string { return s }) })
			_, rev := trace.Start(later, "revision")
			trace.End(rev, fmt.Errorf("build log: PASSWORD=hunter2: %w", context.DeadlineExceeded))
			if err := stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if trace.Enabled() {
				t.Error("still on after its shutdown")
			}
			spans := rcv.Trace(ciTrace)
			t.Logf("\n%s", tracetest.Tree(spans, "socle.app"))
			if len(spans) != 2 {
				t.Fatalf("%d spans in the CI's trace, want 2: %+v", len(spans), rcv.Spans())
			}
			want := tc.service
			if want == "" {
				want = "socle"
			}
			p, v := spans[0], spans[1]
			switch {
			case p.Name != "promote" || p.ParentID != ciSpan || p.Attrs["socle.app"] != "web" || p.Error:
				t.Errorf("promote span: %+v", p)
			case v.Name != "revision" || v.ParentID != p.SpanID || !v.Error || v.Message != "build log: PASSWORD=[redacted]: "+context.DeadlineExceeded.Error():
				t.Errorf("revision span: %+v", v)
			case p.Service != want || v.Service != want:
				t.Errorf("service %q, %q; want %q", p.Service, v.Service, want)
			}
		})
	}
}

// BenchmarkStartOff is what a span costs a socle that does not trace.
func BenchmarkStartOff(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		_, span := trace.Start(ctx, "rollout step", trace.App("web"), trace.Env("prod"))
		trace.End(span, nil)
	}
}
