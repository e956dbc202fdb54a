package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/syncbuf"
	"github.com/socle-dev/socle/test/pgtest"
)

var (
	upAddr  = regexp.MustCompile(`socle is up on (http://[0-9.:]+)`)
	upToken = regexp.MustCompile(`admin token +in (\S+):`)
)

// TestMain keeps the tests away from the user's own socle config and token.
func TestMain(m *testing.M) {
	// socle up runs its own executable as `socle proxy`: here, this test
	// binary.
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		os.Exit(Main(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "socle-cli-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("SOCLE_CONFIG", filepath.Join(dir, "config.json"))
	os.Unsetenv("SOCLE_TOKEN")
	os.Unsetenv("SOCLE_SERVER")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestUpStatusPlan runs `socle up` on the demo platform, then the CLI's
// status against it, then an offline plan against the state it recorded:
// the CLI and the server agree that nothing is left to do.
func TestUpStatusPlan(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	// The demo's stacks are applied by test/e2e (TestDemoLandingZone);
	// here they would only run terraform beside the apps, and race the
	// plan below for their run locks.
	url, admin, data, out := startUp(t, "--apply-stacks=false")
	if !strings.Contains(out.String(), "Created the demo platform repository") {
		t.Errorf("up did not create the demo repository:\n%s", out.String())
	}
	// The banner names the demo's apps that serve HTTP, in dev; the
	// worker serves nothing.
	if m := regexp.MustCompile(`(?m)^  apps +(.*)$`).FindStringSubmatch(out.String()); m == nil ||
		!regexp.MustCompile(`^http://api\.dev\.localhost:\d+, http://web\.dev\.localhost:\d+ \(once built\)$`).MatchString(m[1]) {
		t.Errorf("the banner's apps line does not name api and web in dev:\n%s", out.String())
	}
	if _, e, code := run(t, "status", "--server", url); code != ExitError || !strings.Contains(e, "socle login") ||
		!strings.Contains(e, "export SOCLE_TOKEN=$(cat "+filepath.Join(data, "admin.token")+")") {
		t.Errorf("status without a token does not say where the admin token is: %d %s", code, e)
	}
	deadline := time.Now().Add(30 * time.Second)
	var status string
	for {
		s, e, code := run(t, "status", "--server", url, "--token", admin)
		if code != 0 {
			t.Fatalf("status: %d %s", code, e)
		}
		if strings.Contains(s, "In force") {
			status = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no revision in force:\n%s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"Start from socle's demo platform", "web     dev", "worker  sandbox"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	// worker @ sandbox is denied by the demo's policy: it was never applied,
	// so it is still to create; everything else is as recorded.
	plan, e, code := run(t, "plan", filepath.Join(data, "repo"), "--data", data)
	if code != ExitProblems || !strings.Contains(plan, "Plan: 1 to create, 0 to update, 0 to delete, 4 unchanged.") || !strings.Contains(plan, "✗ deny  sandbox-memory-limits") {
		t.Errorf("plan against the recorded state (%d, %s):\n%s", code, e, plan)
	}
	if _, e, code := run(t, "status", "--server", "http://127.0.0.1:1"); code != ExitError || !strings.Contains(e, "is `socle up` running?") {
		t.Errorf("status without a server: %d %s", code, e)
	}
}

// startUp runs `socle up` on the demo platform until the test ends and
// returns its URL, the first admin token, its data directory and output.
func startUp(t *testing.T, args ...string) (url, admin, data string, out *syncbuf.Buffer) {
	t.Helper()
	data, _ = filepath.Abs(t.TempDir())
	return startUpIn(t, data, args...)
}

// startUpIn is startUp on the data directory data.
func startUpIn(t *testing.T, data string, args ...string) (url, admin, _ string, out *syncbuf.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncbuf.Buffer{}
	var errOut syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		// Without the sandbox, as the server's tests: its sandboxed builds
		// start from an empty cache per app (the standard library built
		// again for each), and internal/sandbox, runtime/local, artifact
		// and test/readme (socle up as the README runs it) test it.
		done <- Run(ctx, append([]string{"up", "--data", data, "--addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0", "--poll", "1h", "--insecure-no-sandbox"}, args...), out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("up exited %d: %s", code, errOut.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for url == "" {
		if m := upAddr.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("socle up did not start:\n%s\n%s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := upToken.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("up does not say where the first admin token is:\n%s", out.String())
	}
	b, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(m[1]); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", m[1], fi.Mode().Perm())
	}
	return url, strings.TrimSpace(string(b)), data, out
}

// TestAppsLine: up's banner names the apps there are, says when there is
// none, and keeps to a line when there are many.
func TestAppsLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hosts []string
		err   error
		want  string
	}{
		{"demo", []string{"api.dev.localhost", "web.dev.localhost"}, nil,
			"http://api.dev.localhost:7080, http://web.dev.localhost:7080 (once built)"},
		{"none", nil, nil,
			"none yet in an environment that runs here on its own (each will be at http://<app>.<env>.localhost:7080)"},
		{"many", []string{"a.dev.localhost", "b.dev.localhost", "c.dev.localhost", "d.dev.localhost", "e.dev.localhost"}, nil,
			"http://a.dev.localhost:7080, http://b.dev.localhost:7080, http://c.dev.localhost:7080 and 2 more (once built)"},
		{"head does not load", nil, errors.New("revision abc1234 does not validate"),
			"http://<app>.<env>.localhost:7080 (the repository's head does not load: socle status says why)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := appsLine(tc.hosts, tc.err, "7080"); got != tc.want {
				t.Errorf("appsLine = %q\nwant        %q", got, tc.want)
			}
		})
	}
}

// TestHostileTextEscaped commits to a running socle with a commit subject
// and an author name made to take over the operator's terminal, and reads
// them back through the CLI: human output shows them escaped, -o json
// exactly; the release the commit brings names its author.
func TestHostileTextEscaped(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	url, admin, data, _ := startUp(t)
	as := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(t, append(args, "--server", url, "--token", admin)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	waitOut := func(what string, cond func(string) bool, args ...string) string {
		t.Helper()
		// A bound on liveness: api's first build downloads its modules,
		// over 90 s with empty caches beside the race-enabled suite.
		deadline := time.Now().Add(4 * time.Minute)
		for {
			out := as(args...)
			if cond(out) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The first release of api in dev, before the hostile commit: its
	// author is the demo repository's.
	waitOut("api in dev", func(s string) bool { return strings.Contains(s, "Succeeded") }, "releases", "api", "--env", "dev")

	repo := filepath.Join(data, "repo")
	p := filepath.Join(repo, "apps", "api", "socle.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "replicas: {min: 2, max: 6}", "replicas: {min: 1, max: 6}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	const evil = "\x1b]0;pwned\x07\x1b[2J\rok \u202eexe.txt"
	git := exec.Command("git", "-c", "user.name=Mallory "+evil, "-c", "user.email=mallory@example.com", "commit", "-qam", "api: "+evil)
	git.Dir = repo
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	if _, e, code := run(t, "deploy", "api", "--env", "dev", "--server", url, "--token", admin); code != 0 {
		t.Fatalf("deploy: %s", e)
	}

	status := waitOut("the hostile revision", func(s string) bool { return strings.Contains(s, `api: \x1b]0;pwned`) }, "status")
	rels := waitOut("the release of the hostile revision", func(s string) bool { return strings.Contains(s, "brings 1 commit") }, "releases", "api", "--env", "dev")
	for name, out := range map[string]string{"status": status, "releases": rels} {
		if needsEscape(out, true) {
			t.Errorf("socle %s prints a raw control character:\n%q", name, out)
		}
		if !strings.Contains(out, `\x1b[2J\rok \u202eexe.txt`) {
			t.Errorf("socle %s does not show the escaped subject:\n%s", name, out)
		}
	}
	// Every release names who it is for: the demo's author, then Mallory.
	for _, line := range strings.Split(rels, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 6 && f[0] != "Release" && (f[6] == "-" || f[6] == "") {
			t.Errorf("a release without an author: %q", line)
		}
	}
	if !strings.Contains(rels, `Mallory \x1b]0;pwned\a`) {
		t.Errorf("releases does not name the commit's author:\n%s", rels)
	}
	var items []struct{ Author string }
	if err := json.Unmarshal([]byte(as("releases", "api", "--env", "dev", "-o", "json")), &items); err != nil || len(items) < 2 || items[0].Author != "Mallory "+evil {
		t.Errorf("releases -o json: %+v, %v; want the author exactly", items, err)
	}
}

// TestUpMakesAnAdminTokenForANewPlatform: `socle up --repo` on a platform
// of one's own makes the first admin's token too, for the first admin of
// its teams.yaml, and says so.
func TestUpMakesAnAdminTokenForANewPlatform(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo := filepath.Join(t.TempDir(), "platform")
	if _, _, code := run(t, "init", repo); code != 0 {
		t.Fatal("init failed")
	}
	url, admin, _, out := startUp(t, "--repo", repo, "--apply-stacks=false") // the demo's stacks are not this test's
	if !strings.Contains(out.String(), "(admin's; revoke it once you have your own)") {
		t.Errorf("up does not say whose token it made:\n%s", out.String())
	}
	if s, e, code := run(t, "token", "list", "--server", url, "--token", admin); code != 0 || !strings.Contains(s, "initial admin token") {
		t.Errorf("the token does not work as an admin's: %d %s %s", code, s, e)
	}
}

// TestUpClockFile: --clock-file is for tests, so not in up's help, and a
// file that is missing or holds no duration stops up before it starts,
// naming the file and what is wrong.
func TestUpClockFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "clock")
	if err := os.WriteFile(bad, []byte("tomorrow\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		want []string
	}{
		{bad, []string{"--clock-file", bad, `"tomorrow"`}},
		{filepath.Join(dir, "missing"), []string{"--clock-file", filepath.Join(dir, "missing"), "no such file"}},
	} {
		_, e, code := run(t, "up", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0", "--clock-file", tc.file)
		if code != ExitUsage {
			t.Errorf("up --clock-file %s: exit %d, want %d: %s", tc.file, code, ExitUsage, e)
		}
		for _, w := range tc.want {
			if !strings.Contains(e, w) {
				t.Errorf("up --clock-file %s: the error lacks %q: %s", tc.file, w, e)
			}
		}
	}
	if out, _, _ := run(t, "up", "--help"); strings.Contains(out, "clock") || !strings.Contains(out, "--progress-deadline") {
		t.Errorf("up's help shows the clock file, or is not the help:\n%s", out)
	}
}

// TestUpOnPostgres runs `socle up --store postgres://…` on a real
// PostgreSQL server: the empty database is migrated, the demo's first
// revision is recorded there (and comes back through the API), and the
// data directory holds no SQLite file.
func TestUpOnPostgres(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	srv := pgtest.Start(t)
	name := srv.CreateDB(t, "")
	url, admin, data, out := startUp(t, "--apply-stacks=false", "--store", srv.URL(name))
	if !strings.Contains(out.String(), "SOCLE_STORE=<the --store URL> socle token create") || strings.Contains(out.String(), srv.Password) {
		t.Errorf("the banner does not say how to make a token in the PostgreSQL store, or prints its password:\n%s", out.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, e, code := run(t, "status", "--server", url, "--token", admin)
		if code != 0 {
			t.Fatalf("status: %d %s", code, e)
		}
		if strings.Contains(s, "In force") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no revision in force:\n%s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var revisions, events, tokens int
	if err := srv.Connect(t, name).QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM revisions), (SELECT count(*) FROM events), (SELECT count(*) FROM tokens)`).
		Scan(&revisions, &events, &tokens); err != nil {
		t.Fatal(err)
	}
	if revisions == 0 || events == 0 || tokens != 1 {
		t.Errorf("the PostgreSQL database has %d revisions, %d events, %d tokens; want some, some and the admin's", revisions, events, tokens)
	}
	if _, err := os.Stat(filepath.Join(data, "socle.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socle up --store made %s/socle.db (%v)", data, err)
	}
}

func TestUpRefusesAnotherStore(t *testing.T) {
	if _, e, code := run(t, "up", "--data", t.TempDir(), "--store", "mysql://ada:pw@db/socle"); code != ExitUsage || !strings.Contains(e, "--store: want a postgres://") {
		t.Errorf("up --store mysql://…: exit %d, %s", code, e)
	}
}

// TestTokenCreateInPostgresStore: with SOCLE_STORE, the commands that
// write a data directory's store without a server (token create --data)
// write the PostgreSQL database, as socle up does.
func TestTokenCreateInPostgresStore(t *testing.T) {
	srv := pgtest.Start(t)
	name := srv.CreateDB(t, "")
	t.Setenv("SOCLE_STORE", srv.URL(name))
	if _, e, code := run(t, "token", "create", "--user", "ada", "--data", t.TempDir()); code != 0 {
		t.Fatalf("token create: %d %s", code, e)
	}
	var owner string
	if err := srv.Connect(t, name).QueryRow(context.Background(), `SELECT owner FROM tokens`).Scan(&owner); err != nil || owner != "ada" {
		t.Errorf("the token in PostgreSQL: %q, %v", owner, err)
	}
	t.Setenv("SOCLE_STORE", "sqlite:///tmp/x")
	if _, e, code := run(t, "token", "create", "--user", "ada", "--data", t.TempDir()); code != ExitUsage || !strings.Contains(e, "SOCLE_STORE: want a postgres://") {
		t.Errorf("token create with SOCLE_STORE=sqlite://…: %d %s", code, e)
	}
}
