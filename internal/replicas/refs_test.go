package replicas

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/secretref"
	"github.com/socle-dev/socle/internal/secretref/vaulttest"
	"github.com/socle-dev/socle/internal/spec"
)

// oneStore resolves every environment's references with one store, as
// the server does with the revision in force's.
type oneStore struct {
	reg    *secretref.Registry
	stores spec.SecretStores
}

func (o oneStore) Resolve(ctx context.Context, _ string, ref spec.SecretRef) (string, error) {
	return o.reg.Resolve(ctx, o.stores, ref)
}

// TestResolveRefs: when a replica starts, a secret whose value is a
// reference gets the value in Vault (the stand-in); a variable not listed
// under secrets is left as written; a reference that no longer resolves
// (the store stopped since the plan) keeps the replica from starting,
// naming the secret and the reference; without a resolver none starts.
func TestResolveRefs(t *testing.T) {
	t.Parallel()
	v := vaulttest.Start(t)
	v.Put("secret", "apps/web", map[string]any{"key": "value-from-vault"})
	v.AddToken("tok", "secret/apps/web")
	refs := oneStore{secretref.NewRegistry(secretref.Credentials{Getenv: func(string) string { return "tok" }}),
		spec.SecretStores{Vault: &spec.VaultStore{Address: v.URL, Auth: spec.VaultAuth{Token: "env:VAULT_TOKEN"}}}}
	u := &plan.Unit{App: "web", Env: "dev", Secrets: []string{"KEY"}, Containers: map[string]types.Container{"web": {}}}
	vars := func() map[string]string {
		return map[string]string{"KEY": "ref+vault://apps/web#key", "NOTE": "ref+vault://apps/web#key"}
	}
	r := New(Config{References: refs})
	got := vars()
	if err := r.resolveRefs(t.Context(), u, got); err != nil || got["KEY"] != "value-from-vault" || got["NOTE"] != "ref+vault://apps/web#key" {
		t.Errorf("%v %v", got, err)
	}
	v.Stop()
	err := r.resolveRefs(t.Context(), u, vars())
	if !errors.Is(err, secretref.ErrUnavailable) || !strings.HasPrefix(err.Error(), "secret KEY of web @ dev not resolved: ref+vault://apps/web#key: vault "+v.URL+": unavailable") {
		t.Errorf("vault stopped: %v", err)
	}
	if err := New(Config{}).resolveRefs(t.Context(), u, vars()); err == nil || !strings.Contains(err.Error(), "socle resolves no references here") {
		t.Errorf("no resolver: %v", err)
	}
}
