package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/proxy"
)

// TestAppSignals sends 37 requests through socle's proxy to a port of web in
// dev, 3 of which its backend answers 500: /metrics, the signals API and
// its list count exactly those.
func TestAppSignals(t *testing.T) {
	r := start(t, gitRepo(t), t.TempDir())
	defer r.stop()
	r.waitFor(t, "the demo in force", func(st Status) bool { return st.LastGood != nil })
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/boom" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	route := proxy.RouteName("web", "dev", "signals")
	if err := r.router.SetRoute(t.Context(), proxy.Route{Name: route, Backends: []proxy.Backend{{ID: "b", Addr: backend.Listener.Addr().String(), Weight: 1, Version: "r7"}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 37 {
		path := "/"
		if i%12 == 5 {
			path = "/boom"
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProxyAddr()+path, nil)
		req.Host = route + ".localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	resp := r.get(t, "/metrics")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`socle_app_requests_total{app="web",env="dev",release="r7"} 37`,
		`socle_app_errors_total{app="web",class="5xx",env="dev",release="r7"} 3`,
		`socle_app_errors_total{app="web",class="unanswered",env="dev",release="r7"} 0`,
		`socle_app_request_duration_seconds_count{app="web",env="dev",release="r7"} 37`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("socle's /metrics lacks %s", want)
		}
	}

	var sig api.AppSignals
	signalsJSON(t, r, "/api/v1/apps/web/signals?env=dev&period=1h", &sig)
	if len(sig.Envs) != 1 || sig.Envs[0].Env != "dev" || sig.Step != "1m0s" {
		t.Fatalf("signals: %+v", sig)
	}
	e := sig.Envs[0]
	if e.Now.Requests != 37 || e.Now.Errors != 3 || e.Now.Rate <= 0 || e.Now.P50Ms <= 0 || e.Now.P99Ms < e.Now.P95Ms || e.Now.P95Ms < e.Now.P50Ms {
		t.Errorf("now: %+v, want 37 requests, 3 errors and ordered quantiles", e.Now)
	}
	var sum, errs uint64
	for _, p := range e.Points {
		sum += p.Requests
		errs += p.Errors
	}
	if len(e.Points) != 60 || sum != 37 || errs != 3 {
		t.Errorf("%d points summing to %d requests and %d errors, want 60, 37 and 3", len(e.Points), sum, errs)
	}
	if last := e.Points[len(e.Points)-1]; last.Requests != 37 || last.ErrorRatio != 3.0/37 {
		t.Errorf("last point: %+v", last)
	}
	// Nothing more was sent: a second look counts no more.
	var again api.AppSignals
	signalsJSON(t, r, "/api/v1/apps/web/signals?env=dev", &again)
	if again.Envs[0].Now.Requests != 37 {
		t.Errorf("a second look counts %d requests", again.Envs[0].Now.Requests)
	}

	var list api.SignalList
	signalsJSON(t, r, "/api/v1/signals?env=dev", &list)
	var found bool
	for _, u := range list.Items {
		if u.Env != "dev" {
			t.Errorf("listed %s in %s, asked for dev", u.App, u.Env)
		}
		if u.App == "web" {
			found = true
			if u.Now.Requests != 37 || u.Now.Errors != 3 {
				t.Errorf("web in dev: %+v", u.Now)
			}
		}
	}
	if !found {
		t.Errorf("web in dev not listed: %+v", list)
	}

	for path, want := range map[string]int{
		"/api/v1/apps/nope/signals":            http.StatusNotFound,
		"/api/v1/apps/web/signals?env=qa":      http.StatusNotFound,
		"/api/v1/apps/web/signals?period=48h":  http.StatusBadRequest,
		"/api/v1/apps/web/signals?period=soon": http.StatusBadRequest,
	} {
		resp := r.get(t, path)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func signalsJSON(t *testing.T, r *running, path string, out any) {
	t.Helper()
	resp := r.get(t, path)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(fmt.Errorf("GET %s: %w", path, err))
	}
}
