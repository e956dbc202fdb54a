package server

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/secretref/vaulttest"
	"github.com/socle-dev/socle/internal/store"
)

// vaultStore appends a secretStores section for the Vault stand-in to the
// platform's socle.yaml, logging in as auth says, and writes the
// credentials files into <data>/secretstores.
func vaultStore(t *testing.T, repo, data string, v *vaulttest.Server, auth string, creds map[string]string) {
	t.Helper()
	p := filepath.Join(repo, "socle.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = fmt.Appendf(b, "secretStores:\n  vault:\n    address: %s\n    auth: %s\n", v.URL, auth)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, SecretStoresDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, c := range creds {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(c+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// replicaEnv reads the environment of a unit's first replica from /proc.
func replicaEnv(t *testing.T, u api.UnitStatus) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", u.Replicas[0].PID))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for v := range bytes.SplitSeq(b, []byte{0}) {
		if k, val, ok := strings.Cut(string(v), "="); ok {
			env[k] = val
		}
	}
	return env
}

// TestSecretReferences: web's GREETING is a secret whose value in dev is
// a reference to Vault (the stand-in of vaulttest), in socle.yaml's
// override, read with an AppRole whose credentials are files of
// <data>/secretstores. web's replica gets the value in its environment;
// the store keeps the reference, never the value. Then commits point the
// reference at a path the role may not read (403), at one that does not
// exist (404), and, Vault stopped, back at the first with another
// variable changed: each time web @ dev is
// Blocked (SecretUnresolved) with a reason that names the app, the
// environment, the secret and the reference, and what runs is not
// touched: same desired state, same release, same replica.
func TestSecretReferences(t *testing.T) {
	t.Parallel()
	const value = "Grüezi from Vault, 7c1e"
	v := vaulttest.Start(t)
	v.Put("secret", "apps/web", map[string]any{"greeting": value})
	v.Put("secret", "apps/payments", map[string]any{"greeting": "not for web"})
	v.AddAppRole("web-role", "web-secret-id", 0, "secret/apps/web")
	repo, data := gitRepo(t), t.TempDir()
	vaultStore(t, repo, data, v, `{appRole: {roleId: "file:role-id", secretId: "file:secret-id"}}`, map[string]string{"role-id": "web-role", "secret-id": "web-secret-id"})
	edit := func(file, old, new string) { t.Helper(); editFile(t, repo, file, old, new) }
	edit("apps/web/score.yaml", `GREETING: "Grüezi from Alpenrose"`, `GREETING: ""`)
	edit("apps/web/socle.yaml", "secrets: [SESSION_KEY]", "secrets: [SESSION_KEY, GREETING]")
	edit("apps/web/socle.yaml", "variables: {LOG_LEVEL: debug}", `variables: {LOG_LEVEL: debug, GREETING: "ref+vault://apps/web#greeting"}`)
	commitAll(t, repo, "web: the greeting from Vault in dev")

	r := startWith(t, Config{Repo: repo, Data: data})
	defer r.stop()
	webDev := func(st Status) (api.UnitStatus, bool) {
		i := slices.IndexFunc(st.Runtime, func(u api.UnitStatus) bool { return u.App == "web" && u.Env == "dev" })
		if i < 0 {
			return api.UnitStatus{}, false
		}
		return st.Runtime[i], true
	}
	before, _ := webDev(r.waitFor(t, "web to run in dev", func(st Status) bool {
		u, ok := webDev(st)
		return ok && u.Phase == api.PhaseSynced && len(u.Replicas) > 0 && u.Replicas[0].PID > 0
	}))
	if got := replicaEnv(t, before)["GREETING"]; got != value {
		t.Fatalf("web's replica has GREETING=%q, want the value in Vault", got)
	}
	if v.Logins() < 1 || v.Reads() < 2 {
		t.Errorf("%d logins, %d reads: want the plan's check and the replica's start", v.Logins(), v.Reads())
	}
	ctx := t.Context()
	row, err := r.Store().DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"})
	if err != nil || !strings.Contains(string(row.Spec), "ref+vault://apps/web#greeting") || strings.Contains(string(row.Spec), value) {
		t.Fatalf("web's desired state in dev: want the reference, not the value (%v)", err)
	}

	// The last step keeps the reference that runs and changes another
	// variable, Vault stopped: the reason names the reference in clear (a
	// reference is not a secret, and not redacted).
	steps := []struct {
		ref, why string
		prepare  func()
	}{
		{"ref+vault://apps/payments#greeting", "permission denied: reading secret/data/apps/payments", nil},
		{"ref+vault://apps/web/missing#greeting", "not found: reading secret/data/apps/web/missing", nil},
		{"ref+vault://apps/web#greeting", "unavailable: reading secret/data/apps/web", func() {
			v.Stop()
			edit("apps/web/socle.yaml", "LOG_LEVEL: debug", "LOG_LEVEL: info")
		}},
	}
	old := "ref+vault://apps/web#greeting"
	for _, s := range steps {
		if s.prepare != nil {
			s.prepare()
		}
		edit("apps/web/socle.yaml", old, s.ref)
		old = s.ref
		commitAll(t, repo, "web: greeting from "+s.ref)
		r.hook(t)
		st := r.waitFor(t, "web @ dev blocked by "+s.ref, func(st Status) bool {
			return slices.ContainsFunc(st.Blocked, func(b BlockedUnit) bool {
				return b.App == "web" && b.Env == "dev" && strings.Contains(b.Reason, s.ref)
			})
		})
		b := st.Blocked[slices.IndexFunc(st.Blocked, func(b BlockedUnit) bool { return b.App == "web" && b.Env == "dev" })]
		if want := "secret GREETING of web @ dev not resolved: " + s.ref + ": vault " + v.URL; b.ReasonCode != api.ReasonSecretUnresolved || !strings.HasPrefix(b.Reason, want) || !strings.Contains(b.Reason, s.why) {
			t.Errorf("blocked for %s: %s\nwant SecretUnresolved: %s…%s", b.ReasonCode, b.Reason, want, s.why)
		}
		after, err := r.Store().DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"})
		if err != nil || after.Hash != row.Hash {
			t.Errorf("%s: web's desired state in dev changed (%v)", s.ref, err)
		}
		now, ok := webDev(st)
		if !ok || now.Release != before.Release || len(now.Replicas) == 0 || now.Replicas[0].PID != before.Replicas[0].PID {
			t.Errorf("%s: web @ dev moved: release %d → %d, replicas %+v → %+v", s.ref, before.Release, now.Release, before.Replicas, now.Replicas)
		} else if got := replicaEnv(t, now)["GREETING"]; got != value {
			t.Errorf("%s: web's replica has GREETING=%q now", s.ref, got)
		}
	}
}
