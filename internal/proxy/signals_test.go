package proxy

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAppMetrics sends 37 requests through the proxy to web in dev, 3 of
// which the backend answers 500, and 1 to a port of web whose backend is
// gone: the per-app series count exactly those.
func TestAppMetrics(t *testing.T) {
	web := startServer(t, "web", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	})
	gone := startServer(t, "gone", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", web.backend(1, "r7"))
	setRoute(t, p, RouteName("web", "dev", "admin"), gone.backend(1, "r7"))
	setRoute(t, p, "api.prod", web.backend(1, "r2"))
	gone.Close()
	c := front(t, p)
	for i := range 37 {
		path := "/"
		if i%12 == 5 { // 5, 17 and 29
			path = "/boom"
		}
		get(t, c, "http://web.dev.localhost"+path)
	}
	if status, _ := get(t, c, "http://admin.web.dev.localhost/"); status != http.StatusBadGateway {
		t.Fatalf("a request to a backend that is gone: %d, want 502", status)
	}
	unanswered := p.Stats(RouteName("web", "dev", "admin"), "r7").Requests
	if unanswered == 0 {
		t.Fatal("the attempts at the backend that is gone were not counted")
	}

	out := scrape(t, p)
	for _, want := range []string{
		`socle_app_requests_total{app="web",env="dev",release="r7"} ` + strconv.FormatUint(37+unanswered, 10),
		`socle_app_errors_total{app="web",class="5xx",env="dev",release="r7"} 3`,
		`socle_app_errors_total{app="web",class="unanswered",env="dev",release="r7"} ` + strconv.FormatUint(unanswered, 10),
		`socle_app_request_duration_seconds_count{app="web",env="dev",release="r7"} 37`,
		`socle_app_request_duration_seconds_bucket{app="web",env="dev",release="r7",le="+Inf"} 37`,
		`socle_app_requests_total{app="api",env="prod",release="r2"} 0`,
		"# TYPE socle_app_request_duration_seconds histogram",
		"# TYPE socle_app_requests_total counter",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The buckets are cumulative and end at the count.
	var last uint64
	for _, m := range regexp.MustCompile(`socle_app_request_duration_seconds_bucket\{app="web",env="dev",release="r7",le="[^"]+"\} (\d+)`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		if n < last {
			t.Errorf("bucket count %d after %d", n, last)
		}
		last = n
	}
	if last != 37 {
		t.Errorf("last bucket %d, want 37", last)
	}

	// A release replaced replica by replica keeps its count while it has
	// backends left: the counts of a removed one are kept.
	other := startServer(t, "web2", nil)
	setRoute(t, p, "web.dev", web.backend(1, "r7"), other.backend(1, "r7"))
	setRoute(t, p, "web.dev", other.backend(1, "r7"))
	if out := scrape(t, p); !strings.Contains(out, `socle_app_request_duration_seconds_count{app="web",env="dev",release="r7"} 37`+"\n") {
		t.Error("the counts of a removed replica of a release that still runs were dropped")
	}
}

func scrape(t *testing.T, p *Proxy) string {
	t.Helper()
	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestAppOfRoute(t *testing.T) {
	for route, want := range map[string][2]string{"web.dev": {"web", "dev"}, "admin.web.dev": {"web", "dev"}, "web": {}, "a.b.c.d": {}} {
		app, env, ok := AppOfRoute(route)
		if [2]string{app, env} != want || ok != (want[0] != "") {
			t.Errorf("AppOfRoute(%q) = %q, %q, %v", route, app, env, ok)
		}
	}
}
