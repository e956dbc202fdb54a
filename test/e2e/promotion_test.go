package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	_ "modernc.org/sqlite"
)

// receiver is a local webhook endpoint that keeps what it gets.
type receiver struct {
	mu     sync.Mutex
	kinds  []string
	bodies []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev struct{ Kind, App, Env string }
		b, _ := io.ReadAll(req.Body)
		json.Unmarshal(b, &ev)
		r.mu.Lock()
		r.kinds = append(r.kinds, ev.Kind+" "+ev.App+"@"+ev.Env)
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.kinds, "\n")
}

// gotBodies is the bodies of what it got, one a line.
func (r *receiver) gotBodies() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies, "\n")
}

// promotionPlatform is dev (auto) → preprod → prod (a 10 minute soak, one
// approval), with notifications to hook. The soak is a real one: the tests
// move socle's clock past it (s.clock.advance); one that waited for it
// would take ten minutes.
func promotionPlatform(t *testing.T, hook string) string {
	t.Helper()
	return newRepo(t, "web: first version", demoApp(t, "web", "web"), files{
		"socle.yaml": fmt.Sprintf(`apiVersion: socle.dev/v1
kind: Platform
metadata: {name: e2e}
environments:
  - {name: dev, runtime: {type: local}, sync: auto, notify: [hook]}
  - name: preprod
    runtime: {type: local}
    sync: manual
    promotion: {from: dev}
    notify: [hook]
  - name: prod
    runtime: {type: local}
    sync: manual
    promotion: {from: preprod, soak: %s, approvals: 1}
    notify: [hook]
notifications:
  - {name: hook, type: webhook, url: %q}
`, promotionSoak, hook),
		"teams.yaml": `apiVersion: socle.dev/v1
kind: Teams
teams:
  - name: web
    members:
      - {user: ann, email: ann@example.com, role: developer}
      - {user: sofia, email: sofia@example.com, role: approver}
  - name: platform
    members:
      - {user: lena, email: lena@example.com, role: admin}
`,
		"releases/preprod.yaml": "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: preprod\napps: {}\n",
		"releases/prod.yaml":    "# What runs in production; socle promote writes it.\napiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps: {}\n",
		"apps/web/socle.yaml": `apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -ldflags "-X main.version=$SOCLE_REVISION" -o "$SOCLE_OUT/web" .
rollout: {strategy: blueGreen}
replicas: {min: 1}
`,
	})
}

// promotionSoak is prod's soak in promotionPlatform.
const promotionSoak = 10 * time.Minute

// cli runs the socle CLI against s and returns its output and exit code.
func (s *socle) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	args, err := withUser(s.api, args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(socleBin, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func (s *socle) waitUnit(t *testing.T, app, env string, ok func(api.UnitStatus) bool) api.UnitStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var u api.UnitStatus
	for time.Now().Before(deadline) {
		u, _ = unit(s.status(t), app, env)
		if ok(u) {
			return u
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s @ %s never got there: %+v\n%s", app, env, u, tail(s.log.String(), 30))
	return u
}

// soakedFor is the soak's reason once socle's clock has moved nine of its
// ten minutes (and the test has taken some seconds of real time).
var soakedFor = regexp.MustCompile(`soak: healthy in preprod for 9m\d+s of the 10m0s soak`)

func synced(artifact string) func(api.UnitStatus) bool {
	return func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced && u.Artifact == artifact }
}

// TestPromotionToProduction walks a change from commit to production: dev by
// itself, preprod by a promotion that is a commit pinning the same digest,
// prod held by the soak, then by the missing approval, then by a freeze,
// each with its reason; then live with dev's digest; then rolled back. A
// webhook receiver gets the notifications, and the audit trail verifies
// until a record is tampered with. The soak and the freeze end on socle's
// clock, which the test moves: nothing sleeps through them, and a soak
// that real time opened would take ten minutes.
func TestPromotionToProduction(t *testing.T) {
	hook := newReceiver(t)
	repo, data := promotionPlatform(t, hook.srv.URL), t.TempDir()
	s := start(t, repo, data)
	defer func() {
		if s != nil {
			s.stop(t)
		}
	}()

	dev := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })
	out, code := s.cli(t, "promote", "web", "--to", "preprod", "--user", "ann")
	if code != 0 || !strings.Contains(out, "Promoted web to preprod") {
		t.Fatalf("promote to preprod: %d\n%s", code, out)
	}
	cmd := exec.Command("git", "log", "-1", "--format=%an %s", "--", "releases/preprod.yaml")
	cmd.Dir = repo
	if msg, _ := cmd.Output(); !strings.HasPrefix(string(msg), "ann promote web to preprod") {
		t.Errorf("the promotion is not the last commit of releases/preprod.yaml: %q", msg)
	}
	s.waitUnit(t, "web", "preprod", synced(dev.Artifact))

	if out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "ann"); code != 1 || !strings.Contains(out, "prod allows approver, admin") {
		t.Errorf("a developer promoted to production: %d %s", code, out)
	}
	out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia")
	if code != 1 || !strings.Contains(out, "soak:") || !strings.Contains(out, "opens") {
		t.Fatalf("the first promotion to prod is not blocked by the soak: %d\n%s", code, out)
	}
	t.Logf("blocked: %s", strings.TrimSpace(out))
	// Nine of the ten minutes on socle's clock: still held, and the soak
	// counts the minutes the clock moved. Then past it.
	s.clock.advance(t, promotionSoak-time.Minute)
	out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia")
	if code != 1 || !soakedFor.MatchString(out) {
		t.Fatalf("with socle's clock 9 of the 10 minutes on, prod is not held by the soak at 9 minutes: %d\n%s", code, out)
	}
	t.Logf("blocked: %s", strings.TrimSpace(out))
	s.clock.advance(t, time.Minute)
	out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia")
	if code != 1 || !strings.Contains(out, "approvals: 0 of 1 approvals") || strings.Contains(out, "soak:") {
		t.Fatalf("after the soak, prod is not blocked by the approval alone: %d\n%s", code, out)
	}
	t.Logf("blocked: %s", strings.TrimSpace(out))
	if out, code = s.cli(t, "approve", "web", "--env", "prod", "--user", "ann"); code != 1 || !strings.Contains(out, "ann is not an approver") {
		t.Errorf("a developer approved: %d %s", code, out)
	}
	if out, code = s.cli(t, "approve", "web", "--env", "prod", "--user", "sofia"); code != 0 {
		t.Fatalf("approve: %d %s", code, out)
	}

	// A freeze begins: a commit to socle.yaml. It is in force from an hour
	// ago to two hours from now on socle's clock.
	now := s.clock.Now().UTC()
	until := now.Add(2 * time.Hour).Truncate(time.Second)
	f, _ := os.OpenFile(filepath.Join(repo, "socle.yaml"), os.O_APPEND|os.O_WRONLY, 0o644)
	fmt.Fprintf(f, "freezes:\n  - {name: release-train, environments: [prod], start: %s, end: %s, reason: wait for the Thursday train}\n",
		now.Add(-time.Hour).Format(time.RFC3339), until.Format(time.RFC3339))
	f.Close()
	gitCommit(t, repo, "freeze prod until the train")
	s.hook(t)
	s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return true })
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st := s.status(t); st.LastGood != nil && strings.HasPrefix(st.LastGood.Message, "freeze prod") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the freeze commit was not taken")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia")
	if code != 1 || !strings.Contains(out, "freeze release-train: wait for the Thursday train") || strings.Contains(out, "approvals:") {
		t.Fatalf("during the freeze prod is not blocked by the freeze alone: %d\n%s", code, out)
	}
	t.Logf("blocked: %s", strings.TrimSpace(out))
	// Nothing rolls out while the clock moves.
	s.waitUnit(t, "web", "dev", synced(dev.Artifact))
	s.waitUnit(t, "web", "preprod", synced(dev.Artifact))
	s.clock.advance(t, until.Sub(s.clock.Now())+time.Second)
	if out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia"); code != 0 {
		t.Fatalf("after the freeze: %d\n%s", code, out)
	}
	prod := s.waitUnit(t, "web", "prod", synced(dev.Artifact))
	t.Logf("prod runs %s, the digest dev was built with", prod.Artifact)

	// A second version, written by the approver sofia, goes all the way;
	// she cannot approve her own change, an admin can. Then prod is rolled
	// back.
	f, _ = os.OpenFile(filepath.Join(repo, "apps/web/main.go"), os.O_APPEND|os.O_WRONLY, 0o644)
	fmt.Fprintln(f, "\n// second version")
	f.Close()
	cmd = exec.Command("git", "-c", "user.name=Sofia", "-c", "user.email=sofia@example.com", "commit", "-qam", "web: second version")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, b)
	}
	s.hook(t)
	dev2 := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced && u.Artifact != dev.Artifact })
	s.cli(t, "promote", "web", "--to", "preprod", "--user", "ann")
	s.waitUnit(t, "web", "preprod", synced(dev2.Artifact))
	if out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia"); code != 1 || !strings.Contains(out, "soak:") {
		t.Fatalf("the second version is not held by the soak: %d\n%s", code, out)
	}
	s.clock.advance(t, promotionSoak)
	if out, code = s.cli(t, "approve", "web", "--env", "prod", "--user", "sofia"); code != 1 || !strings.Contains(out, "sofia wrote") || !strings.Contains(out, "cannot approve it") {
		t.Errorf("the author approved her own change: %d %s", code, out)
	}
	if out, code = s.cli(t, "approve", "web", "--env", "prod", "--user", "lena"); code != 0 {
		t.Fatalf("an admin's approval: %d %s", code, out)
	}
	if out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia"); code != 0 {
		t.Fatalf("second promotion to prod: %d\n%s", code, out)
	}
	s.waitUnit(t, "web", "prod", synced(dev2.Artifact))
	if out, code = s.cli(t, "rollback", "web", "--env", "prod", "--user", "sofia"); code != 0 {
		t.Fatalf("rollback: %d\n%s", code, out)
	}
	s.waitUnit(t, "web", "prod", synced(dev.Artifact))
	out, _ = s.cli(t, "releases", "web", "--env", "prod")
	if !strings.Contains(out, "rollback") || strings.Count(out, "Succeeded") != 3 {
		t.Errorf("prod's releases:\n%s", out)
	}

	for deadline := time.Now().Add(30 * time.Second); ; {
		got := hook.got()
		if strings.Contains(got, "rollback web@prod") && strings.Contains(got, "approval.needed web@prod") &&
			strings.Contains(got, "promotion.blocked web@prod") && strings.Contains(got, "deploy.succeeded web@preprod") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got:\n%s", got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, code = s.cli(t, "audit", "verify")
	if code != 0 || !strings.Contains(out, "verifies") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	s.stop(t)
	s = nil
	tamper(t, filepath.Join(data, "socle.db"))
	cmd = exec.Command(socleBin, "audit", "verify", "--data", data)
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(b), "record 3 was changed") {
		t.Fatalf("audit verify after tampering: %v\n%s", err, b)
	}
	t.Logf("%s", strings.TrimSpace(string(b)))
}

// tamper changes the third audit record behind socle's back, dropping the
// triggers that forbid it, as an attacker with the database file could.
func tamper(t *testing.T, db string) {
	t.Helper()
	conn, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit%'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		triggers = append(triggers, n)
	}
	rows.Close()
	for _, n := range triggers {
		if _, err := conn.Exec(`DROP TRIGGER "` + n + `"`); err != nil {
			t.Fatal(err)
		}
	}
	var table string
	if err := conn.QueryRow(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit%' LIMIT 1`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	res, err := conn.Exec(`UPDATE "` + table + `" SET actor = 'mallory' WHERE seq = 3`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered with %d records", n)
	}
}
