package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var assetVersion = regexp.MustCompile(`\?v=[0-9a-f]{12}`)

func newTestPortal(t *testing.T) (*httptest.Server, *fakeAPI) {
	t.Helper()
	f := &fakeAPI{}
	h := New(Config{API: f, Auth: fakeAuth{}, Stacks: fakeStackAccess{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return testNow }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, f
}

// get fetches a page as the holder of token ("" for nobody), without
// following redirects.
func get(t *testing.T, srv *httptest.Server, token, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if token != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: token})
	}
	return send(t, req)
}

func post(t *testing.T, srv *httptest.Server, token, path string, form url.Values, origin string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: token})
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestNoTokenIs401(t *testing.T) {
	srv, _ := newTestPortal(t)
	for _, p := range []string{"/", "/apps/api", "/apps/api/envs/prod/confirm?action=approve", "/revisions", "/activity", "/dora", "/costs", "/stacks", "/stacks/hub/connectivity", "/nowhere"} {
		resp, body := get(t, srv, "", p)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `href="/login`) {
			t.Errorf("GET %s without a token: %d, want 401 with a link to /login", p, resp.StatusCode)
		}
		if resp, _ := get(t, srv, "not-a-token", p); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a bad token: %d, want 401", p, resp.StatusCode)
		}
	}
	resp, _ := post(t, srv, "", "/apps/api/envs/dev/deploy", url.Values{}, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST deploy without a token: %d", resp.StatusCode)
	}
	for _, p := range []string{"/login", "/static/style.css", "/static/app.js"} {
		if resp, _ := get(t, srv, "", p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200 (public)", p, resp.StatusCode)
		}
	}
}

func TestLoginLogout(t *testing.T) {
	srv, _ := newTestPortal(t)
	resp, body := post(t, srv, "", "/login", url.Values{"token": {"wrong"}}, "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not accepted") {
		t.Errorf("a wrong token: %d\n%s", resp.StatusCode, body)
	}
	resp, body = post(t, srv, "", "/login", url.Values{"token": {"flood"}}, "")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed attempts") {
		t.Errorf("a rate-limited login: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = post(t, srv, "", "/login", url.Values{"token": {"tok-marco"}, "next": {"/apps/api"}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/apps/api" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == CookieName {
			c = k
		}
	}
	if c == nil || c.Value != "tok-marco" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("login cookie: %+v", c)
	}
	resp, _ = post(t, srv, "", "/login", url.Values{"token": {"tok-marco"}, "next": {"//evil.example/"}}, "")
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("login followed next to %q", loc)
	}
	resp, _ = post(t, srv, "tok-marco", "/logout", nil, "")
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d %v", resp.StatusCode, resp.Cookies())
	}
}

// TestPages renders every page as a developer and compares it with its
// golden file (go test ./internal/web -update rewrites them).
func TestPages(t *testing.T) {
	srv, _ := newTestPortal(t)
	for _, tc := range []struct{ name, token, path string }{
		{"login", "", "/login"},
		{"home", "tok-marco", "/"},
		{"home-filtered", "tok-marco", "/?team=bookings&zone=apps-prod&q=ap"},
		{"app", "tok-marco", "/apps/api"},
		{"app-approver", "tok-sofia", "/apps/api"},
		{"confirm-approve", "tok-sofia", "/apps/api/envs/prod/confirm?action=approve"},
		{"confirm-promote-developer", "tok-marco", "/apps/api/envs/prod/confirm?action=promote"},
		{"revisions", "tok-marco", "/revisions"},
		{"revision", "tok-marco", "/revisions/9a8b7c6d5e4f30219a8b7c6d"},
		{"activity", "tok-marco", "/activity"},
		{"activity-filtered", "tok-marco", "/activity?actor=sofia"},
		{"dora", "tok-marco", "/dora"},
		{"costs", "tok-marco", "/costs"},
		{"stacks", "tok-marco", "/stacks"},
		{"stacks-mine", "tok-sofia", "/stacks?approve=mine"},
		{"stack-sensitive", "tok-marco", "/stacks/hub/connectivity"},
		{"stack-planned", "tok-marco", "/stacks/network/dev"},
		{"stack-drift", "tok-marco", "/stacks/network/preprod"},
		{"stack-denied", "tok-marco", "/stacks/network/prod"},
		{"stack-pending", "tok-marco", "/stacks/edge/dev"},
		{"stack-awaiting-approval", "tok-sofia", "/stacks/vpn/prod"},
		{"stack-awaiting-approval-developer", "tok-marco", "/stacks/vpn/prod"},
		{"stack-window-closed", "tok-sofia", "/stacks/dns/prod"},
		{"stack-frozen", "tok-ada", "/stacks/firewall/preprod"},
		{"stack-locked-admin", "tok-ada", "/stacks/network/dev"},
		{"stack-unlock", "tok-ada", "/stacks/network/dev/unlock"},
		{"stack-log", "tok-marco", "/stacks/network/dev/logs/20261124T092800.000000000Z-plan.log"},
		{"stack-log-running", "tok-marco", "/stacks/network/dev/logs/20261124T092930.000000000Z-apply.log"},
		{"stack-log-unknown", "tok-marco", "/stacks/network/dev/logs/nope.log"},
		{"not-found", "tok-marco", "/apps/nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, srv, tc.token, tc.path)
			if want := http.StatusOK; resp.StatusCode != want && tc.name != "not-found" && tc.name != "stack-log-unknown" {
				t.Errorf("GET %s: %d\n%s", tc.path, resp.StatusCode, body)
			}
			// The assets' versions change with every edit of the CSS or
			// the script; the pages' goldens should not.
			body = assetVersion.ReplaceAllString(body, "?v=HASH")
			golden(t, filepath.Join("pages", tc.name+".html"), []byte(body))
		})
	}
}

// TestActivityLinksStacks: an audit record of a stack instance (the
// store's app "stack:hub", its instance as env) links to the stack's
// page, not to an app page that does not exist.
func TestActivityLinksStacks(t *testing.T) {
	srv, _ := newTestPortal(t)
	_, body := get(t, srv, "tok-marco", "/activity")
	if !strings.Contains(body, `<a href="/stacks/hub/connectivity">stack:hub</a>`) || strings.Contains(body, `href="/apps/stack:`) {
		t.Errorf("the activity's stack record does not link to the stack's page:\n%s", body)
	}
	if !strings.Contains(body, `<a href="/apps/api">api</a>`) {
		t.Errorf("the activity's app records no longer link to the app's page:\n%s", body)
	}
}

func TestCostsWithoutData(t *testing.T) {
	srv, f := newTestPortal(t)
	f.noCosts = true
	resp, body := get(t, srv, "tok-marco", "/costs")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "No cost report: no cost data imported yet") {
		t.Errorf("costs without data: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, "1970") || !strings.Contains(body, "No anomaly: there is no cost data to look in yet.") {
		t.Errorf("costs without data speak of anomalies as:\n%s", body)
	}
}

func TestControlsFollowTheRole(t *testing.T) {
	srv, _ := newTestPortal(t)
	_, dev := get(t, srv, "tok-marco", "/apps/api")
	_, appr := get(t, srv, "tok-sofia", "/apps/api")
	prod := func(body string) string {
		_, after, _ := strings.Cut(body, `id="env-prod"`)
		return after
	}
	if strings.Contains(prod(dev), `data-action="approve"`) {
		t.Error("a developer sees an approve button on prod")
	}
	if !strings.Contains(prod(appr), `data-action="approve"`) {
		t.Error("an approver sees no approve button on prod")
	}
	if !strings.Contains(dev, `data-action="deploy"`) {
		t.Error("a developer sees no deploy button on dev")
	}
	_, body := get(t, srv, "tok-marco", "/apps/api/envs/prod/confirm?action=approve")
	if strings.Contains(body, `<form method="post" action="/apps/api/envs/prod/approve"`) {
		t.Error("a developer gets an approval form")
	}
}

func TestActions(t *testing.T) {
	srv, f := newTestPortal(t)
	resp, _ := post(t, srv, "tok-sofia", "/apps/api/envs/prod/approve", url.Values{"message": {"looks good"}}, srv.URL)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/apps/api?done=approve&env=prod") {
		t.Fatalf("approve: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = post(t, srv, "tok-marco", "/apps/api/envs/dev/deploy", url.Values{"revision": {"9a8b7c6"}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deploy: %d", resp.StatusCode)
	}
	resp, _ = post(t, srv, "tok-sofia", "/apps/api/envs/prod/rollback", url.Values{"release": {"2"}, "message": {"bad"}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rollback: %d", resp.StatusCode)
	}
	f.mu.Lock()
	got := strings.Join(f.posted, "\n")
	f.blockPromote = true
	f.mu.Unlock()
	want := `POST /api/v1/apps/api/envs/prod/approvals {"message":"looks good"}
POST /api/v1/apps/api/envs/dev/deploy {"revision":"9a8b7c6"}
POST /api/v1/apps/api/envs/prod/rollback {"release":2,"message":"bad"}`
	if got != want {
		t.Errorf("the API got:\n%s\nwant:\n%s", got, want)
	}

	resp, body := post(t, srv, "tok-sofia", "/apps/api/envs/prod/promote", url.Values{"message": {"go"}}, "")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "0 of 1 approvals") || !strings.Contains(body, "Not done.") {
		t.Errorf("a blocked promotion: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = post(t, srv, "tok-sofia", "/apps/api/envs/prod/approve", url.Values{}, "http://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site post: %d, want 403", resp.StatusCode)
	}
	resp, _ = post(t, srv, "tok-sofia", "/apps/api/envs/prod/explode", url.Values{}, "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown action: %d, want 404", resp.StatusCode)
	}
}

func TestNotice(t *testing.T) {
	srv, _ := newTestPortal(t)
	_, body := get(t, srv, "tok-marco", "/apps/api?done=deploy&env=dev")
	if !strings.Contains(body, "Deploy to dev started.") {
		t.Error("no notice after a deploy")
	}
	_, body = get(t, srv, "tok-marco", "/apps/api?done=deploy&env=%3Cb%3Ehacked")
	if strings.Contains(body, "hacked") {
		t.Error("the notice shows text from the query")
	}
}

func TestSSEData(t *testing.T) {
	for _, tc := range []struct {
		contentType, body string
		want              []string
	}{
		{"text/plain; charset=utf-8", "[api.dev/r1/0] up\n[api.dev/r1/1] up\n", []string{"[api.dev/r1/0] up", "[api.dev/r1/1] up"}},
		{"text/event-stream", "data: one\n\ndata: two\n\n: keep-alive\n\ndata:three\n\n", []string{"one", "two", "three"}},
		{"text/plain", "", nil},
	} {
		if got := sseData(tc.contentType, []byte(tc.body)); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("sseData(%q, %q) = %q, want %q", tc.contentType, tc.body, got, tc.want)
		}
	}
}

// TestSafeNext: after login the portal goes only to a page of its own,
// whatever a crafted link says.
func TestSafeNext(t *testing.T) {
	t.Parallel()
	for next, want := range map[string]string{
		"/apps/web?tab=logs":     "/apps/web?tab=logs",
		"/":                      "/",
		"":                       "/",
		"//evil.example":         "/",
		"/\\evil.example":        "/",
		"/\t/evil.example":       "/",
		"/\n/evil.example":       "/",
		"https://evil.example/":  "/",
		"/api/v1/tokens":         "/",
		"javascript:alert(1)":    "/",
		"/%2F/evil.example":      "/",
		"apps/web":               "/",
		"/apps/web#frag":         "/apps/web",
		"///evil.example":        "/",
		"/./%2e/evil.example":    "/././evil.example",
		"http:/evil.example":     "/",
		"/apps/web?next=//x.org": "/apps/web?next=//x.org",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

// TestAppShowsResources: the app page shows, per environment, the
// resources the app uses with their provisioner, state and outputs; a
// secret output is "(secret)", even from an API that gave its value.
func TestAppShowsResources(t *testing.T) {
	srv, f := newTestPortal(t)
	f.clearSecrets = true
	_, body := get(t, srv, "tok-marco", "/apps/api")
	if strings.Contains(body, fakePassword) {
		t.Fatalf("the app page shows a secret output's value:\n%s", body)
	}
	section := func(env string) string {
		_, after, _ := strings.Cut(body, `id="env-`+env+`"`)
		before, _, _ := strings.Cut(after, "</section>")
		return before
	}
	dev := section("dev")
	for _, want := range []string{`<th scope="row"><code>api-db</code></th><td>postgres</td><td>builtin/postgres <small>(process)</small></td><td class="st-synced">Synced</td>`,
		`<li><code>password</code> <code class="redacted">(secret)</code></li>`, `<li><code>port</code> <code>54321</code></li>`} {
		if !strings.Contains(dev, want) {
			t.Errorf("dev's resources lack\n%s\nin:\n%s", want, dev)
		}
	}
	if strings.Contains(body, "web-cache") {
		t.Error("api's page shows web's resource")
	}
	preprod := section("preprod")
	if want := `<td class="st-failed">Failed<br><small>provisioning postgres with builtin/postgres failed: initdb: could not create directory &#34;/var/lib/socle/pg&#34;: permission denied;`; !strings.Contains(preprod, want) {
		t.Errorf("preprod's failed resource lacks\n%s\nin:\n%s", want, preprod)
	}
	if !strings.Contains(preprod, "none yet: not provisioned") {
		t.Errorf("preprod's resource, never provisioned, does not say it has no output:\n%s", preprod)
	}
	// Removed from Git, api's audit database is retained in prod: no app
	// uses it, it holds api's data.
	prod := section("prod")
	for _, want := range []string{`<th scope="row"><code>api-audit</code> <small>removed from Git</small></th>`,
		`<td class="st-orphaned">Orphaned<br><small>Retained: data-bearing resource kept in production; an admin deletes it with socle resource delete api-audit --env prod</small></td>`,
		`<li><code>password</code> <code class="redacted">(secret)</code></li>`} {
		if !strings.Contains(prod, want) {
			t.Errorf("prod's retained resource lacks\n%s\nin:\n%s", want, prod)
		}
	}
}

// TestMatrixSaysAResourceHoldsTheApp: an app waiting for a resource that
// failed shows, in its matrix cell, the engine's reason naming it, is
// coloured Failed and counted Failed in the summary, by its reason code
// (DependencyFailed); its own phase, Pending, is what the cell says.
func TestMatrixSaysAResourceHoldsTheApp(t *testing.T) {
	srv, _ := newTestPortal(t)
	_, body := get(t, srv, "tok-marco", "/")
	before, cell, _ := strings.Cut(body, `data-cell="worker/preprod"`)
	cell, _, _ = strings.Cut(cell, "</td>")
	want := `<span class="reason">Waiting: resource worker-db (postgres) failed: provisioning postgres with builtin/postgres failed: initdb:`
	if !strings.Contains(cell, `<span class="phase">Pending</span>`) || !strings.Contains(cell, want) {
		t.Errorf("worker's preprod cell:\n%s\nwant the reason\n%s", cell, want)
	}
	if !strings.HasSuffix(before, `<td class="cell ph-failed" `) {
		t.Errorf("worker's preprod cell is not coloured failed: %s", before[max(0, len(before)-60):])
	}
	_, summary, _ := strings.Cut(body, `<p class="summary">`)
	summary, _, _ = strings.Cut(summary, "</p>")
	if !strings.Contains(summary, `<span class="ph ph-failed">1 Failed</span>`) || strings.Contains(summary, "Pending") {
		t.Errorf("the summary does not count worker in preprod as failed: %s", summary)
	}
}
