package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// TestDecideSync: a deploy to an environment that follows Git says what
// the unit really runs, the last revision that changed it, not the head.
func TestDecideSync(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		desired, running, head  string
		synced                  bool
		held                    string
		outcome, revision, word string
	}{
		{"the head does not touch it", "e0958a9", "e0958a9", "2281b36", true, "", api.OutcomeUnchanged, "e0958a9", "already runs e0958a9, the last revision that changed it; nothing changes (the newest revision 2281b36 does not touch it)"},
		{"at the head", "2281b36", "2281b36", "2281b36", true, "", api.OutcomeUnchanged, "2281b36", "already runs 2281b36"},
		{"a rollout to do", "2281b36", "e0958a9", "2281b36", true, "", api.OutcomeSyncing, "2281b36", "syncing api in dev from e0958a9 to 2281b36"},
		{"runs it, not healthy", "e0958a9", "e0958a9", "2281b36", false, "", api.OutcomeSyncing, "e0958a9", "syncing api in dev from e0958a9 to e0958a9"},
		{"nothing yet", "", "", "2281b36", false, "", api.OutcomeSyncing, "2281b36", "deploying api in dev at 2281b36"},
		{"held", "e0958a9", "e0958a9", "2281b36", true, "denied by policy x: y", api.OutcomeHeld, "e0958a9", "keeps e0958a9: denied by policy x: y"},
	}
	for _, tt := range tests {
		o := decideSync(tt.desired, tt.running, tt.head, tt.synced, tt.held)
		if o.Outcome != tt.outcome || o.Revision != tt.revision || !strings.Contains(o.Words("api", "dev"), tt.word) {
			t.Errorf("%s: %+v %q, want %s at %s saying %q", tt.name, o, o.Words("api", "dev"), tt.outcome, tt.revision, tt.word)
		}
	}
}

// teamsWith rewrites the demo's teams.yaml in a fresh platform repository.
func teamsWith(t *testing.T, teams string) string {
	t.Helper()
	dir := gitRepo(t)
	if err := os.WriteFile(filepath.Join(dir, "teams.yaml"), []byte(teams), 0o644); err != nil {
		t.Fatal(err)
	}
	commitAll(t, dir, "teams")
	return dir
}

// TestFirstAdminToken: a new platform's first start makes a token for the
// first admin of its teams.yaml, once, kept where up says and nowhere else.
func TestFirstAdminToken(t *testing.T) {
	t.Parallel()
	const alice = "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: ops\n    members:\n      - {user: bob, role: viewer}\n      - {user: alice, role: admin}\n      - {user: carol, role: admin}\n"
	const nobody = "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: ops\n    members:\n      - {user: bob, role: viewer}\n"
	for _, tt := range []struct {
		name, repo, want string
	}{
		{"the demo", "", "admin"},
		{"a platform of its own", alice, "alice"},
		{"no admin", nobody, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := gitRepo(t)
			if tt.repo != "" {
				repo = teamsWith(t, tt.repo)
			}
			data := t.TempDir()
			s, err := New(context.Background(), Config{Repo: repo, Data: data, Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.closeAll()
			user, file, err := s.FirstAdminToken(context.Background())
			if err != nil || user != tt.want {
				t.Fatalf("first admin %q (%v), want %q", user, err, tt.want)
			}
			if tt.want == "" {
				if file != "" {
					t.Errorf("a token file %s without an admin", file)
				}
				return
			}
			if file != filepath.Join(data, AdminTokenFile) {
				t.Errorf("token file %s, want in %s", file, data)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v", fi.Mode().Perm())
			}
			if got, err := s.auth.Authenticate(context.Background(), "test", strings.TrimSpace(string(b))); err != nil || got.User != tt.want {
				t.Errorf("the kept token is %q's (%v), want %q's", got.User, err, tt.want)
			}
			if again, _, err := s.FirstAdminToken(context.Background()); again != "" || err != nil {
				t.Errorf("a second start made another token for %q (%v)", again, err)
			}
		})
	}
}

// TestUnauthorizedSaysWhereTheTokenIs: a 401 to a caller on this machine
// names the file that socle up keeps the first admin's token in, as words
// and as data, while that file exists.
func TestUnauthorizedSaysWhereTheTokenIs(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	r := start(t, gitRepo(t), data)
	defer r.stop()
	ask := func() api.ErrorBody {
		resp, err := http.Get(r.url + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status without a token: %s", resp.Status)
		}
		var body struct{ Error api.ErrorBody }
		json.NewDecoder(resp.Body).Decode(&body)
		return body.Error
	}
	if e := ask(); e.Details != nil || strings.Contains(e.Message, AdminTokenFile) {
		t.Errorf("without the file the 401 names it: %+v", e)
	}
	file := filepath.Join(data, AdminTokenFile)
	if err := os.WriteFile(file, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := ask()
	d, _ := e.Details.(map[string]any)
	if d["adminTokenFile"] != file || !strings.Contains(e.Message, "export SOCLE_TOKEN=$(cat "+file+")") || !strings.Contains(e.Message, "socle login") {
		t.Errorf("the 401 does not say where the token is: %+v", e)
	}
}

// TestEmergencyIn: the release an emergency pin brings passes as one when
// whoever it names may declare it; later changes under the same pin, and
// pins by others, do not.
func TestEmergencyIn(t *testing.T) {
	t.Parallel()
	fsys := os.DirFS("../../examples/platform")
	repo, problems := spec.Load(fsys)
	if problems.Errors() > 0 {
		t.Fatal(problems.Err())
	}
	pinBy := func(user string) *spec.Repo {
		r := *repo
		r.Releases = map[string]*spec.Releases{"prod": {Environment: "prod", Apps: map[string]spec.Pin{
			"api": {Revision: "2222222", Artifact: "sha256:b", PromotedBy: user, Emergency: &spec.PinEmergency{Reason: "INC-1"}}}}}
		return &r
	}
	u := &plan.Unit{App: "api", Env: "prod", Revision: "2222222", Artifact: "sha256:b", Emergency: "INC-1"}
	before := &plan.Unit{App: "api", Env: "prod", Revision: "1111111", Artifact: "sha256:a"}
	tests := []struct {
		name    string
		repo    *spec.Repo
		u, old  *plan.Unit
		want    bool
		refused error
	}{
		{"an approver of the app's team", pinBy("sofia"), u, before, true, nil},
		{"an admin", pinBy("lena"), u, before, true, nil},
		{"a first release", pinBy("lena"), u, nil, true, nil},
		{"a developer", pinBy("marco"), u, before, false, gate.ErrDeclarer},
		{"an approver of another team", pinBy("ines"), u, before, false, gate.ErrDeclarer},
		{"nobody", pinBy(""), u, before, false, gate.ErrDeclarer},
		{"the release runs already", pinBy("sofia"), u, u, false, nil},
		{"no emergency", pinBy("sofia"), before, u, false, nil},
	}
	for _, tt := range tests {
		got, err := emergencyIn(tt.repo, tt.u, tt.old)
		if got != tt.want || !errors.Is(err, tt.refused) || (tt.refused == nil) != (err == nil) {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.refused)
		}
	}
}

// TestRecoverAudit: a pin's commit whose audit record is there is not
// recorded again, whatever the action (a deploy was, before); one without
// is recovered, an emergency as an emergency with its reason.
func TestRecoverAudit(t *testing.T) {
	t.Parallel()
	r := start(t, gitRepo(t), t.TempDir())
	defer r.stop()
	ctx := context.Background()
	deployed := strings.Repeat("d", 40)
	detail, _ := json.Marshal(map[string]string{"commit": deployed})
	if _, err := r.store.AppendAudit(ctx, store.AuditRecord{Actor: "lena", Action: "deploy", App: "api", Env: "qa", Detail: detail}); err != nil {
		t.Fatal(err)
	}
	r.commits.Recover(ctx, source.Revision{SHA: deployed, Author: "lena", Message: "deploy api to qa: 1234567\n"})
	r.commits.Recover(ctx, source.Revision{SHA: strings.Repeat("e", 40), Author: "sofia",
		Message: "promote api to prod: 1234567 (abc) from preprod\n\nbookings fail\n\nEmergency: INC-4711 bookings fail\n"})
	var actions []string
	var reason string
	for rec, err := range store.AuditTrail(ctx, r.store, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.App == "api" {
			actions = append(actions, rec.Action)
			var d struct{ Reason string }
			json.Unmarshal(rec.Detail, &d)
			reason += d.Reason
		}
	}
	if strings.Join(actions, ",") != "deploy,promote.emergency" || reason != "INC-4711 bookings fail" {
		t.Errorf("audit records %v with reason %q, want deploy once, then the recovered emergency", actions, reason)
	}
}
