package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/apitest"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/source"
)

// The one socle and the one browser every test shares: starting them, and
// building the demo's apps, is most of the run's time.
var (
	socle    *server.Server
	baseURL  string // http://127.0.0.1:port
	repoDir  string // the platform repository socle follows
	browser  context.Context
	artifact string // where screenshots go

	tokensMu sync.Mutex
	tokens   = map[string]string{}
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "socle-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Searchable by the postgres user api's database server runs as when
	// the tests run as root, so that the server's data stays under tmp
	// and goes with it.
	if err := os.Chmod(tmp, 0o711); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	artifact = artifactsDir()
	if err := os.MkdirAll(artifact, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logFile, err := os.Create(filepath.Join(artifact, "socle.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logFile.Close()

	ctx, stop := context.WithCancel(context.Background())
	if repoDir, err = testPlatform(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "writing the test platform:", err)
		stop()
		return 1
	}
	data := filepath.Join(tmp, "data")
	// socle applies stacks and provisions resources (api's database) as
	// `socle up` does; the demo has no stack until a
	// test commits one (stacks_approval_test.go and stacks_test.go, which run last).
	os.MkdirAll(data, 0o755)
	socle, err = server.New(ctx, server.Config{Repo: repoDir, Data: data, Addr: "127.0.0.1:0", ProxyAddr: "127.0.0.1:0", ApplyStacks: true, ProvisionResources: true,
		Poll: time.Hour, Resync: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(logFile, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting socle:", err)
		stop()
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- socle.Run(ctx) }()
	baseURL = "http://" + socle.Addr()
	defer func() {
		stop()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "socle stopped with", err)
		}
	}()

	exe, err := chromium()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(1440, 900),
		chromedp.NoSandbox, // Debian's Chromium refuses its sandbox as root, as CI runs
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	var cancelBrowser context.CancelFunc
	browser, cancelBrowser = chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		fmt.Fprintln(os.Stderr, "starting chromium:", err)
		return 1
	}
	return m.Run()
}

// chromium finds Debian's Chromium (scripts/test installs it).
func chromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("the browser tests need Debian's chromium: apt-get install chromium (scripts/test does)")
}

// artifactsDir is where the tests keep what a person may want to look at.
func artifactsDir() string {
	if d := os.Getenv("SOCLE_ARTIFACTS"); d != "" {
		return filepath.Join(d, "web")
	}
	root, _ := filepath.Abs("../..")
	return filepath.Join(root, ".artifacts", "web")
}

// testPlatform writes the demo platform with gates a test can pass in
// seconds: preprod without soak; prod with a two-second soak and one
// approval, and neither windows nor freezes. It returns the working
// repository socle follows.
func testPlatform(tmp string) (string, error) {
	src := filepath.Join(tmp, "src")
	if err := os.CopyFS(src, os.DirFS("../../examples/platform")); err != nil {
		return "", err
	}
	p := filepath.Join(src, "socle.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := string(b)
	for _, edit := range [][2]string{
		{"      from: dev\n      soak: 10m\n", "      from: dev\n"},
		{"      soak: 1h\n", "      soak: 2s\n"},
		{"      windows:\n        - \"Tue,Thu 10:00-16:00 Europe/Paris\"\n", ""},
	} {
		if !strings.Contains(s, edit[0]) {
			return "", fmt.Errorf("examples/platform/socle.yaml no longer holds %q: update the test platform", edit[0])
		}
		s = strings.Replace(s, edit[0], edit[1], 1)
	}
	if i := strings.Index(s, "\nfreezes:"); i >= 0 {
		j := strings.Index(s[i+1:], "\n\n")
		s = s[:i+1] + s[i+1+j+2:]
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		return "", err
	}
	dst := filepath.Join(tmp, "repo")
	_, err = source.Init(context.Background(), src, dst, "Ann Example", "ann@example.com", "Start from socle's demo platform")
	return dst, err
}

// token returns an API token for user, made once. It is the one place
// that knows how tokens are made, as `socle token create` does.
func token(t *testing.T, user string) string {
	t.Helper()
	tokensMu.Lock()
	defer tokensMu.Unlock()
	if tok, ok := tokens[user]; ok {
		return tok
	}
	tok, _, err := auth.Create(context.Background(), socle.Store(), user, "browser test", "admin", time.Time{})
	if err != nil {
		t.Fatalf("creating a token for %s: %v", user, err)
	}
	tokens[user] = tok
	return tok
}

// call calls the API as user (the setup a test needs before the browser
// takes over), decoding a 2xx answer into out.
func call(t *testing.T, user, method, path string, body, out any) error {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, baseURL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token(t, user))
	req.Header.Set("Content-Type", "application/json")
	// What the tests send and get is checked against the OpenAPI document.
	resp, err := (&http.Client{Transport: apitest.Transport(t, nil)}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// cellOf reads one cell of the matrix through the API.
func cellOf(t *testing.T, app, env string) api.AppEnv {
	t.Helper()
	var d api.AppDetail
	if err := call(t, "admin", http.MethodGet, "/api/v1/apps/"+app, nil, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Envs {
		if c.Env == env {
			return c
		}
	}
	t.Fatalf("%s has no cell in %s", app, env)
	return api.AppEnv{}
}

// waitCell waits until a cell, read through the API, satisfies ok.
func waitCell(t *testing.T, app, env, what string, timeout time.Duration, ok func(api.AppEnv) bool) api.AppEnv {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := cellOf(t, app, env)
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s @ %s: timed out waiting for %s; the cell is %+v", app, env, what, c)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// commit appends a line to a file of the platform repository and commits
// it, as a developer pushing a change.
func commit(t *testing.T, file, line, msg string) string {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(repoDir, file), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, line)
	f.Close()
	git(t, "commit", "-qam", msg)
	return git(t, "rev-parse", "HEAD")
}

// git runs git in the platform repository as Bob, a developer, and
// returns its output.
func git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Bob Example", "-c", "user.email=bob@example.com"}, args...)...)
	cmd.Dir = repoDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// tab is one browser tab of a user's own browser context (its own
// cookies), closed at the end of the test.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// newUser opens a tab in a fresh browser context, so that each user has
// their own cookie jar.
func newUser(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return &tab{t: t, ctx: ctx}
}

// another opens a second tab in the same browser context: same cookies.
func (b *tab) another() *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatal(err)
	}
	return &tab{t: b.t, ctx: ctx}
}

// do runs actions with a deadline, failing the test with what it did.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(b.t.Name(), "/", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page, awaiting it when it
// is a promise.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true in the page.
func (b *tab) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	b.do("waiting for "+what, chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout))(ctx, tg)
		return chromedp.Void{}, err
	}))
}

func (b *tab) open(path string) {
	b.t.Helper()
	b.do("opening "+path, chromedp.Navigate(baseURL+path), chromedp.WaitReady("body"))
}

// status is the HTTP status of the document shown, read from the
// browser's navigation timing.
func (b *tab) status() int {
	return eval[int](b, `performance.getEntriesByType("navigation")[0].responseStatus`)
}

// login signs in on the login page with user's token.
func (b *tab) login(user string) {
	b.t.Helper()
	b.open("/login")
	b.do("signing in as "+user,
		chromedp.SendKeys("#token", token(b.t, user)),
		chromedp.Click(`form[action="/login"] button[type=submit]`),
		chromedp.WaitVisible("#user"))
	if got := eval[string](b, `document.getElementById("user").textContent`); got != user {
		b.t.Fatalf("signed in as %q, want %q", got, user)
	}
}

// text is the visible text of the first element matching sel.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

// shot saves a full-page screenshot as <artifacts>/<name>.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(artifact, name+".png"), png, 0o644); err != nil {
		b.t.Errorf("saving screenshot %s: %v", name, err)
	}
}

// cellSel selects a cell of the matrix or of an app page.
func cellSel(app, env string) string { return fmt.Sprintf(`[data-cell="%s/%s"]`, app, env) }
