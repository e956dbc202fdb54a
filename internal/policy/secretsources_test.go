package policy

import (
	"os"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"
)

// TestProdSecretsFromReferences: the example guardrail of testdata denies
// a production change whose secret is a value (from a SOPS file, as the
// pipeline gives it), allows one whose secrets are all references to
// Vault, and leaves other environments alone; its message holds no value.
func TestProdSecretsFromReferences(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/prod-secrets-from-references.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, problems := compile(t, map[string]string{"policies/secrets.yaml": string(b)})
	if len(problems) > 0 {
		t.Fatalf("the example does not compile: %v", problems)
	}
	const sopsValue = "decrypted-from-sops-value"
	withSecrets := func(env string, vars map[string]string) Input {
		u := webUnit(env)
		c := u.Containers["web"]
		c.Variables = types.ContainerVariables{"LOG_LEVEL": "info"}
		for k, v := range vars {
			c.Variables[k] = v
			u.Secrets = append(u.Secrets, k)
		}
		u.Containers = map[string]types.Container{"web": c}
		return create(u)
	}
	tests := []struct {
		name, env string
		vars      map[string]string
		deny      bool
	}{
		{"a SOPS value in prod", "prod", map[string]string{"SESSION_KEY": sopsValue}, true},
		{"one value among references in prod", "prod", map[string]string{"SESSION_KEY": "ref+vault://apps/web#session-key", "DB_PASSWORD": sopsValue}, true},
		{"no secret in prod", "prod", map[string]string{}, false},
		{"references in prod", "prod", map[string]string{"SESSION_KEY": "ref+vault://apps/web#session-key", "DB_PASSWORD": "ref+vault://apps/db#password"}, false},
		{"a SOPS value in preprod", "preprod", map[string]string{"SESSION_KEY": sopsValue}, false},
	}
	for _, tt := range tests {
		v := verdict(set.Evaluate(withSecrets(tt.env, tt.vars)), "prod-secrets-from-references")
		if v == nil {
			t.Errorf("%s: not judged", tt.name)
			continue
		}
		if v.Blocks() != tt.deny {
			t.Errorf("%s: %+v, want deny %v", tt.name, v, tt.deny)
		}
		if strings.Contains(v.Message, sopsValue) {
			t.Errorf("%s: the message holds the value: %s", tt.name, v.Message)
		}
	}
	// A secret listed that no container has is not a reference: denied.
	in := withSecrets("prod", nil)
	in.Change.Desired.Secrets = []string{"MISSING"}
	if v := verdict(set.Evaluate(in), "prod-secrets-from-references"); v == nil || !v.Blocks() {
		t.Errorf("a listed secret with no value: %+v", v)
	}
}
