// Package trace makes socle's deployments OpenTelemetry traces: each
// revision (fetch, validate, plan, policy, the builds it starts), each
// promotion, rollback or deploy (gates, the commit), and each rollout (its
// steps and health waits) is a tree of spans, exported over OTLP when the
// standard OTEL_* variables name a collector (Setup), and costing nothing
// else when they do not. It owns the setup, the span helpers the other
// packages call, the W3C trace context read from a request (Extract), and
// the hand-over of a trace across socle's asynchronous steps (Hand, From):
// a commit made on a request goes on in the trace of that request, the
// revision it makes in the builds and rollouts of the units it changed. It
// does not say what a span means: the packages that start them do.
package trace

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Span is a span started by Start.
type Span = trace.Span

// ServiceName is the service socle's spans come from unless
// OTEL_SERVICE_NAME says otherwise.
const ServiceName = "socle"

var (
	// tracer is the tracer of the provider Setup made; nil: tracing is
	// off, and Start returns a span that records nothing.
	tracer atomic.Pointer[trace.Tracer]
	// propagator reads a request's W3C traceparent.
	propagator = propagation.TraceContext{}
)

// Setup exports socle's spans as the standard OpenTelemetry variables say,
// and returns what flushes and stops the export. Traces are off unless
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) names
// a collector, or OTEL_TRACES_EXPORTER is otlp; OTEL_TRACES_EXPORTER=none
// and OTEL_SDK_DISABLED=true turn them off. OTEL_EXPORTER_OTLP_PROTOCOL
// (or its _TRACES_ form) is http/protobuf (the default) or grpc; headers,
// timeouts, TLS, the sampler (OTEL_TRACES_SAMPLER) and the batching
// (OTEL_BSP_*) are read by the SDK; the service is "socle" unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name another.
func Setup(ctx context.Context) (shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	exporter := os.Getenv("OTEL_TRACES_EXPORTER")
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") + os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if disabled, _ := strconv.ParseBool(os.Getenv("OTEL_SDK_DISABLED")); disabled {
		return off, nil
	}
	switch exporter {
	case "none":
		return off, nil
	case "":
		if endpoint == "" {
			return off, nil
		}
	case "otlp":
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: socle exports traces over otlp, or none", exporter)
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: socle exports traces over http/protobuf or grpc", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("the OTLP trace exporter: %w", err)
	}
	// The variables come last: OTEL_SERVICE_NAME overrides socle's name.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", ServiceName)), resource.WithFromEnv())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err), exp.Shutdown(ctx))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := tp.Tracer("github.com/socle-dev/socle")
	tracer.Store(&t)
	return func(ctx context.Context) error {
		tracer.CompareAndSwap(&t, nil)
		return tp.Shutdown(ctx)
	}, nil
}

// Enabled reports whether spans are exported.
func Enabled() bool { return tracer.Load() != nil }

// Start starts a span named name, a child of ctx's span (or of the remote
// span Extract or From put in ctx), with attrs. With tracing off it
// returns ctx and a span that records nothing.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, Span) {
	return StartAt(ctx, name, time.Time{}, attrs...)
}

// StartAt is Start for a span that began at start (now if zero).
func StartAt(ctx context.Context, name string, start time.Time, attrs ...attribute.KeyValue) (context.Context, Span) {
	t := tracer.Load()
	if t == nil {
		return ctx, noop.Span{}
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...)}
	if !start.IsZero() {
		opts = append(opts, trace.WithTimestamp(start))
	}
	return (*t).Start(ctx, name, opts...)
}

// Record records a span that ran from start to end, a child of ctx's, and
// failed with err unless it is nil: work timed before its trace began
// (the fetch that finds a revision).
func Record(ctx context.Context, name string, start, end time.Time, err error, attrs ...attribute.KeyValue) {
	_, span := StartAt(ctx, name, start, attrs...)
	fail(span, err)
	span.End(trace.WithTimestamp(end))
}

// End ends span, failed with err unless it is nil.
func End(span Span, err error) {
	fail(span, err)
	span.End()
}

func fail(span Span, err error) {
	if err != nil {
		msg := redact(err.Error())
		span.RecordError(errors.New(msg))
		span.SetStatus(codes.Error, msg)
	}
}

// Fail marks span failed for why (a rollout rolled back, a policy that
// denies), without ending it.
func Fail(span Span, why string) { span.SetStatus(codes.Error, redact(why)) }

// redactor replaces secrets in the messages spans carry: errors and
// reasons can quote a build's log or an app's answer, and a collector is
// outside socle.
var redactor atomic.Pointer[func(string) string]

// SetRedactor makes f replace secrets in the messages of failed spans
// (the server's redactor, which knows the secrets of the units).
func SetRedactor(f func(string) string) { redactor.Store(&f) }

func redact(s string) string {
	if f := redactor.Load(); f != nil {
		return (*f)(s)
	}
	return s
}

// The attributes of socle's spans.
func App(app string) attribute.KeyValue           { return attribute.String("socle.app", app) }
func Env(env string) attribute.KeyValue           { return attribute.String("socle.env", env) }
func Revision(sha string) attribute.KeyValue      { return attribute.String("socle.revision", sha) }
func Release(id int64) attribute.KeyValue         { return attribute.Int64("socle.release", id) }
func Outcome(outcome string) attribute.KeyValue   { return attribute.String("socle.outcome", outcome) }
func Artifact(digest string) attribute.KeyValue   { return attribute.String("socle.artifact", digest) }
func String(key, value string) attribute.KeyValue { return attribute.String("socle."+key, value) }
func Int(key string, value int) attribute.KeyValue {
	return attribute.Int("socle."+key, value)
}

// Extract returns r with the trace context its traceparent header carries
// (a CI pipeline's span) in its context, so that the spans of the work it
// starts are that span's children. r itself when tracing is off or it
// carries none.
func Extract(r *http.Request) *http.Request {
	if !Enabled() || r.Header.Get("traceparent") == "" {
		return r
	}
	return r.WithContext(propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
}

// Keys of the work handed over from one trace to the next (Hand).
func CommitKey(sha string) string    { return "commit " + sha }
func UnitKey(app, env string) string { return "unit " + app + "@" + env }

// HookKey is the key of the next revision the webhook's fetch finds: the
// push a CI pipeline announced. It is taken by the next revision found
// within hookTTL (another push's, when two race): a fetch that finds
// nothing new leaves it to no later one.
const HookKey = "hook"

const hookTTL = time.Minute

// handed holds the span each key's next work goes on in, and when it was
// handed: a bounded map, emptied when full (a key is handed again by the
// next revision).
var handed = struct {
	sync.Mutex
	m map[string]hand
}{m: map[string]hand{}}

type hand struct {
	sc trace.SpanContext
	at time.Time
}

const maxHanded = 4096

// Hand makes ctx's span the parent of the work keyed key that starts later
// elsewhere (From): the revision of a commit a promotion made, the build
// and rollout of a unit a revision changed. The latest hand of a key wins.
func Hand(ctx context.Context, key string) {
	sc := trace.SpanContextFromContext(ctx)
	if !Enabled() || !sc.IsValid() {
		return
	}
	handed.Lock()
	if len(handed.m) >= maxHanded {
		clear(handed.m)
	}
	handed.m[key] = hand{sc, time.Now()}
	handed.Unlock()
}

// From returns ctx with the span handed for key as its parent, and
// whether one was; take drops the hand (work done once).
func From(ctx context.Context, key string, take bool) (context.Context, bool) {
	if !Enabled() {
		return ctx, false
	}
	handed.Lock()
	h, ok := handed.m[key]
	if take {
		delete(handed.m, key)
	}
	handed.Unlock()
	if !ok || key == HookKey && time.Since(h.at) > hookTTL {
		return ctx, false
	}
	return trace.ContextWithRemoteSpanContext(ctx, h.sc), true
}

// Detach returns a context carrying ctx's span alone, none of its values
// or its cancellation: for spans that outlive the call that started them
// (a rollout's, kept across passes).
func Detach(ctx context.Context) context.Context {
	return trace.ContextWithSpan(context.Background(), trace.SpanFromContext(ctx))
}

// Set sets attributes of ctx's span.
func Set(ctx context.Context, attrs ...attribute.KeyValue) {
	trace.SpanFromContext(ctx).SetAttributes(attrs...)
}

// Failed marks ctx's span failed with err, without ending it.
func Failed(ctx context.Context, err error) { fail(trace.SpanFromContext(ctx), err) }
