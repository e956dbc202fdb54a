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

// TestPortPlaceholderKept: Score's placeholders are resolved, socle's port
// placeholders are left for the driver, which alone knows the port.
func TestPortPlaceholderKept(t *testing.T) {
	u := &plan.Unit{App: "site", Env: "dev"}
	vars, err := resolveVariables(u, map[string]string{"LISTEN": "${metadata.name}:${socle.port}", "ADMIN": "${socle.port.admin}"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vars["LISTEN"] != "site:${socle.port}" || vars["ADMIN"] != "${socle.port.admin}" {
		t.Errorf("variables %v", vars)
	}
}

// TestImageRef: a runtime that pulls images gets socle's build from
// socle's registry under the app's repository, an external image from its
// own repository, each by the digest the release pins.
func TestImageRef(t *testing.T) {
	r := &Runtime{cfg: Config{Registry: "127.0.0.1:7000"}}
	const d = "sha256:0123"
	for _, tc := range []struct{ image, digest, want string }{
		{".", d, "127.0.0.1:7000/apps/web@sha256:0123"},
		{"docker.io/library/nginx:1.27", d, "docker.io/library/nginx@sha256:0123"},
		{"localhost:5000/busybox@sha256:ffff", d, "localhost:5000/busybox@sha256:0123"},
		{"nginx:1.27", "", "nginx:1.27"},
	} {
		if got := r.imageRef("web", tc.image, tc.digest); got != tc.want {
			t.Errorf("imageRef(%s, %s) = %s, want %s", tc.image, tc.digest, got, tc.want)
		}
	}
}

// TestLimits: Score's resources.limits are Kubernetes quantities.
func TestLimits(t *testing.T) {
	s := func(v string) *string { return &v }
	l, err := limitsOf(&types.ContainerResources{Limits: &types.ResourcesLimits{Cpu: s("500m"), Memory: s("128Mi")}})
	if err != nil || l != (runtime.Limits{MilliCPU: 500, Memory: 128 << 20}) {
		t.Errorf("limits %+v, %v", l, err)
	}
	if l, err := limitsOf(nil); err != nil || l != (runtime.Limits{}) {
		t.Errorf("no limits: %+v, %v", l, err)
	}
	if _, err := limitsOf(&types.ContainerResources{Limits: &types.ResourcesLimits{Memory: s("lots")}}); err == nil || !strings.Contains(err.Error(), `resources.limits.memory: "lots"`) {
		t.Errorf("a bad quantity: %v", err)
	}
}
