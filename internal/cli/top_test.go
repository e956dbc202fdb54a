package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/proxy/proxyd"
)

// TestTop runs socle up (its proxy a process of its own) with a route of
// web in dev to a loopback backend in its saved route table, sends 37
// requests through the proxy, 3 of which the backend answers 500, and
// reads them back with socle top, in JSON and as a table, and in socle's
// /metrics, relayed from the proxy process.
func TestTop(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	data, _ := filepath.Abs(t.TempDir())
	route := proxy.RouteName("web", "dev", "signals")
	state, _ := json.Marshal(map[string]any{"version": 1, "routes": []proxy.Route{{Name: route,
		Backends: []proxy.Backend{{ID: "b", Addr: backend.Listener.Addr().String(), Weight: 1, Version: "r7"}}}}})
	if err := os.WriteFile(filepath.Join(data, proxyd.StateFile), state, 0o600); err != nil {
		t.Fatal(err)
	}
	url, admin, _, _ := startUpIn(t, data, "--apply-stacks=false")
	s, e, code := run(t, "status", "-o", "json", "--server", url, "--token", admin)
	var st api.Status
	if code != ExitOK || json.Unmarshal([]byte(s), &st) != nil || st.ProxyAddr == "" {
		t.Fatalf("status: %d %s %s", code, e, s)
	}
	for i := range 37 {
		path := "/"
		if i%12 == 5 {
			path = "/boom"
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+st.ProxyAddr+path, nil)
		req.Host = route + ".localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	s, e, code = run(t, "top", "-o", "json", "--env", "dev", "--server", url, "--token", admin)
	var list api.SignalList
	if code != ExitOK || json.Unmarshal([]byte(s), &list) != nil {
		t.Fatalf("top -o json: %d %s %s", code, e, s)
	}
	var web *api.UnitSignals
	for i, u := range list.Items {
		if u.App == "web" && u.Env == "dev" {
			web = &list.Items[i]
		}
	}
	if web == nil || web.Now.Requests != 37 || web.Now.Errors != 3 || web.Now.Unanswered != 0 || web.Now.P95Ms <= 0 || web.Now.Rate <= 0 {
		t.Errorf("top -o json: web in dev %+v, want 37 requests and 3 errors:\n%s", web, s)
	}
	// Not a terminal: one table, then exit.
	s, e, code = run(t, "top", "--env", "dev", "--server", url, "--token", admin)
	if code != ExitOK || !strings.Contains(s, "APP") || !strings.Contains(s, "REQ/S") {
		t.Fatalf("top: %d %s\n%s", code, e, s)
	}
	var row []string
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) == 7 && f[0] == "web" && f[1] == "dev" {
			row = f
		}
	}
	if row == nil || row[4] != "8.1%" || row[6] != "37" {
		t.Errorf("top: web in dev shows %q, want 8.1%% errors of 37 requests:\n%s", row, s)
	}

	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`socle_app_requests_total{app="web",env="dev",release="r7"} 37`,
		`socle_app_errors_total{app="web",class="5xx",env="dev",release="r7"} 3`,
		`socle_app_request_duration_seconds_count{app="web",env="dev",release="r7"} 37`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("socle's /metrics (relayed from the proxy process) lacks %s", want)
		}
	}
}
