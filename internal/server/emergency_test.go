package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/store"
)

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
