package plan

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"
)

func TestRedact(t *testing.T) {
	u := Unit{App: "api", Env: "dev", Secrets: []string{"API_KEY"}, Containers: map[string]types.Container{
		"api": {Variables: types.ContainerVariables{
			"API_KEY":      "planted-s3cret",
			"DATABASE_URL": "postgres://${resources.db.username}:${resources.db.password}@${resources.db.host}/x",
			"DB_HOST":      "${resources.db.host}",
			"LOG_LEVEL":    "debug",
		}},
	}}
	if got, want := strings.Join(u.SecretVariables(), ","), "API_KEY,DATABASE_URL"; got != want {
		t.Errorf("SecretVariables = %s, want %s", got, want)
	}
	r := u.Redact()
	vars := r.Containers["api"].Variables
	for k, want := range map[string]string{"API_KEY": Redacted, "DATABASE_URL": Redacted, "DB_HOST": "${resources.db.host}", "LOG_LEVEL": "debug"} {
		if vars[k] != want {
			t.Errorf("%s = %q, want %q", k, vars[k], want)
		}
	}
	if u.Containers["api"].Variables["API_KEY"] != "planted-s3cret" {
		t.Error("Redact changed the unit it was given")
	}

	old := u
	old.Containers = map[string]types.Container{"api": {Variables: types.ContainerVariables{"API_KEY": "older-s3cret", "LOG_LEVEL": "info"}}}
	p := Diff("abc", []Unit{u}, []Unit{old})
	b, _ := json.Marshal(RedactPlan(p, []Unit{old}))
	for _, s := range []string{"planted-s3cret", "older-s3cret", "resources.db.password"} {
		if strings.Contains(string(b), s) {
			t.Errorf("redacted plan holds %q: %s", s, b)
		}
	}
	if !strings.Contains(string(b), "LOG_LEVEL") || !strings.Contains(string(b), `"debug"`) {
		t.Errorf("redacted plan lost what is not secret: %s", b)
	}
}

// TestRedactRemovedSecret: a commit that drops a secret variable must not
// show its old value in the plan.
func TestRedactRemovedSecret(t *testing.T) {
	old := Unit{App: "web", Env: "dev", Secrets: []string{"API_KEY"}, Containers: map[string]types.Container{
		"web": {Variables: types.ContainerVariables{"API_KEY": "older-s3cret", "LOG_LEVEL": "info"}}}}
	u := old
	u.Secrets = nil
	u.Containers = map[string]types.Container{"web": {Variables: types.ContainerVariables{"LOG_LEVEL": "info"}}}
	b, _ := json.Marshal(RedactPlan(Diff("abc", []Unit{u}, []Unit{old}), []Unit{old}))
	if strings.Contains(string(b), "older-s3cret") || !strings.Contains(string(b), "API_KEY") {
		t.Errorf("the plan of a removed secret: %s", b)
	}
}
