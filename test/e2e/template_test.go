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

	"github.com/socle-dev/socle/internal/api"
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

	// The worker template's app runs too.
	if out, code := s.cli(t, "new", "mailer", "--template", "worker", "--set", "owner=bookings", "--set", "queue=mails", "--user", "marco"); code != 0 {
		t.Fatalf("socle new mailer: exit %d:\n%s", code, out)
	}
	s.waitUnit(t, "mailer", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced && u.Ready == 1 })

	// A local edit, then version 2 of the template: status says payments
	// is behind, the upgrade keeps the edit and takes the template's.
	gitOut(t, repo, "reset", "-q", "--hard")
	edit(t, repo, "apps/payments/main.go", "\tmux.HandleFunc(\"/readyz\"", "\tmux.HandleFunc(\"/pay\", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, \"paid\") })\n\tmux.HandleFunc(\"/readyz\"")
	gitCommit(t, repo, "payments: a route of its own")
	edit(t, repo, "templates/go-service/files/main.go", "listening on :%s", "listening on port %s")
	edit(t, repo, "templates/go-service/template.yaml", "version: 1", "version: 2")
	gitCommit(t, repo, "go-service v2")
	s.hook(t)
	deadline = time.Now().Add(time.Minute)
	for {
		out, code = s.cli(t, "template", "status", "--user", "marco")
		if code == 0 && strings.Contains(out, "behind by 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("template status does not show payments behind: exit %d\n%s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, code = s.cli(t, "template", "upgrade", "payments", "--user", "marco")
	if code != 0 || !strings.Contains(out, "+\tlog.Printf(\"payments %s listening on port %s\"") || !strings.Contains(out, "Committed") {
		t.Fatalf("template upgrade: exit %d\n%s", code, out)
	}
	if main := gitOut(t, repo, "show", "HEAD:apps/payments/main.go"); !strings.Contains(main, `"/pay"`) || !strings.Contains(main, "listening on port") {
		t.Errorf("main.go after the upgrade:\n%s", main)
	}

	// An edit of the line version 3 changes: refused, the conflict shown.
	gitOut(t, repo, "reset", "-q", "--hard")
	edit(t, repo, "apps/payments/main.go", "listening on port %s", "up on %s")
	gitCommit(t, repo, "payments: its own log line")
	edit(t, repo, "templates/go-service/files/main.go", "listening on port %s", "serving on port %s")
	edit(t, repo, "templates/go-service/template.yaml", "version: 2", "version: 3")
	gitCommit(t, repo, "go-service v3")
	before := head(t, repo)
	out, code = s.cli(t, "template", "upgrade", "payments", "--user", "marco")
	if code != 1 || !strings.Contains(out, "<<<<<<< app payments") || !strings.Contains(out, ">>>>>>> template go-service v3") || !strings.Contains(out, "nothing is committed") {
		t.Errorf("a conflicting upgrade: exit %d\n%s", code, out)
	}
	if head(t, repo) != before {
		t.Errorf("a conflicting upgrade committed")
	}
}

// edit replaces old with new in a file of repo's working tree.
func edit(t *testing.T, repo, file, old, new string) {
	t.Helper()
	p := filepath.Join(repo, file)
	b, err := os.ReadFile(p)
	if err != nil || !strings.Contains(string(b), old) {
		t.Fatalf("%s does not hold %q (%v)", file, old, err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
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
