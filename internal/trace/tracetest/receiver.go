// Package tracetest is an OTLP trace receiver for tests: the OTLP trace
// service, over HTTP (POST /v1/traces, protobuf) or gRPC, implemented with
// the protocol's generated types and served on loopback. It keeps the
// spans it receives, and prints them as a tree.
package tracetest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is a span as the receiver got it.
type Span struct {
	TraceID, SpanID, ParentID string // hex; ParentID "" for a root
	Name                      string
	Service                   string            // its resource's service.name
	Attrs                     map[string]string // every value as a string
	Error                     bool              // its status is Error
	Message                   string            // its status' message
	Start, End                time.Time
}

// Receiver is a running OTLP trace service.
type Receiver struct {
	// Endpoint is what OTEL_EXPORTER_OTLP_ENDPOINT names: http://host:port
	// (plain HTTP or gRPC without TLS).
	Endpoint string

	mu    sync.Mutex
	spans []Span
}

// HTTP starts an OTLP/HTTP trace receiver, stopped when the test ends.
func HTTP(t testing.TB) *Receiver {
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "OTLP/HTTP protobuf traces only", http.StatusNotFound)
			return
		}
		b, err := io.ReadAll(req.Body)
		var in coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &in)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&in)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.Endpoint = srv.URL
	return r
}

// GRPC starts an OTLP/gRPC trace receiver, stopped when the test ends.
func GRPC(t testing.TB) *Receiver {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Endpoint: "http://" + l.Addr().String()}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, grpcService{r: r})
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return r
}

type grpcService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcService) Export(_ context.Context, in *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.r.add(in)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) add(in *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range in.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, Span{
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()), ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Name: s.GetName(), Service: service, Attrs: attrs(s.GetAttributes()),
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, Message: s.GetStatus().GetMessage(),
					Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano())),
				})
			}
		}
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.GetStringValue()
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(v.GetBoolValue())
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Spans returns the spans received so far, in the order they came.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Trace returns the spans of trace id, by start time.
func (r *Receiver) Trace(id string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Span) int { return a.Start.Compare(b.Start) })
	return out
}

// Tree prints spans as a tree, children under their parent by start time,
// each with the attributes named in show: a span whose parent is not
// among spans is a root, and says its parent.
func Tree(spans []Span, show ...string) string {
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	children := map[string][]Span{}
	var roots []Span
	for _, s := range spans {
		if ids[s.ParentID] {
			children[s.ParentID] = append(children[s.ParentID], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var print func(s Span, depth int)
	print = func(s Span, depth int) {
		fmt.Fprintf(&b, "%s%s", strings.Repeat("  ", depth), s.Name)
		for _, k := range show {
			if v, ok := s.Attrs[k]; ok {
				fmt.Fprintf(&b, " %s=%s", strings.TrimPrefix(k, "socle."), v)
			}
		}
		if s.Error {
			fmt.Fprintf(&b, " ERROR(%s)", s.Message)
		}
		if depth == 0 && s.ParentID != "" {
			fmt.Fprintf(&b, " (parent %s)", s.ParentID)
		}
		fmt.Fprintf(&b, " [%s]\n", s.End.Sub(s.Start).Round(time.Millisecond))
		for _, c := range children[s.SpanID] {
			print(c, depth+1)
		}
	}
	for _, r := range roots {
		print(r, 0)
	}
	return b.String()
}
