package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/syncbuf"
)

var (
	upAddr  = regexp.MustCompile(`socle is up on (http://[0-9.:]+)`)
	upToken = regexp.MustCompile(`admin token +in (\S+):`)
)

// TestMain keeps the tests away from the user's own socle config and token.
func TestMain(m *testing.M) {
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
	url, admin, data, out := startUp(t)
	if !strings.Contains(out.String(), "Created the demo platform repository") {
		t.Errorf("up did not create the demo repository:\n%s", out.String())
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
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncbuf.Buffer{}
	var errOut syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"up", "--data", data, "--addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0", "--poll", "1h"}, args...), out, &errOut)
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
	url, admin, _, out := startUp(t, "--repo", repo)
	if !strings.Contains(out.String(), "(admin's; revoke it once you have your own)") {
		t.Errorf("up does not say whose token it made:\n%s", out.String())
	}
	if s, e, code := run(t, "token", "list", "--server", url, "--token", admin); code != 0 || !strings.Contains(s, "initial admin token") {
		t.Errorf("the token does not work as an admin's: %d %s %s", code, s, e)
	}
}
