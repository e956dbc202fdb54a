package replicas

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/runtime"
)

// provisioned is what the resource kind gives: db is provisioned, cache
// is not (no provisioner serves it).
type provisioned map[string]provision.Outputs

func (p provisioned) Outputs(*plan.Unit) (map[string]provision.Outputs, error) { return p, nil }

type notYet struct{}

func (notYet) Outputs(*plan.Unit) (map[string]provision.Outputs, error) {
	return nil, errors.New("resource api-db (postgres) is not provisioned yet")
}

// TestProvisionedOutputs: a resource socle provisions gives the app its
// real outputs, and its secret ones are what the server redacts; one it
// does not provision keeps the made-up outputs; one not provisioned yet
// is an error naming it.
func TestProvisionedOutputs(t *testing.T) {
	u := &plan.Unit{App: "api", Env: "dev", Resources: types.WorkloadResources{"db": {Type: "postgres"}, "cache": {Type: "redis"}},
		Containers: map[string]types.Container{"api": {Variables: map[string]string{
			"DB_HOST": "${resources.db.host}", "DB_URL": "${resources.db.url}", "DSN": "${resources.db.dsn}", "CACHE_PORT": "${resources.cache.port}"}}}}
	res := provisioned{"db": {Values: map[string]string{"host": "127.0.0.1", "url": "postgres://api:pw-0123456789@127.0.0.1:5433/api-db",
		"dsn": "host=127.0.0.1 password=pw-0123456789"}, Secret: map[string]bool{"url": true, "dsn": true}}}
	vars, err := resolveVariables(u, u.Containers["api"].Variables, []byte("secret"), res)
	if err != nil {
		t.Fatal(err)
	}
	if vars["DB_URL"] != res["db"].Values["url"] || vars["DSN"] != res["db"].Values["dsn"] || vars["CACHE_PORT"] != "6379" {
		t.Errorf("variables %v", vars)
	}
	if _, err := resolveVariables(u, map[string]string{"X": "${resources.db.password}"}, nil, res); err == nil || !strings.Contains(err.Error(), `no output "password" (it has dsn, host, url)`) {
		t.Errorf("an output the resource lacks: %v", err)
	}
	secrets := SecretValues(u, []byte("secret"), res)
	for _, want := range []string{res["db"].Values["url"], res["db"].Values["dsn"], runtime.ResourcePassword([]byte("secret"), "api", "dev", "cache")} {
		if !slices.Contains(secrets, want) {
			t.Errorf("SecretValues %q lacks %q", secrets, want)
		}
	}
	if slices.Contains(secrets, "127.0.0.1") {
		t.Error("a non-secret output is redacted")
	}
	if _, err := resolveVariables(u, u.Containers["api"].Variables, nil, notYet{}); err == nil || !strings.Contains(err.Error(), "api-db (postgres) is not provisioned yet") {
		t.Errorf("a resource not provisioned yet: %v", err)
	}
}
