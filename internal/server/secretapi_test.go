package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/sopsfile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/syncbuf"
)

// oldDataKey reads a SOPS file's data key with the sops library and an age
// identity's text, as sops itself does.
func oldDataKey(t *testing.T, file []byte, identity []byte) []byte {
	t.Helper()
	tree, err := sopsyaml.NewStore(&config.YAMLStoreConfig{}).LoadEncryptedFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(identity)))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range tree.Metadata.KeyGroups {
		for _, k := range g {
			if a, ok := k.(*sopsage.MasterKey); ok {
				sopsage.ParsedIdentities(ids).ApplyToMasterKey(a)
				if key, err := a.Decrypt(); err == nil {
					return key
				}
			}
		}
	}
	t.Fatal("the identity decrypts no data key of the file")
	return nil
}

// decryptsWith reports whether key decrypts the values of a SOPS file.
func decryptsWith(file, key []byte) bool {
	tree, err := sopsyaml.NewStore(&config.YAMLStoreConfig{}).LoadEncryptedFile(file)
	if err != nil {
		return false
	}
	_, err = tree.Decrypt(key, aes.NewCipher())
	return err == nil
}

func keyring(t *testing.T, texts ...[]byte) *sopsfile.Keyring {
	t.Helper()
	var k sopsfile.Keyring
	for _, text := range texts {
		if err := k.Add(text); err != nil {
			t.Fatal(err)
		}
	}
	return &k
}

// TestSecretSetAndRotate drives socle secret's API on a real server and a
// real repository whose .sops.yaml gives nonprod and prod their own age
// key, socle holding nonprod's only: a developer sets web's SESSION_KEY in
// dev (a commit by them, audited, the file decrypts with nonprod's key and
// not prod's, web in dev signs with the new key), is refused in prod where
// an approver sets it (a file socle encrypts without holding its key, that
// nonprod's key cannot decrypt); a viewer lists names and no value; a
// rotation gives the file the recipients .sops.yaml gives it now and a
// new data key (the old one decrypts it no more), the values stay and web
// keeps signing with them; no value is in any blob of the repository's
// history, the database, an answer or socle's log.
func TestSecretSetAndRotate(t *testing.T) {
	t.Parallel()
	repo, data := gitRepo(t), t.TempDir()
	nonprod := ageKey(t, data, "nonprod")
	nonprodText, err := os.ReadFile(filepath.Join(data, AgeDir, "nonprod.txt"))
	if err != nil {
		t.Fatal(err)
	}
	prodText, prod, err := sopsfile.NewIdentity("prod, not given to socle")
	if err != nil {
		t.Fatal(err)
	}
	nonprodK, prodK := keyring(t, nonprodText), keyring(t, prodText)
	rules := "creation_rules:\n  - path_regex: apps/[^/]+/secrets\\.(apps-prod|prod)\\.yaml$\n    age: " + prod +
		"\n  - path_regex: apps/[^/]+/secrets\\.[^/]+\\.yaml$\n    age: " + nonprod + "\n"
	if err := os.WriteFile(filepath.Join(repo, ".sops.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, repo, "add", ".sops.yaml")
	// A rolling update, so that the new key reaches web without the
	// demo's canary pauses.
	commit(t, repo, "apps/web/socle.yaml", "rollout:\n  strategy: canary\n  steps:\n    - {weight: 10, pause: 30s}\n    - {weight: 50, pause: 30s}\n  analysis: {maxErrorRate: 0.01, maxP95: 300ms, minRequests: 20}\n", "rollout: {strategy: rolling}\n", "sops rules; web rolls")
	const (
		devValue  = "dev-session-from-tom-7c1e"
		devValue2 = "dev-session-again-0b44"
		prodValue = "prod-session-from-ines-9d2f"
	)
	values := []string{devValue, devValue2, prodValue}

	var logs syncbuf.Buffer
	r := startWith(t, Config{Repo: repo, Data: data, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer r.stop()
	ctx := t.Context()
	as := map[string]*client.Client{}
	for _, u := range []string{"tom", "ines", "paul"} {
		tok, _, err := auth.Create(ctx, r.Store(), u, "secret test", "test", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		as[u] = client.New(r.url, tok)
	}
	signs := func(key string) func(Status) bool {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte("hello"))
		want := hex.EncodeToString(mac.Sum(nil))
		return func(Status) bool {
			req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProxyAddr()+"/sign?msg=hello", nil)
			req.Host = "web.dev.localhost"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == want
		}
	}
	r.waitFor(t, "web in dev to sign with no key", signs(""))
	at := func(sha, file string) []byte {
		return []byte(gitOut(t, repo, "show", sha+":"+file))
	}
	status := func(err error) int {
		var e *client.Error
		if errors.As(err, &e) {
			return e.Status
		}
		t.Fatalf("not an API error: %v", err)
		return 0
	}

	// A developer sets a secret of their team's app in dev.
	const devFile, prodFile = "apps/web/secrets.dev.yaml", "apps/web/secrets.prod.yaml"
	res, err := as["tom"].SetSecret(ctx, "web", "SESSION_KEY", "dev", false, devValue)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Files[0].Path != devFile || !res.Created || !slices.Equal(res.Files[0].Names, []string{"SESSION_KEY"}) || !res.Files[0].Held {
		t.Errorf("set in dev: %+v", res)
	}
	if got := gitOut(t, repo, "log", "-1", "--format=%an <%ae>|%s", res.Commit.SHA); got != "tom <tom.berger@alpenrose.example>|secret set web SESSION_KEY in dev\n" {
		t.Errorf("the commit in the platform repository: %q", got)
	}
	if got, err := nonprodK.Decrypt(at(res.Commit.SHA, devFile)); err != nil || got["SESSION_KEY"] != devValue || len(got) != 1 {
		t.Errorf("dev's file decrypts to %v (%v)", len(got), err)
	}
	if _, err := prodK.Decrypt(at(res.Commit.SHA, devFile)); !errors.Is(err, sopsfile.ErrNoIdentity) {
		t.Errorf("prod's key decrypts dev's file: %v", err)
	}
	r.waitFor(t, "web in dev to sign with the key set", signs(devValue))

	// Production: the developer is refused, an approver sets it, in a new
	// file socle encrypts for prod's key, which it does not hold.
	if _, err := as["tom"].SetSecret(ctx, "web", "SESSION_KEY", "prod", false, prodValue); status(err) != http.StatusForbidden {
		t.Errorf("a developer sets a secret in prod: %v", err)
	}
	res, err = as["ines"].SetSecret(ctx, "web", "SESSION_KEY", "prod", false, prodValue)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files[0].Path != prodFile || res.Files[0].Held || !slices.Equal(res.Files[0].Recipients, []string{prod}) {
		t.Errorf("set in prod: %+v", res.Files[0])
	}
	if got, err := prodK.Decrypt(at(res.Commit.SHA, prodFile)); err != nil || got["SESSION_KEY"] != prodValue {
		t.Errorf("prod's file does not decrypt with prod's key: %v", err)
	}
	if _, err := nonprodK.Decrypt(at(res.Commit.SHA, prodFile)); !errors.Is(err, sopsfile.ErrNoIdentity) {
		t.Errorf("dev's key decrypts prod's file: %v", err)
	}
	// Its other values would be lost: socle needs an identity of an
	// existing file to add one.
	if _, err := as["ines"].SetSecret(ctx, "web", "SESSION_KEY", "prod", false, prodValue+"-2"); status(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), prod) {
		t.Errorf("a set in a file socle cannot decrypt: %v", err)
	}
	if _, err := as["paul"].SetSecret(ctx, "web", "SESSION_KEY", "dev", false, devValue2); status(err) != http.StatusForbidden {
		t.Errorf("a viewer sets a secret: %v", err)
	}
	if _, err := as["tom"].SetSecret(ctx, "web", "NOT_LISTED", "dev", false, devValue2); status(err) != http.StatusBadRequest {
		t.Errorf("a name socle.yaml does not list: %v", err)
	}
	for _, n := range []int{maxSecretValue + 1, 100 << 10} { // the value's bound, the body's
		if _, err := as["tom"].SetSecret(ctx, "web", "SESSION_KEY", "dev", false, strings.Repeat("v", n)); status(err) != http.StatusRequestEntityTooLarge {
			t.Errorf("a value of %d bytes: %v", n, err)
		}
	}
	res, err = as["tom"].SetSecret(ctx, "web", "SESSION_KEY", "dev", false, devValue2)
	if err != nil || res.Created || res.Files[0].Path != devFile {
		t.Fatalf("set again in dev: %+v %v", res, err)
	}
	r.waitFor(t, "web in dev to sign with the key set again", signs(devValue2))

	// A viewer lists the names, where they are, for whom, by whom.
	list, err := as["paul"].Secrets(ctx, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range list.Items {
		files = append(files, f.Path)
		if !slices.Equal(f.Names, []string{"SESSION_KEY"}) || f.LastChange == nil {
			t.Errorf("listed %+v", f)
		}
	}
	if !slices.Equal(files, []string{devFile, prodFile}) || list.Items[0].LastChange.Author != "tom" || list.Items[1].LastChange.Author != "ines" || list.Items[1].Held {
		t.Errorf("listed %+v", list.Items)
	}

	// Rotation: a second nonprod recipient in .sops.yaml, then the file
	// is encrypted for both with a new data key.
	text2, nonprod2, err := sopsfile.NewIdentity("nonprod, a second key")
	if err != nil {
		t.Fatal(err)
	}
	gitOut(t, repo, "reset", "-q", "--hard") // socle's commits are pushed here
	commit(t, repo, ".sops.yaml", "age: "+nonprod+"\n", "age: "+nonprod+","+nonprod2+"\n", "sops: a second nonprod key")
	head := strings.TrimSpace(gitOut(t, repo, "rev-parse", "HEAD"))
	before := at(head, devFile)
	oldKey := oldDataKey(t, before, nonprodText)
	if !decryptsWith(before, oldKey) {
		t.Fatal("the data key read does not decrypt the file")
	}
	if _, err := as["tom"].RotateSecrets(ctx, api.SecretRotateRequest{App: "web"}); status(err) != http.StatusForbidden {
		t.Errorf("a developer rotates prod's file: %v", err)
	}
	if _, err := as["ines"].RotateSecrets(ctx, api.SecretRotateRequest{App: "web"}); status(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), prodFile) {
		t.Errorf("a rotation of a file socle cannot decrypt: %v", err)
	}
	res, err = as["tom"].RotateSecrets(ctx, api.SecretRotateRequest{App: "web", Env: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	after := at(res.Commit.SHA, devFile)
	if len(res.Files) != 1 || !slices.Equal(res.Files[0].Recipients, []string{nonprod, nonprod2}) {
		t.Errorf("rotated %+v", res.Files)
	}
	if decryptsWith(after, oldKey) {
		t.Error("the old data key decrypts the rotated file")
	}
	for _, k := range []*sopsfile.Keyring{nonprodK, keyring(t, text2)} {
		if got, err := k.Decrypt(after); err != nil || got["SESSION_KEY"] != devValue2 {
			t.Errorf("the rotated file does not decrypt to the same value with each recipient: %v", err)
		}
	}
	if got := gitOut(t, repo, "log", "-1", "--format=%an|%s", res.Commit.SHA); got != "tom|secret rotate 1 file of web for dev\n" {
		t.Errorf("the rotation's commit: %q", got)
	}
	r.waitFor(t, "the rotation in force", func(st Status) bool { return st.LastGood != nil && st.LastGood.SHA == res.Commit.SHA })
	if !signs(devValue2)(Status{}) {
		t.Error("web in dev signs with another key after the rotation")
	}

	// The audit trail: who, which app, environment, name and commit.
	var recs []string
	for rec, err := range store.AuditTrail(ctx, r.Store(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(rec.Action, "secret.") {
			var d struct {
				Name, Commit string
			}
			json.Unmarshal(rec.Detail, &d)
			recs = append(recs, strings.Join([]string{rec.Actor, rec.Action, rec.App, rec.Env, d.Name, d.Commit[:7]}, " "))
		}
	}
	if len(recs) != 4 || !strings.HasPrefix(recs[0], "tom secret.set web dev SESSION_KEY ") || !strings.HasPrefix(recs[1], "ines secret.set web prod SESSION_KEY ") ||
		recs[3] != "tom secret.rotate web dev  "+res.Commit.SHA[:7] {
		t.Errorf("audit records:\n%s", strings.Join(recs, "\n"))
	}

	// No value anywhere in clear.
	if leaked := gitHistoryHolds(t, repo, values...); len(leaked) > 0 {
		t.Errorf("the platform repository holds a secret in clear: %s", leaked)
	}
	for _, f := range []string{DBFile, DBFile + "-wal"} {
		b, err := os.ReadFile(filepath.Join(data, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if slices.ContainsFunc(values, func(v string) bool { return strings.Contains(string(b), v) }) {
			t.Errorf("%s holds a secret in clear", f)
		}
	}
	for _, path := range []string{"/api/v1/audit?limit=1000", "/api/v1/events?limit=1000", "/api/v1/secrets", "/api/v1/apps/web"} {
		resp := r.get(t, path)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if slices.ContainsFunc(values, func(v string) bool { return strings.Contains(string(b), v) }) {
			t.Errorf("GET %s shows a secret: %s", path, b)
		}
		if strings.Contains(path, "events") && (!strings.Contains(string(b), "tom set SESSION_KEY of web in apps/web/secrets.dev.yaml (for dev)") || !strings.Contains(string(b), `"secret.rotate"`)) {
			t.Errorf("the event log lacks the secrets' changes: %s", b)
		}
	}
	if l := logs.String(); slices.ContainsFunc(values, func(v string) bool { return strings.Contains(l, v) }) {
		t.Errorf("socle's log holds a secret:\n%s", l)
	}
}

// TestRecognizeSecretCommits: the commits secret set and rotate make are
// known for the recovery of an audit record a crash lost.
func TestRecognizeSecretCommits(t *testing.T) {
	for msg, want := range map[string]string{
		"secret set web SESSION_KEY in dev\n\napps/web/secrets.dev.yaml, for dev.": "tom secret.set web dev SESSION_KEY",
		"secret rotate 3 files\n\n- a":                                             "tom secret.rotate   ",
		"secret rotate 1 file of web for dev":                                      "tom secret.rotate web dev ",
		"promote web to prod: 1234567 (abc) from preprod":                          "tom promote web prod ",
		"web: a commit of someone":                                                 "",
	} {
		rec, d, ok := recognize(source.Revision{Author: "tom", Message: msg})
		got := ""
		if ok {
			name, _ := d["name"].(string)
			got = strings.Join([]string{rec.Actor, rec.Action, rec.App, rec.Env, name}, " ")
		}
		if got != want {
			t.Errorf("%q: %q, want %q", msg, got, want)
		}
	}
}
