package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

const secretApp = "apiVersion: socle.dev/v1\nkind: App\nowner: core\nsecrets: [API_KEY, PIN]\n"

// TestSecretValuesStayOutOfGit: a name listed under secrets with a value
// in clear fails validate, at its file and line; a secret file in clear
// fails; a random-looking literal is warned of; a SOPS file and a
// placeholder pass.
func TestSecretValuesStayOutOfGit(t *testing.T) {
	t.Parallel()
	sops := "API_KEY: ENC[AES256_GCM,data:abc=,iv:x=,tag:y=,type:str]\nsops:\n    age:\n        - recipient: age1x\n    version: 3.13.3\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // problems, as String renders them; "" for none
	}{
		{"placeholder and SOPS file", map[string]string{
			"apps/shop/socle.yaml":       secretApp,
			"apps/shop/score.yaml":       minimalScore + "    variables: {API_KEY: \"${metadata.name}\", MODE: fast}\n",
			"apps/shop/secrets.dev.yaml": sops,
		}, nil},
		{"clear value in the Score file", map[string]string{
			"apps/shop/socle.yaml": secretApp,
			"apps/shop/score.yaml": minimalScore + "    variables:\n      PIN: \"123\"\n",
		}, []string{`apps/shop/score.yaml:7:12: containers.main.variables.PIN: PIN is listed under secrets in apps/shop/socle.yaml but has its value here, in Git in clear`}},
		{"clear value in an override", map[string]string{
			"apps/shop/socle.yaml": secretApp + "environments:\n  prod:\n    variables: {API_KEY: abc}\n",
			"apps/shop/score.yaml": minimalScore,
		}, []string{`apps/shop/socle.yaml:7:26: environments.prod.variables.API_KEY: API_KEY is listed under secrets`}},
		{"secret file in clear", map[string]string{
			"apps/shop/socle.yaml":       secretApp,
			"apps/shop/score.yaml":       minimalScore,
			"apps/shop/secrets.dev.yaml": "API_KEY: hunter2\n",
		}, []string{`apps/shop/secrets.dev.yaml:1:10: API_KEY: value in clear`, `apps/shop/secrets.dev.yaml:1:1: not a SOPS file`}},
		{"secret file of no environment, name not listed", map[string]string{
			"apps/shop/socle.yaml":         secretApp,
			"apps/shop/score.yaml":         minimalScore,
			"apps/shop/secrets.stage.yaml": strings.Replace(sops, "API_KEY", "OTHER", 1),
		}, []string{`apps/shop/secrets.stage.yaml: warning: "stage" is neither an environment nor a zone`, `apps/shop/secrets.stage.yaml:1:1: warning: OTHER: not listed under secrets`}},
		{"high entropy literal", map[string]string{
			"apps/shop/score.yaml": minimalScore + "    variables:\n      STRIPE: sk9Qw3Lz7Xv2Rt8Yp4Mn6Bc1Kd5Hf0Jg\n",
		}, []string{`apps/shop/score.yaml:7:15: warning: containers.main.variables.STRIPE: STRIPE's value looks like a key or a token`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := minimalRepo()
			for f, d := range tt.files {
				fsys[f] = &fstest.MapFile{Data: []byte(d)}
			}
			_, ps := Load(fsys)
			got := ps.String()
			if len(tt.want) == 0 && len(ps) > 0 {
				t.Fatalf("problems:\n%s", got)
			}
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

func TestHighEntropy(t *testing.T) {
	for v, want := range map[string]bool{
		"sk9Qw3Lz7Xv2Rt8Yp4Mn6Bc1Kd5Hf0Jg":         true,
		"ghp_4f9a2cZk8LmQ7rT1xV3bN6pW0sY5dE2hJ9uK": true,
		"Grüezi from Alpenrose":                    false,
		"http://api.shop.internal":                 false,
		"debug":                                    false,
		"0123456789abcdef0123":                     false, // 16 symbols: 4 bits a character at most
		"production-eu-west-1-cluster":             false,
	} {
		if got := highEntropy(v); got != want {
			t.Errorf("highEntropy(%q) = %v", v, got)
		}
	}
}
