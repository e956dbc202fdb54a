package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// TestTokensLoginAndRoles drives the CLI against a real server: an admin
// makes tokens, a developer logs in and acts within their role, and a
// revoked token stops working. It is not parallel: `login` writes the
// config file every command reads.
func TestTokensLoginAndRoles(t *testing.T) {
	url, admin, data, _ := startUp(t)
	as := func(token string, args ...string) (string, string, int) {
		return run(t, append(args, "--server", url, "--token", token)...)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, _, _ := as(admin, "status")
		if strings.Contains(s, "web     dev") && strings.Contains(s, "Synced") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web never ran in dev:\n%s", s)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// An admin makes a token through the API; the offline form works too.
	tom, e, code := as(admin, "token", "create", "--user", "tom", "--expires", "30d", "--description", "laptop")
	tom = strings.TrimSpace(tom)
	if code != 0 || !strings.HasPrefix(tom, "socle_") || !strings.Contains(e, "shown once") {
		t.Fatalf("token create: %d %q %s", code, tom, e)
	}
	marco, e, code := run(t, "token", "create", "--user", "marco", "--data", data)
	marco = strings.TrimSpace(marco)
	if code != 0 || !strings.HasPrefix(marco, "socle_") {
		t.Fatalf("token create --data: %d %q %s", code, marco, e)
	}
	if _, e, code := as(admin, "token", "create", "--user", "mallory"); code != ExitProblems || !strings.Contains(e, "not a member") {
		t.Errorf("a token for a stranger: %d %s", code, e)
	}
	if _, e, code := as(tom, "token", "create", "--user", "tom"); code != ExitProblems || !strings.Contains(e, "only an admin") {
		t.Errorf("a developer making a token: %d %s", code, e)
	}

	// tom logs in; later commands use the saved token.
	defer os.Remove(os.Getenv("SOCLE_CONFIG"))
	if s, e, code := run(t, "login", "--server", url, "--token", tom); code != 0 || !strings.Contains(s, "as tom (developer in guest-experience)") {
		t.Fatalf("login: %d %s %s", code, s, e)
	}
	// What the deploy does depends on how far the first rollout got.
	if s, e, code := run(t, "deploy", "web", "--env", "dev"); code != 0 || !regexp.MustCompile(`^(Deploying web in dev at|Syncing web in dev from|Nothing changes: web in dev already runs) [0-9a-f]{7}`).MatchString(s) {
		t.Errorf("a developer deploys their app to dev: %d %s %s", code, s, e)
	}
	if _, e, code := run(t, "deploy", "api", "--env", "dev"); code != ExitProblems || !strings.Contains(e, "tom has no role for api") {
		t.Errorf("a developer deploys another team's app: %d %s", code, e)
	}
	if _, e, code := run(t, "promote", "web", "--to", "prod"); code != ExitProblems || !strings.Contains(e, "prod allows approver, admin") {
		t.Errorf("a developer promotes to prod: %d %s", code, e)
	}
	if _, e, code := run(t, "approve", "web", "--env", "prod"); code != ExitProblems || !strings.Contains(e, "not an approver") {
		t.Errorf("a developer approves: %d %s", code, e)
	}
	s, e, code := run(t, "token", "list", "-o", "json")
	var ts []api.Token
	if code != 0 || json.Unmarshal([]byte(s), &ts) != nil || len(ts) != 1 || ts[0].User != "tom" || ts[0].Description != "laptop" {
		t.Errorf("tom's token list: %d %s %s", code, s, e)
	}
	if s, _, _ := run(t, "token", "list"); strings.Contains(s, tom) || strings.Contains(s, strings.Split(tom, "_")[2]) {
		t.Errorf("token list shows a secret:\n%s", s)
	}
	if _, e, code := as(marco, "token", "revoke", ts[0].ID); code != ExitProblems || !strings.Contains(e, "no token") {
		t.Errorf("marco revokes tom's token: %d %s", code, e)
	}
	if s, e, code := run(t, "token", "revoke", ts[0].ID); code != 0 || !strings.Contains(s, "Revoked token") {
		t.Errorf("tom revokes his token: %d %s %s", code, s, e)
	}
	if _, e, code := run(t, "status"); code != ExitError || !strings.Contains(e, "revoked") {
		t.Errorf("a revoked token: %d %s", code, e)
	}
}

// TestDataNotThere: the commands that work on a data directory without a
// server say when --data names none, and make nothing there.
func TestDataNotThere(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nowhere")
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"token create, missing", []string{"token", "create", "--user", "marco", "--data", missing},
			"the data directory " + missing + " does not exist: socle up --data " + missing + " makes it on its first start"},
		{"token create, not a data directory", []string{"token", "create", "--user", "marco", "--data", empty},
			empty + " is not a socle data directory (it has no socle.db)"},
		{"audit verify, missing", []string{"audit", "verify", "--data", missing},
			"the data directory " + missing + " does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, e, code := run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(e, tc.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", code, out, e, ExitUsage, tc.want)
			}
			if strings.Contains(e, "sqlite") {
				t.Errorf("stderr shows SQLite's error: %s", e)
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s was made: %v", missing, err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("%s holds %v", empty, entries)
	}
}

// TestDeployWords: deploy says what happens to the unit, which runs the
// last revision that changed it, not the newest.
func TestDeployWords(t *testing.T) {
	t.Parallel()
	target := func(rev string) api.Target { return api.Target{App: "api", Env: "dev", Revision: rev} }
	tests := []struct {
		res  api.ActionResult
		want string
	}{
		{api.ActionResult{Target: target("e0958a9aaaa"), Outcome: api.OutcomeUnchanged, Running: "e0958a9aaaa", Head: "2281b36bbbb"},
			"Nothing changes: api in dev already runs e0958a9, the last revision that changed it (the newest, 2281b36, does not touch it).\nsocle fetches the repository now: a newer commit that changes api deploys by itself.\n"},
		{api.ActionResult{Target: target("2281b36bbbb"), Outcome: api.OutcomeUnchanged, Running: "2281b36bbbb", Head: "2281b36bbbb"},
			"Nothing changes: api in dev already runs 2281b36, the last revision that changed it.\nsocle fetches the repository now: a newer commit that changes api deploys by itself.\n"},
		{api.ActionResult{Target: target("2281b36bbbb"), Outcome: api.OutcomeSyncing, Running: "e0958a9aaaa", Head: "2281b36bbbb"},
			"Syncing api in dev from e0958a9 to 2281b36, the last revision that changed it.\nsocle status shows the rollout.\n"},
		{api.ActionResult{Target: target("2281b36bbbb"), Outcome: api.OutcomeSyncing, Head: "2281b36bbbb"},
			"Deploying api in dev at 2281b36, the last revision that changed it.\nsocle status shows the rollout.\n"},
		{api.ActionResult{Target: target("e0958a9aaaa"), Outcome: api.OutcomeHeld, Running: "e0958a9aaaa", Reason: "denied by policy p: m"},
			"api in dev keeps running e0958a9: denied by policy p: m.\n"},
		{api.ActionResult{Target: target("2281b36bbbb"), Outcome: api.OutcomePinned, Commit: &api.Commit{SHA: "abcdef0123"}},
			"Deploying api to dev: 2281b36, commit abcdef0.\nsocle status shows the rollout.\n"},
	}
	for _, tt := range tests {
		if got := deployWords(tt.res); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.res.Outcome, got, tt.want)
		}
	}
}

// TestEmergencyFlags: --emergency needs a reason, and a reason an
// emergency; both are usage errors, found before the server is asked.
func TestEmergencyFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"promote", "api", "--to", "prod", "--emergency"},
		{"promote", "api", "--to", "prod", "--emergency", "--reason", "  "},
		{"rollback", "api", "--env", "prod", "--reason", "INC-1"},
		{"deploy", "api", "--env", "qa", "--emergency"},
	} {
		if _, e, code := run(t, append(args, "--server", "http://127.0.0.1:1")...); code != ExitUsage || !strings.Contains(e, "--reason") {
			t.Errorf("%v: %d %s", args, code, e)
		}
	}
}
