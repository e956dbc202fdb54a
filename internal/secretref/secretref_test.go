package secretref

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/secretref/vaulttest"
	"github.com/socle-dev/socle/internal/spec"
)

func ref(t *testing.T, s string) spec.SecretRef {
	t.Helper()
	r, ok, err := spec.ParseSecretRef(s)
	if !ok || err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return r
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestVaultToken: a token from socle's environment or from a file in
// <data>/secretstores reads a key of a KV v2 secret, in a namespace; a
// path the token may not read is denied, a missing secret or key is not
// found, a stopped server is unavailable, and no error holds a value.
func TestVaultToken(t *testing.T) {
	t.Parallel()
	v := vaulttest.Start(t)
	v.Namespace = "team-a"
	v.Put("kv", "apps/web/prod", map[string]any{"session-key": "s3cr3t-session-value", "port": 5432})
	v.Put("kv", "apps/other", map[string]any{"k": "other-value"})
	v.AddToken("tok-web", "kv/apps/web")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prod.token"), []byte("tok-web\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := func(tok string) spec.SecretStores {
		return spec.SecretStores{Vault: &spec.VaultStore{Address: v.URL, Namespace: "team-a", Mount: "kv", Auth: spec.VaultAuth{Token: tok}}}
	}
	reg := NewRegistry(Credentials{Dir: dir, Getenv: env(map[string]string{"VAULT_TOKEN": "tok-web", "VAULT_OTHER": "unknown"})})
	ctx := context.Background()
	for _, tok := range []string{"env:VAULT_TOKEN", "file:prod.token"} {
		got, err := reg.Resolve(ctx, store(tok), ref(t, "ref+vault://apps/web/prod#session-key"))
		if err != nil || got != "s3cr3t-session-value" {
			t.Errorf("%s: %q %v", tok, got, err)
		}
	}
	if got, err := reg.Resolve(ctx, store("env:VAULT_TOKEN"), ref(t, "ref+vault://apps/web/prod#port")); err != nil || got != "5432" {
		t.Errorf("a number: %q %v", got, err)
	}
	fails := []struct {
		name, tok, ref string
		want           error
		words          string
	}{
		{"path not allowed", "env:VAULT_TOKEN", "ref+vault://apps/other#k", ErrDenied, "ref+vault://apps/other#k: vault " + v.URL + " (namespace team-a): permission denied: reading kv/data/apps/other"},
		{"unknown token", "env:VAULT_OTHER", "ref+vault://apps/web/prod#session-key", ErrDenied, "permission denied"},
		{"no such secret", "env:VAULT_TOKEN", "ref+vault://apps/web/dev#session-key", ErrNotFound, "not found: reading kv/data/apps/web/dev"},
		{"no such key", "env:VAULT_TOKEN", "ref+vault://apps/web/prod#password", ErrNotFound, `the secret apps/web/prod has no key "password" (it has port, session-key)`},
		{"token not given", "env:VAULT_NOPE", "ref+vault://apps/web/prod#session-key", nil, "the token: VAULT_NOPE is not set in socle's environment"},
		{"token file missing", "file:nope.token", "ref+vault://apps/web/prod#session-key", nil, "nope.token"},
	}
	for _, f := range fails {
		_, err := reg.Resolve(ctx, store(f.tok), ref(t, f.ref))
		if err == nil || f.want != nil && !errors.Is(err, f.want) || !strings.Contains(err.Error(), f.words) {
			t.Errorf("%s: %v", f.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: the error holds the value: %v", f.name, err)
		}
	}
	other := store("env:VAULT_TOKEN")
	other.Vault.Namespace = "team-b"
	if _, err := reg.Resolve(ctx, other, ref(t, "ref+vault://apps/web/prod#session-key")); !errors.Is(err, ErrDenied) {
		t.Errorf("another namespace: %v", err)
	}
	if _, err := reg.Resolve(ctx, spec.SecretStores{}, ref(t, "ref+vault://apps/web/prod#session-key")); !errors.Is(err, ErrNoStore) {
		t.Errorf("no store: %v", err)
	}
	v.Stop()
	if _, err := reg.Resolve(ctx, store("env:VAULT_TOKEN"), ref(t, "ref+vault://apps/web/prod#session-key")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("vault down: %v", err)
	}
}

// TestVaultAppRole: socle logs in once and keeps the token; it logs in
// again once two thirds of the lease have passed, and when Vault refuses
// the token it holds; a wrong secret ID is denied.
func TestVaultAppRole(t *testing.T) {
	t.Parallel()
	v := vaulttest.Start(t)
	v.Put("secret", "apps/web", map[string]any{"password": "approle-read-value"})
	v.AddAppRole("role-web", "secret-web", time.Hour, "secret/apps/web")
	creds := Credentials{Getenv: env(map[string]string{"VAULT_ROLE_ID": "role-web", "VAULT_SECRET_ID": "secret-web", "VAULT_BAD": "nope"})}
	stores := spec.SecretStores{Vault: &spec.VaultStore{Address: v.URL, Auth: spec.VaultAuth{AppRole: &spec.VaultAppRole{RoleID: "env:VAULT_ROLE_ID", SecretID: "env:VAULT_SECRET_ID"}}}}
	p, err := NewVault(stores, creds)
	if err != nil {
		t.Fatal(err)
	}
	vp := p.(*Vault)
	now := time.Now()
	vp.now = func() time.Time { return now }
	ctx := context.Background()
	r := ref(t, "ref+vault://apps/web#password")
	resolve := func(what string, logins int) {
		t.Helper()
		if got, err := p.Resolve(ctx, r); err != nil || got != "approle-read-value" {
			t.Fatalf("%s: %q %v", what, got, err)
		}
		if v.Logins() != logins {
			t.Errorf("%s: %d logins, want %d", what, v.Logins(), logins)
		}
	}
	resolve("first", 1)
	resolve("second, same token", 1)
	now = now.Add(39 * time.Minute)
	resolve("before two thirds of the lease", 1)
	now = now.Add(2 * time.Minute)
	resolve("after two thirds of the lease", 2)
	v.Expire()
	resolve("token expired early", 3)

	bad := spec.SecretStores{Vault: &spec.VaultStore{Address: v.URL, Auth: spec.VaultAuth{AppRole: &spec.VaultAppRole{RoleID: "env:VAULT_ROLE_ID", SecretID: "env:VAULT_BAD"}}}}
	if _, err := NewRegistry(creds).Resolve(ctx, bad, r); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "logging in with the AppRole at auth/approle: invalid secret id") {
		t.Errorf("bad secret ID: %v", err)
	}
}

// TestCredentials: a file credential is a name in the directory, never a
// path; socle's environment gives what env: names.
func TestCredentials(t *testing.T) {
	t.Parallel()
	c := Credentials{Dir: t.TempDir(), Getenv: env(nil)}
	for _, src := range []string{"file:../secret.key", "file:/etc/passwd", "file:.hidden", "VAULT_TOKEN", "env:"} {
		if _, err := c.Read(src); err == nil || !strings.Contains(err.Error(), "a credential is env:VAULT_… or file:NAME") {
			t.Errorf("%s: %v", src, err)
		}
	}
}
