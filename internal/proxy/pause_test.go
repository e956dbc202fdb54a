package proxy

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func setPauses(t *testing.T, p *Proxy, pauses ...Pause) {
	t.Helper()
	if err := p.SetPauses(t.Context(), pauses); err != nil {
		t.Fatal(err)
	}
}

func TestPause(t *testing.T) {
	web := startServer(t, "web", nil)
	admin := startServer(t, "web-admin", nil)
	api := startServer(t, "api", nil)
	other := startServer(t, "web-prod", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, RouteName("web", "dev", ""), web.backend(1, "v1"))
	setRoute(t, p, RouteName("web", "dev", "admin"), admin.backend(1, "v1"))
	setRoute(t, p, RouteName("api", "dev", ""), api.backend(1, "v1"))
	setRoute(t, p, RouteName("web", "prod", ""), other.backend(1, "v1"))
	c := front(t, p)

	setPauses(t, p, Pause{Scope: "web.dev", Message: `Back at <b>5</b> & "soon"`, RetryAfter: 600})
	for _, host := range []string{"web.dev.localhost", "admin.web.dev.localhost"} {
		resp, err := c.Get("http://" + host + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "600" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d, Retry-After %q, %q", host, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(string(body), "Back at &lt;b&gt;5&lt;/b&gt; &amp; &#34;soon&#34;") || strings.Contains(string(body), "<b>") {
			t.Errorf("%s: page does not hold the escaped message: %s", host, body)
		}
	}
	if web.hits.Load() != 0 || admin.hits.Load() != 0 {
		t.Errorf("a paused route's backends got %d and %d requests", web.hits.Load(), admin.hits.Load())
	}
	for host, want := range map[string]string{"api.dev.localhost": "api", "web.prod.localhost": "web-prod"} {
		if status, body := get(t, c, "http://"+host+"/"); status != 200 || body != want {
			t.Errorf("%s (not paused): %d %q", host, status, body)
		}
	}

	// HEAD: the head alone, on a connection that goes on.
	req, _ := http.NewRequest(http.MethodHead, "http://web.dev.localhost/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.ContentLength <= 0 {
		t.Errorf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
	}

	// The whole environment; the app's own pause wins over it.
	setPauses(t, p, Pause{Scope: "dev"}, Pause{Scope: "web.dev", Message: "only web"})
	if status, body := get(t, c, "http://api.dev.localhost/"); status != 503 || !strings.Contains(body, DefaultPauseMessage) {
		t.Errorf("api in paused dev: %d %q", status, body)
	}
	if status, body := get(t, c, "http://web.dev.localhost/"); status != 503 || !strings.Contains(body, "only web") {
		t.Errorf("web in paused dev: %d %q", status, body)
	}
	if status, _ := get(t, c, "http://web.prod.localhost/"); status != 200 {
		t.Errorf("web.prod while dev is paused: %d", status)
	}
	if got := p.Pauses(); len(got) != 2 || got[0].Scope != "dev" || got[1].Scope != "web.dev" {
		t.Errorf("Pauses: %+v", got)
	}

	setPauses(t, p)
	if status, body := get(t, c, "http://web.dev.localhost/"); status != 200 || body != "web" {
		t.Errorf("resumed: %d %q", status, body)
	}
}

func TestPauseValidation(t *testing.T) {
	p := newProxy(t, Options{})
	for name, pa := range map[string]Pause{
		"three labels":  {Scope: "admin.web.dev"},
		"empty":         {Scope: ""},
		"upper case":    {Scope: "Web.dev"},
		"long message":  {Scope: "web.dev", Message: strings.Repeat("x", maxPauseMessage+1)},
		"negative wait": {Scope: "web.dev", RetryAfter: -1},
	} {
		if err := p.SetPauses(t.Context(), []Pause{pa}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := p.SetPauses(t.Context(), []Pause{{Scope: "dev"}, {Scope: "dev"}}); err == nil {
		t.Error("the same scope twice: accepted")
	}
}

// TestPauseRestored: pauses are saved with the route table, so that a
// restarted proxy (socle, or the proxy process) still answers the page.
func TestPauseRestored(t *testing.T) {
	web := startServer(t, "web", nil)
	file := filepath.Join(t.TempDir(), "routes.json")
	p1, err := New(Options{StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	setRoute(t, p1, "web.dev", web.backend(1, "v1"))
	setPauses(t, p1, Pause{Scope: "web.dev", Message: "upgrading", RetryAfter: 30})
	p1.Close()

	p2 := newProxy(t, Options{StateFile: file})
	c := front(t, p2)
	resp, err := c.Get("http://web.dev.localhost/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "30" || !strings.Contains(string(body), "upgrading") {
		t.Errorf("after restore: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Changing a route keeps the pause.
	setRoute(t, p2, "web.dev", web.backend(2, "v1"))
	if status, _ := get(t, c, "http://web.dev.localhost/"); status != 503 {
		t.Errorf("after a route change: %d", status)
	}
}

// TestPauseUnderLoad pauses and resumes a route while clients send
// requests without pause: every answer is the backend's 200 or the page's
// 503, none is a transport error, and between the switches only one kind
// is seen.
func TestPauseUnderLoad(t *testing.T) {
	web := startServer(t, "web", nil)
	p := newProxy(t, Options{})
	setRoute(t, p, "web.dev", web.backend(1, "v1"))
	c := front(t, p)

	var phase atomic.Int32 // 0 serving, 1 switching, 2 paused, 3 switching, 4 serving
	var bad, ok200, ok503 atomic.Int64
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				before := phase.Load()
				status, body := get(t, c, "http://web.dev.localhost/")
				after := phase.Load()
				switch {
				case status == 200 && body == "web":
					ok200.Add(1)
					if before == after && before == 2 {
						bad.Add(1)
						t.Errorf("200 while paused")
					}
				case status == 503 && strings.Contains(body, "Down for maintenance"):
					ok503.Add(1)
					if before == after && (before == 0 || before == 4) {
						bad.Add(1)
						t.Errorf("503 while serving")
					}
				default:
					bad.Add(1)
					t.Errorf("unexpected answer %d %q", status, body)
				}
			}
		})
	}
	waitFor := func(n *atomic.Int64, atLeast int64) {
		for n.Load() < atLeast && !t.Failed() {
			runtime.Gosched()
		}
	}
	waitFor(&ok200, 200)
	phase.Store(1)
	setPauses(t, p, Pause{Scope: "web.dev"})
	phase.Store(2)
	waitFor(&ok503, 200)
	phase.Store(3)
	setPauses(t, p)
	phase.Store(4)
	n := ok200.Load()
	waitFor(&ok200, n+200)
	cancel()
	wg.Wait()
	t.Logf("%d answers 200, %d answers 503, %d wrong", ok200.Load(), ok503.Load(), bad.Load())
}
