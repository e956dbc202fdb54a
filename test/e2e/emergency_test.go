package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/server"
)

// emergencyPlatform is dev (auto) → preprod → prod, where prod has the
// gates of a real production (a 1 h soak, an approval) and is frozen from
// an hour before now to two hours after, now being socle's time (clockOf);
// approvers may declare an emergency.
func emergencyPlatform(t *testing.T, hook string, now time.Time) string {
	t.Helper()
	now = now.UTC()
	return newRepo(t, "web: first version", demoApp(t, "web", "web"), files{
		"socle.yaml": fmt.Sprintf(`apiVersion: socle.dev/v1
kind: Platform
metadata: {name: e2e}
environments:
  - {name: dev, runtime: {type: local}, sync: auto}
  - name: preprod
    runtime: {type: local}
    sync: manual
    promotion: {from: dev}
  - name: prod
    runtime: {type: local}
    sync: manual
    promotion: {from: preprod, soak: 1h, approvals: 1}
    emergency: {roles: [approver]}
    notify: [hook]
freezes:
  - {name: peak, environments: [prod], start: %s, end: %s, reason: peak season}
notifications:
  - {name: hook, type: webhook, url: %q}
`, now.Add(-time.Hour).Format(time.RFC3339), now.Add(2*time.Hour).Format(time.RFC3339), hook),
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
		"releases/prod.yaml":    "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps: {}\n",
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

// page returns the portal's HTML at path as user, logged in by cookie as
// a browser is.
func (s *socle) page(t *testing.T, user, path string) string {
	t.Helper()
	tok, err := tokenFor(s.data, user)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.api+path, nil)
	req.AddCookie(&http.Cookie{Name: server.TokenCookie, Value: tok})
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return string(b)
}

// TestEmergencyChange takes a release to a frozen production with an
// emergency change: refused without a reason or to someone who may not
// declare one, still held by the missing approval, then live past the
// soak and the freeze; the plan of its own commit does not hold it again.
// A second emergency follows, and a rollback, held by the freeze until it
// is declared an emergency too. Each is audited with its reason, notified
// to a webhook receiver on loopback, marked in the portal's app page and
// timeline, and counted in DORA.
func TestEmergencyChange(t *testing.T) {
	hook := newReceiver(t)
	data := t.TempDir()
	repo := emergencyPlatform(t, hook.srv.URL, clockOf(t, data).Now())
	s := start(t, repo, data)
	defer s.stop(t)

	v1 := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })
	if out, code := s.cli(t, "promote", "web", "--to", "preprod", "--user", "ann"); code != 0 {
		t.Fatalf("promote to preprod: %d\n%s", code, out)
	}
	s.waitUnit(t, "web", "preprod", synced(v1.Artifact))

	out, code := s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia")
	if code != 1 || !strings.Contains(out, "soak:") || !strings.Contains(out, "approvals: 0 of 1") || !strings.Contains(out, "freeze peak: peak season") {
		t.Fatalf("prod is not held by the soak, the approval and the freeze: %d\n%s", code, out)
	}
	// The reason is required: by the API, and by the CLI before it asks.
	if st, body := s.as(t, "sofia", "POST", "/api/v1/apps/web/promote", api.ActionRequest{To: "prod", Emergency: &api.Emergency{Reason: " "}}, nil); st != http.StatusBadRequest || !strings.Contains(body, "emergency.reason is required") {
		t.Errorf("an emergency without a reason: %d %s", st, body)
	}
	if out, code := s.cli(t, "promote", "web", "--to", "preprod", "--user", "ann", "--emergency", "--reason", "INC-1"); code != 1 || !strings.Contains(out, "ann may not declare an emergency change of web in preprod") {
		t.Errorf("a developer declared an emergency: %d %s", code, out)
	}
	// An emergency passes the soak and the freeze, not the approval.
	out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia", "--emergency", "--reason", "INC-4711 checkout down")
	if code != 1 || !strings.Contains(out, "0 of 1 approvals") || !strings.Contains(out, "for an emergency change") || strings.Contains(out, "freeze") {
		t.Fatalf("an emergency without its approval: %d\n%s", code, out)
	}
	if out, code := s.cli(t, "approve", "web", "--env", "prod", "--user", "lena"); code != 0 {
		t.Fatalf("approve: %d %s", code, out)
	}
	out, code = s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia", "--emergency", "--reason", "INC-4711 checkout down")
	if code != 0 || !strings.Contains(out, "EMERGENCY change (INC-4711 checkout down)") || !strings.Contains(out, "passed soak") || !strings.Contains(out, "passed freeze: freeze peak") {
		t.Fatalf("the emergency promotion: %d\n%s", code, out)
	}
	// The plan of the pin's own commit re-checks the gates: the freeze must
	// not hold the release the emergency brings.
	s.waitUnit(t, "web", "prod", synced(v1.Artifact))
	if b, _ := os.ReadFile(filepath.Join(repo, "releases/prod.yaml")); !strings.Contains(string(b), `reason: "INC-4711 checkout down"`) || !strings.Contains(string(b), `promotedBy: "sofia"`) {
		t.Errorf("the pin does not carry the emergency:\n%s", b)
	}

	// A second version, by the same path.
	commitVersion(t, repo, "web: second version")
	s.hook(t)
	v2 := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced && u.Artifact != v1.Artifact })
	if out, code := s.cli(t, "promote", "web", "--to", "preprod", "--user", "ann"); code != 0 {
		t.Fatalf("promote v2 to preprod: %d\n%s", code, out)
	}
	s.waitUnit(t, "web", "preprod", synced(v2.Artifact))
	s.cli(t, "approve", "web", "--env", "prod", "--user", "lena")
	if out, code := s.cli(t, "promote", "web", "--to", "prod", "--user", "sofia", "--emergency", "--reason", "INC-4712 payments"); code != 0 {
		t.Fatalf("the second emergency: %d\n%s", code, out)
	}
	s.waitUnit(t, "web", "prod", synced(v2.Artifact))
	if st := s.status(t); len(st.Blocked) > 0 {
		t.Errorf("something is held after the emergencies: %+v", st.Blocked)
	}

	// A rollback passes the soak and the approvals, not the freeze: it too
	// is declared an emergency.
	if out, code := s.cli(t, "rollback", "web", "--env", "prod", "--user", "sofia"); code != 1 || !strings.Contains(out, "freeze peak") {
		t.Fatalf("a rollback during the freeze: %d\n%s", code, out)
	}
	if out, code := s.cli(t, "rollback", "web", "--env", "prod", "--user", "sofia", "--emergency", "--reason", "INC-4713 roll back payments"); code != 0 || !strings.Contains(out, "EMERGENCY") {
		t.Fatalf("the emergency rollback: %d\n%s", code, out)
	}
	s.waitUnit(t, "web", "prod", synced(v1.Artifact))

	// Recorded: releases, audit trail, notifications, portal, DORA.
	var rels api.Page[api.Release]
	s.as(t, "ann", "GET", "/api/v1/apps/web/envs/prod/releases", nil, &rels)
	var reasons []string
	for _, r := range rels.Items {
		reasons = append(reasons, r.Trigger+":"+r.Emergency)
	}
	if got := strings.Join(reasons, ","); got != "rollback:INC-4713 roll back payments,sync:INC-4712 payments,sync:INC-4711 checkout down" {
		t.Errorf("prod's releases, newest first: %s", got)
	}
	var audit api.Page[api.AuditRecord]
	s.as(t, "ann", "GET", "/api/v1/audit?app=web&env=prod", nil, &audit)
	var actions []string
	for _, r := range audit.Items {
		var d struct{ Reason string }
		json.Unmarshal(r.Detail, &d)
		if d.Reason != "" || strings.HasSuffix(r.Action, ".emergency") {
			actions = append(actions, r.Actor+" "+r.Action+" "+d.Reason)
		}
	}
	if got := strings.Join(actions, "\n"); got != "sofia promote.emergency INC-4711 checkout down\nsofia promote.emergency INC-4712 payments\nsofia rollback.emergency INC-4713 roll back payments" {
		t.Errorf("the audit trail's emergencies:\n%s", got)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		got := hook.gotBodies()
		if strings.Count(hook.got(), "emergency.change web@prod") == 3 && strings.Contains(got, "INC-4711 checkout down") && strings.Contains(got, "INC-4713 roll back payments") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got:\n%s", hook.got())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for path, want := range map[string][]string{
		"/apps/web":                          {`<span class="emergency"`, "INC-4711 checkout down", "INC-4713 roll back payments"},
		"/activity?action=promote.emergency": {`class="emergency-change"`, "<q>INC-4712 payments</q>"},
		"/dora?env=prod":                     {"3 emergency changes"},
	} {
		page := s.page(t, "ann", path)
		for _, w := range want {
			if !strings.Contains(page, w) {
				t.Errorf("the portal's %s lacks %q", path, w)
			}
		}
	}
	var dora struct{ Deployments, Emergencies int }
	s.as(t, "ann", "GET", "/api/v1/dora?env=prod", nil, &dora)
	if dora.Deployments != 2 || dora.Emergencies != 3 {
		t.Errorf("DORA for prod: %+v, want the 2 emergency promotions as deployments and 3 emergencies", dora)
	}
	if out, code := s.cli(t, "audit", "verify"); code != 0 {
		t.Errorf("audit verify: %d %s", code, out)
	}
}
