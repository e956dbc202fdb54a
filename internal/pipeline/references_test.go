package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/secretref"
	"github.com/socle-dev/socle/internal/secretref/vaulttest"
	"github.com/socle-dev/socle/internal/spec"
)

// TestWithReferences: a reference that resolves leaves the unit as it
// is, the reference in place of the value; one denied, not found, or
// of an environment with no store blocks its unit with the app, the
// environment, the secret and the reference, and no value; without a
// resolver every unit with a reference is blocked.
func TestWithReferences(t *testing.T) {
	t.Parallel()
	v := vaulttest.Start(t)
	v.Put("secret", "apps/web", map[string]any{"key": "resolved-web-key"})
	v.Put("secret", "apps/other", map[string]any{"key": "other-key"})
	v.AddToken("tok", "secret/apps/web")
	store := &spec.SecretStores{Vault: &spec.VaultStore{Address: v.URL, Auth: spec.VaultAuth{Token: "env:VAULT_TOKEN"}}}
	repo := &spec.Repo{Platform: spec.Platform{SecretStores: store, Environments: []spec.Environment{
		{Name: "dev"}, {Name: "preprod"}, {Name: "prod"}, {Name: "sandbox"}}}}
	unit := func(env, ref string) plan.Unit {
		return plan.Unit{App: "web", Env: env, Secrets: []string{"KEY"}, Containers: map[string]types.Container{"web": {Variables: map[string]string{"KEY": ref, "MODE": "ref+vault://x#y"}}}}
	}
	units := []plan.Unit{
		unit("dev", "ref+vault://apps/web#key"),
		unit("preprod", "ref+vault://apps/other#key"),
		unit("prod", "ref+vault://apps/web/none#key"),
		unit("sandbox", "plain-sops-value"),
	}
	reg := secretref.NewRegistry(secretref.Credentials{Getenv: func(k string) string { return map[string]string{"VAULT_TOKEN": "tok"}[k] }})
	blocked := withReferences(context.Background(), repo, units, reg)
	if got := units[0].Containers["web"].Variables["KEY"]; got != "ref+vault://apps/web#key" {
		t.Errorf("dev's KEY reads %q: the desired state keeps the reference", got)
	}
	want := map[string]string{
		"preprod": "secret KEY of web @ preprod not resolved: ref+vault://apps/other#key: vault " + v.URL + ": permission denied: reading secret/data/apps/other",
		"prod":    "secret KEY of web @ prod not resolved: ref+vault://apps/web/none#key: vault " + v.URL + ": not found: reading secret/data/apps/web/none",
	}
	if len(blocked) != len(want) {
		t.Errorf("blocked: %+v", blocked)
	}
	for env, w := range want {
		b := blocked[plan.Key{App: "web", Env: env}]
		if b.Reason != reconcile.ReasonSecretUnresolved || !strings.HasPrefix(b.Message, w) || !strings.HasSuffix(b.Message, "; the unit keeps its last applied state") {
			t.Errorf("%s: %+v\nwant %s", env, b, w)
		}
		if strings.Contains(b.Message, "other-key") || strings.Contains(b.Message, "resolved-web-key") {
			t.Errorf("%s: a value in the message: %s", env, b.Message)
		}
	}
	noStore := &spec.Repo{Platform: spec.Platform{Environments: []spec.Environment{{Name: "dev"}}}}
	if b := withReferences(context.Background(), noStore, units[:1], reg); !strings.Contains(b[plan.Key{App: "web", Env: "dev"}].Message, "no secret store: no secretStores.vault in socle.yaml for this environment") {
		t.Errorf("no store: %+v", b)
	}
	if b := withReferences(context.Background(), repo, units[:1], nil); !strings.Contains(b[plan.Key{App: "web", Env: "dev"}].Message, "socle resolves no references here") {
		t.Errorf("no resolver: %+v", b)
	}
	v.Stop()
	down := withReferences(context.Background(), repo, units[:3], reg)
	if b := down[plan.Key{App: "web", Env: "dev"}]; !strings.Contains(b.Message, "ref+vault://apps/web#key: vault "+v.URL+": unavailable: reading secret/data/apps/web") {
		t.Errorf("vault down: %+v", b)
	}
	// The others of the same store are not asked again in this pass.
	for _, env := range []string{"preprod", "prod"} {
		if b := down[plan.Key{App: "web", Env: env}]; !strings.Contains(b.Message, ": not asked: its store did not answer for ref+vault://apps/web#key just before: unavailable") {
			t.Errorf("vault down, %s: %+v", env, b)
		}
	}
}

// TestBlockedByUnresolved: a plan body's held secrets carry the reason of
// their kind, a file not decrypted or a reference not resolved.
func TestBlockedByUnresolved(t *testing.T) {
	t.Parallel()
	b := PlanBody{Secrets: map[string]string{"web@prod": "secret KEY…", "api@prod": "apps/api/secrets.prod.yaml…"}, Unresolved: []string{"web@prod"}}
	got := b.BlockedBy()
	if got[plan.Key{App: "web", Env: "prod"}].Reason != reconcile.ReasonSecretUnresolved || got[plan.Key{App: "api", Env: "prod"}].Reason != reconcile.ReasonSecretUndecryptable {
		t.Errorf("%+v", got)
	}
}
