package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

const vaultStores = "secretStores:\n  vault:\n    address: https://vault.example.com:8200\n    auth: {token: \"env:VAULT_TOKEN\"}\n"

// TestSecretRefsValidate: a reference stands for a secret's value in Git
// (it is not the value); a malformed one, one for a name not listed under
// secrets, one with no store of its scheme, and a store's credentials
// given any other way than env:VAULT_… or file:NAME fail at file:line.
func TestSecretRefsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		platform string // appended to the minimal platform
		files    map[string]string
		want     []string
	}{
		{"reference in the Score file", vaultStores, map[string]string{
			"apps/shop/socle.yaml": secretApp,
			"apps/shop/score.yaml": minimalScore + "    variables: {API_KEY: \"ref+vault://apps/shop#api-key\"}\n",
		}, nil},
		{"malformed reference", vaultStores, map[string]string{
			"apps/shop/socle.yaml": secretApp,
			"apps/shop/score.yaml": minimalScore + "    variables:\n      PIN: \"ref+vault://apps/shop\"\n",
		}, []string{`apps/shop/score.yaml:7:12: containers.main.variables.PIN: PIN: a reference is ref+<scheme>://<path>#<key>`}},
		{"unknown scheme", vaultStores, map[string]string{
			"apps/shop/socle.yaml": secretApp + "environments:\n  prod:\n    variables: {API_KEY: \"ref+awssm://x#y\"}\n",
		}, []string{`apps/shop/socle.yaml:7:26: environments.prod.variables.API_KEY: API_KEY: socle resolves no references of scheme "awssm" (it knows vault)`}},
		{"reference for a name not secret", vaultStores, map[string]string{
			"apps/shop/score.yaml": minimalScore + "    variables:\n      MODE: \"ref+vault://apps/shop#mode\"\n",
		}, []string{`apps/shop/score.yaml:7:13: containers.main.variables.MODE: MODE's value is a reference to a secret manager, which socle resolves only for a name listed under secrets`}},
		{"no store", "", map[string]string{
			"apps/shop/socle.yaml": secretApp,
			"apps/shop/score.yaml": minimalScore + "    variables:\n      PIN: \"ref+vault://apps/shop#pin\"\n",
		}, []string{`PIN refers to ref+vault://apps/shop#pin, but neither socle.yaml nor any of its environments has secretStores.vault`}},
		{"token in clear", strings.Replace(vaultStores, "env:VAULT_TOKEN", "hvs.CAESIJ", 1), nil,
			[]string{`socle.yaml:15:19: secretStores.vault.auth.token: "hvs.CAESIJ" does not have the expected form`}},
		{"token from another variable", strings.Replace(vaultStores, "env:VAULT_TOKEN", "env:SOCLE_ADMIN_TOKEN", 1), nil,
			[]string{`socle.yaml:15:19: secretStores.vault.auth.token: "env:SOCLE_ADMIN_TOKEN" does not have the expected form`}},
		{"token and approle", strings.Replace(vaultStores, "}", ", appRole: {roleId: \"env:VAULT_ROLE_ID\", secretId: \"file:prod.secret-id\"}}", 1), nil,
			[]string{`secretStores.vault.auth: vault auth: give a token (env:VAULT_… or file:…) or an appRole, one of the two`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := minimalRepo()
			fsys["socle.yaml"] = &fstest.MapFile{Data: []byte(minimalPlatform + tt.platform)}
			for f, d := range tt.files {
				fsys[f] = &fstest.MapFile{Data: []byte(d)}
			}
			_, ps := Load(fsys)
			got := ps.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in:\n%s", w, got)
				}
			}
			if len(ps) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(ps), len(tt.want), got)
			}
		})
	}
}

func TestParseSecretRef(t *testing.T) {
	t.Parallel()
	r, ok, err := ParseSecretRef("ref+vault://apps/web/prod#session-key")
	if !ok || err != nil || r != (SecretRef{Scheme: "vault", Path: "apps/web/prod", Key: "session-key"}) || r.String() != "ref+vault://apps/web/prod#session-key" {
		t.Errorf("got %+v %v %v", r, ok, err)
	}
	if _, ok, err := ParseSecretRef("hunter2"); ok || err != nil {
		t.Errorf("a plain value: %v %v", ok, err)
	}
	for _, bad := range []string{"ref+vault://#k", "ref+vault://a/../b#k", "ref+vault://a#", "ref+vault:/a#k", "ref+Vault://a#k", "ref+gcp://a#k"} {
		if _, ok, err := ParseSecretRef(bad); !ok || err == nil {
			t.Errorf("%s: %v %v", bad, ok, err)
		}
	}
}
