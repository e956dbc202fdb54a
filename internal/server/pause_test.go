package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// proxyClient sends every request to the proxy at addr, whatever the
// URL's host, over kept-alive connections.
func proxyClient(addr string) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
	}, Timeout: 30 * time.Second}
}

// answer is what the proxy answered one request with.
type answer struct {
	status     int
	body       string
	retryAfter string
}

func fetch(c *http.Client, url string) (answer, error) {
	resp, err := c.Get(url)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header.Get("Retry-After")}, err
}

// load sends requests to url from n clients until stop is called, and
// sorts the answers by the phase they were sent and answered in: an
// answer whose request began and ended in the same phase counts for it.
type load struct {
	phase     atomic.Int32
	mu        sync.Mutex
	byPhase   map[int32]map[string]int // "200", "503 page", other: the answer
	transport atomic.Int64
	total     atomic.Int64
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

func startLoad(t *testing.T, c *http.Client, url string, n int, page string) *load {
	l := &load{byPhase: map[int32]map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = func() { cancel(); l.wg.Wait() }
	t.Cleanup(l.stop)
	for range n {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				before := l.phase.Load()
				a, err := fetch(c, url)
				after := l.phase.Load()
				l.total.Add(1)
				kind := ""
				switch {
				case err != nil:
					l.transport.Add(1)
					kind = "transport error: " + err.Error()
				case a.status == 200:
					kind = "200"
				case a.status == 503 && strings.Contains(a.body, page) && a.retryAfter == "600":
					kind = "503 page"
				default:
					kind = a.describe()
				}
				if before == after {
					l.mu.Lock()
					if l.byPhase[before] == nil {
						l.byPhase[before] = map[string]int{}
					}
					l.byPhase[before][kind]++
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

func (a answer) describe() string { return http.StatusText(a.status) + ": " + a.body }

// count returns how many answers of kind phase has had.
func (l *load) count(phase int32, kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPhase[phase][kind]
}

// until waits for phase to have had n answers of kind.
func (l *load) until(t *testing.T, phase int32, kind string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitBudget)
	for l.count(phase, kind) < n {
		if time.Now().After(deadline) {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("phase %d: waiting for %d answers %q: %v", phase, n, kind, l.byPhase[phase])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPauseUnderLoad pauses and resumes web in dev through the API, with
// the proxy in a process of its own (socle up's default) and 32 clients
// sending requests through it all along: only 200s before, only the
// maintenance page (503, the message escaped, Retry-After) while paused,
// 200s after, and no transport error. Roles: a developer pauses dev, not
// prod (approvers and admins do) nor a whole environment (admins). A pause
// outlives socle: the next socle adopts the proxy process with its pauses,
// and sets them from the store, which is the truth.
func TestPauseUnderLoad(t *testing.T) {
	repo, data := gitRepo(t), t.TempDir()
	cfg := Config{Repo: repo, Data: data, ProxyCommand: []string{os.Args[0], "proxy"}, KeepRunning: true}
	r := startWith(t, cfg)
	pid := r.proxySup.PID()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	ctx := t.Context()
	as := map[string]*client.Client{"admin": client.New(r.url, r.token)}
	for _, u := range []string{"tom", "ines", "paul"} {
		tok, _, err := auth.Create(ctx, r.Store(), u, "pause test", "test", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		as[u] = client.New(r.url, tok)
	}
	pc := proxyClient(r.ProxyAddr())
	const url = "http://web.dev.localhost/"
	r.waitFor(t, "web in dev to answer through the proxy", func(Status) bool {
		a, err := fetch(pc, url)
		return err == nil && a.status == 200
	})

	// Who may.
	req := api.PauseRequest{Message: `Back at 14:00 <b>UTC</b>`, RetryAfter: "10m"}
	for _, tc := range []struct {
		user, app, env string
		status         int
	}{
		{"paul", "web", "dev", 403}, // a viewer
		{"tom", "web", "prod", 403}, // prod: approvers and admins
		{"tom", "", "dev", 403},     // a whole environment: admins
		{"tom", "nothing", "dev", 404},
		{"admin", "", "nowhere", 404},
	} {
		_, err := as[tc.user].Pause(ctx, tc.app, tc.env, req)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != tc.status {
			t.Errorf("%s pausing %q in %s: %v, want %d", tc.user, tc.app, tc.env, err, tc.status)
		}
	}
	if _, err := as["tom"].Pause(ctx, "web", "dev", api.PauseRequest{RetryAfter: "soon"}); err == nil {
		t.Error("retryAfter \"soon\" accepted")
	}

	l := startLoad(t, pc, url, 32, "Back at 14:00 &lt;b&gt;UTC&lt;/b&gt;")
	l.until(t, 0, "200", 500)

	l.phase.Store(1)
	p, err := as["tom"].Pause(ctx, "web", "dev", req)
	if err != nil {
		t.Fatal(err)
	}
	if p.By != "tom" || p.RetryAfterSeconds != 600 || p.App != "web" || p.Env != "dev" {
		t.Errorf("pause: %+v", p)
	}
	l.phase.Store(2)
	l.until(t, 2, "503 page", 500)

	l.phase.Store(3)
	if _, err := as["tom"].Resume(ctx, "web", "dev"); err != nil {
		t.Fatal(err)
	}
	l.phase.Store(4)
	l.until(t, 4, "200", 500)
	l.stop()
	for ph, want := range map[int32]string{0: "200", 2: "503 page", 4: "200"} {
		l.mu.Lock()
		for kind, n := range l.byPhase[ph] {
			if kind != want {
				t.Errorf("phase %d: %d answers %q, want only %q", ph, n, kind, want)
			}
		}
		l.mu.Unlock()
	}
	if n := l.transport.Load(); n != 0 {
		t.Errorf("%d transport errors", n)
	}
	t.Logf("%d requests: %v; %d transport errors", l.total.Load(), l.byPhase, l.transport.Load())

	if _, err := as["tom"].Resume(ctx, "web", "dev"); err == nil {
		t.Error("resuming what is not paused: no error")
	}
	// Audited.
	recs, err := r.Store().AuditRecords(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, rec := range recs {
		if strings.HasSuffix(rec.Action, ".paused") || strings.HasSuffix(rec.Action, ".resumed") {
			seen = append(seen, rec.Actor+" "+rec.Action+" "+rec.App+"."+rec.Env)
		}
	}
	if strings.Join(seen, ", ") != "tom app.paused web.dev, tom app.resumed web.dev" {
		t.Errorf("audit: %q", seen)
	}

	// The whole environment, by an admin; status and the app say so.
	if _, err := as["admin"].Pause(ctx, "", "dev", api.PauseRequest{Message: "dev is moving", RetryAfter: "10m"}); err != nil {
		t.Fatal(err)
	}
	if a, err := fetch(pc, url); err != nil || a.status != 503 || !strings.Contains(a.body, "dev is moving") {
		t.Errorf("web in a paused dev: %+v %v", a, err)
	}
	if st := r.status(t); len(st.Pauses) != 1 || st.Pauses[0].Env != "dev" || st.Pauses[0].App != "" || st.Pauses[0].By != "admin" {
		t.Errorf("status pauses: %+v", st.Pauses)
	}
	var detail api.AppDetail
	if err := as["paul"].Get(ctx, "/api/v1/apps/web", &detail); err != nil || len(detail.Pauses) != 1 {
		t.Errorf("web's detail: pauses %+v, %v", detail.Pauses, err)
	}

	// socle stops, keeping its apps and proxy process; meanwhile the
	// environment is resumed in the store (by another socle of the same
	// store, say). The next socle adopts the proxy, which kept serving
	// the page, and sets its pauses from the store.
	r.stop()
	if a, err := fetch(pc, url); err != nil || a.status != 503 {
		t.Errorf("while socle is away: %+v %v, want the page still", a, err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(data, "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePause(ctx, "", "dev", &store.AuditRecord{Actor: "another-socle", Action: "env.resumed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetPause(ctx, store.Pause{App: "web", Env: "dev", Message: "web alone", By: "another-socle"}, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg.KeepRunning = false
	r = startWith(t, cfg)
	defer r.stop()
	if got := r.proxySup.PID(); got != pid {
		t.Errorf("the second socle runs proxy %d, want %d adopted", got, pid)
	}
	r.waitFor(t, "the proxy to serve the store's pauses", func(Status) bool {
		a, err := fetch(pc, url)
		return err == nil && a.status == 503 && strings.Contains(a.body, "web alone")
	})
	if a, err := fetch(pc, "http://api.dev.localhost/"); err != nil || strings.Contains(a.body, "Down for maintenance") {
		t.Errorf("api in dev, no longer paused: %+v %v", a, err)
	}
}
