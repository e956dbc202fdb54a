package server

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/sopsfile"
	"github.com/socle-dev/socle/internal/store"
)

// ageKey makes an age identity in <data>/age/<name>.txt, where socle reads
// it at start, and returns its recipient.
func ageKey(t *testing.T, data, name string) string {
	t.Helper()
	text, r, err := sopsfile.NewIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, AgeDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), text, 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// writeSecrets writes a SOPS file of values encrypted for recipient into
// the working tree of repo, and adds it to git's index (not committed).
func writeSecrets(t *testing.T, repo, file string, values map[string]string, recipient string) {
	t.Helper()
	b, err := sopsfile.Encrypt(values, []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, file), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "add", file)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git add: %v %s", err, out)
	}
}

// gitHistoryHolds returns which of needles some blob of the repository's
// history holds: every object of every commit, read with git itself.
func gitHistoryHolds(t *testing.T, repo string, needles ...string) []string {
	t.Helper()
	git := func(args ...string) []byte {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	var found []string
	objects := strings.Fields(string(git("rev-list", "--all", "--objects", "--no-object-names")))
	blobs := 0
	for _, o := range objects {
		if strings.TrimSpace(string(git("cat-file", "-t", o))) != "blob" {
			continue
		}
		blobs++
		b := git("cat-file", "blob", o)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = append(found, n+" in blob "+o)
			}
		}
	}
	if blobs < 10 {
		t.Fatalf("only %d blobs in the history of %s", blobs, repo)
	}
	return found
}

// TestUndecryptableSecretBlocks: web runs in dev with a secret from a SOPS
// file socle decrypts; a commit re-encrypts that file for a key socle does
// not hold (production's). web @ dev is then Blocked, the reason names the
// file and the recipient, and what runs is not touched: same desired
// state, same release.
func TestUndecryptableSecretBlocks(t *testing.T) {
	t.Parallel()
	repo, data := gitRepo(t), t.TempDir()
	dev := ageKey(t, data, "dev")
	_, prod, err := sopsfile.NewIdentity("prod, not given to socle")
	if err != nil {
		t.Fatal(err)
	}
	const file = "apps/web/secrets.dev.yaml"
	writeSecrets(t, repo, file, map[string]string{"SESSION_KEY": "dev-session-value-1"}, dev)
	commitAll(t, repo, "web: a session key in dev")
	r := startWith(t, Config{Repo: repo, Data: data})
	defer r.stop()
	webDev := func(st Status) (api.UnitStatus, bool) {
		for _, u := range st.Runtime {
			if u.App == "web" && u.Env == "dev" {
				return u, true
			}
		}
		return api.UnitStatus{}, false
	}
	before, _ := webDev(r.waitFor(t, "web to run in dev", func(st Status) bool {
		u, ok := webDev(st)
		return ok && u.Phase == api.PhaseSynced
	}))
	ctx := t.Context()
	row, err := r.Store().DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"})
	if err != nil || !strings.Contains(string(row.Spec), "dev-session-value-1") {
		t.Fatalf("web's desired state in dev lacks its secret (%v)", err)
	}

	writeSecrets(t, repo, file, map[string]string{"SESSION_KEY": "prod-only-value-2"}, prod)
	commitAll(t, repo, "web: the session key, encrypted for the wrong key")
	r.hook(t)
	st := r.waitFor(t, "web @ dev to be blocked", func(st Status) bool {
		return slices.ContainsFunc(st.Blocked, func(b BlockedUnit) bool { return b.App == "web" && b.Env == "dev" })
	})
	i := slices.IndexFunc(st.Blocked, func(b BlockedUnit) bool { return b.App == "web" && b.Env == "dev" })
	b := st.Blocked[i]
	if b.ReasonCode != api.ReasonSecretUndecryptable || !strings.Contains(b.Reason, file) || !strings.Contains(b.Reason, prod) || !strings.Contains(b.Reason, dev) {
		t.Errorf("blocked for %s: %s; want SecretUndecryptable naming %s, the recipient %s and the one held", b.ReasonCode, b.Reason, file, prod)
	}
	for _, o := range st.Blocked {
		if o.ReasonCode == api.ReasonSecretUndecryptable && (o.App != "web" || o.Env != "dev") {
			t.Errorf("%s @ %s is blocked too: %s", o.App, o.Env, o.Reason)
		}
	}
	after, err := r.Store().DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"})
	if err != nil || after.Hash != row.Hash || strings.Contains(string(after.Spec), "prod-only-value-2") {
		t.Errorf("web's desired state in dev changed (%v)", err)
	}
	if now, ok := webDev(r.status(t)); !ok || now.Release != before.Release || now.Revision != before.Revision {
		t.Errorf("web @ dev moved: release %d → %d, revision %s → %s", before.Release, now.Release, before.Revision, now.Revision)
	}
}
