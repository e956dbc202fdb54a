package e2e

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoTemplates are the demo's templates/ files.
func demoTemplates(t *testing.T) files {
	t.Helper()
	out := files{}
	root := "../../examples/platform"
	err := filepath.WalkDir(filepath.Join(root, "templates"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNewAppAnswers runs `socle new payments --template go-service --set
// owner=bookings` through the real binary against a real socle: a
// developer of another team is refused, a missing parameter is named, and
// a developer of bookings makes a commit after which payments answers
// through the proxy in dev with no other step. The time from the command
// to the first answer is logged (a figure, not an assertion).
func TestNewAppAnswers(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "a platform with templates", demoTemplates(t), files{
		"socle.yaml": oneEnvPlatform,
		"teams.yaml": `apiVersion: socle.dev/v1
kind: Teams
teams:
  - name: platform
    members: [{user: ann, role: admin}]
  - name: bookings
    members: [{user: marco, email: marco@example.com, role: developer}]
  - name: guests
    members: [{user: tom, role: developer}]
`,
	})
	s := start(t, repo, t.TempDir())
	defer s.stop(t)

	out, code := s.cli(t, "new", "payments", "--template", "go-service", "--set", "owner=bookings", "--user", "tom")
	if code != 1 || !strings.Contains(out, "tom may not create an app for team bookings") {
		t.Errorf("tom for bookings: exit %d:\n%s", code, out)
	}
	out, code = s.cli(t, "new", "payments", "--template", "go-service", "--user", "marco")
	if code != 1 || !strings.Contains(out, "needs the parameter owner") {
		t.Errorf("no owner, no terminal: exit %d:\n%s", code, out)
	}

	start := time.Now()
	out, code = s.cli(t, "new", "payments", "--template", "go-service", "--set", "owner=bookings", "--user", "marco")
	if code != 0 || !strings.Contains(out, "+ payments @ dev") || !strings.Contains(out, "Committed") {
		t.Fatalf("socle new: exit %d:\n%s", code, out)
	}
	committed := time.Since(start)
	if got := strings.TrimSpace(gitOut(t, repo, "log", "-1", "--format=%an <%ae>|%s")); got != "marco <marco@example.com>|new app payments from template go-service v1" {
		t.Errorf("the commit: %q", got)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+s.proxyPort+"/", nil)
		req.Host = "payments.dev.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(b), "Hello from payments") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("payments does not answer in dev after 3 minutes:\n%s", tail(s.log.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("socle new → commit: %s; → first answer of payments through the proxy in dev: %s", committed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}
