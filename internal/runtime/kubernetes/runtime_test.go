package kubernetes

import (
	"fmt"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
	"github.com/socle-dev/socle/internal/spec"
)

// TestSchemaUpToDate keeps schema.json equal to what Config says: change
// it, run `go test ./internal/runtime/kubernetes -run SchemaUpToDate -update`.
func TestSchemaUpToDate(t *testing.T) {
	runtimetest.CheckSchema(t, Config{}, "schema.json")
}

// platform is a socle.yaml with two environments on Kubernetes; dev's
// runtime block (line 6 on) and prod's (line 9) are the test's.
const platform = `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: acme}
environments:
  - name: dev
    runtime: %s
    sync: auto
  - name: prod
    runtime: %s
    sync: manual
    promotion: {from: dev}
`

const teams = "apiVersion: socle.dev/v1\nkind: Teams\nteams: [{name: core}]\n"

// TestConfigProblems: the kubernetes type checks its block, and every
// problem names socle.yaml, its line and column, and the field.
func TestConfigProblems(t *testing.T) {
	t.Parallel()
	reg, err := runtime.NewRegistry(Runtime(""))
	if err != nil {
		t.Fatal(err)
	}
	const prod = "{type: kubernetes, context: c, namespace: shop-prod}"
	for _, tc := range []struct {
		name, dev, prod string
		want            string
		config          *Config // dev's, decoded
	}{
		{"every field", "{type: kubernetes, context: c, namespace: shop, registry: reg.example:5000/socle, gateway: {name: public, namespace: gw, domain: shop.example.com}}", prod, "",
			&Config{Context: "c", Namespace: "shop", Registry: "reg.example:5000/socle", Gateway: &Gateway{Name: "public", Namespace: "gw", Domain: "shop.example.com"}}},
		{"namespace only", "{type: kubernetes, namespace: shop}", prod, "", &Config{Namespace: "shop"}},
		{"no namespace", "{type: kubernetes, context: c}", prod,
			`socle.yaml:6:14: environments[0].runtime.namespace: missing required field "namespace"`, nil},
		{"misspelt", "{type: kubernetes, namepsace: shop}", prod,
			`socle.yaml:6:14: environments[0].runtime.namespace: missing required field "namespace"` + "\n" +
				`socle.yaml:6:33: environments[0].runtime.namepsace: unknown field "namepsace"; did you mean "namespace"?`, nil},
		{"namespace form", "{type: kubernetes, namespace: Shop}", prod,
			`socle.yaml:6:44: environments[0].runtime.namespace: "Shop" does not have the expected form (pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)`, nil},
		{"registry with a scheme", "{type: kubernetes, namespace: shop, registry: 'https://reg.example'}", prod,
			`socle.yaml:6:60: environments[0].runtime.registry: "https://reg.example" does not have the expected form (pattern ^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$)`, nil},
		{"gateway without domain", "{type: kubernetes, namespace: shop, gateway: {name: public}}", prod,
			`socle.yaml:6:59: environments[0].runtime.gateway.domain: missing required field "domain"`, nil},
		{"one namespace twice", "{type: kubernetes, context: c, namespace: shop-prod}", prod,
			`socle.yaml:9:56: environments[1].runtime.namespace: environment "dev" already runs in namespace "shop-prod" of context "c": each environment needs a namespace of its own`,
			&Config{Context: "c", Namespace: "shop-prod"}},
		{"one namespace in two clusters", "{type: kubernetes, context: d, namespace: shop-prod}", prod, "", &Config{Context: "d", Namespace: "shop-prod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"socle.yaml": {Data: fmt.Appendf(nil, platform, tc.dev, tc.prod)},
				"teams.yaml": {Data: []byte(teams)},
			}
			r, ps := spec.LoadWith(fsys, reg)
			if got := ps.String(); got != tc.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, tc.want)
			}
			c, _ := r.Environment("dev").Runtime.Config.(*Config)
			if !reflect.DeepEqual(c, tc.config) {
				t.Errorf("dev's config = %+v, want %+v", c, tc.config)
			}
		})
	}
}

// TestTarget: an environment's units go where its config in force says,
// pulling from socle's registry unless it names another.
func TestTarget(t *testing.T) {
	t.Parallel()
	configs := map[string]any{
		"dev":  &Config{Namespace: "shop-dev", Gateway: &Gateway{Name: "public", Domain: "dev.example.com"}},
		"prod": &Config{Namespace: "shop", Registry: "reg.example/socle"},
		"box":  "the config of another runtime",
	}
	h := runtime.Host{Registry: "127.0.0.1:7070", Config: func(env string) any { return configs[env] }}
	for env, want := range map[string]Target{
		"dev":  {Namespace: "shop-dev", Registry: "127.0.0.1:7070", Gateway: &Gateway{Name: "public", Domain: "dev.example.com"}},
		"prod": {Namespace: "shop", Registry: "reg.example/socle"},
		"box":  {},
		"gone": {},
	} {
		if got := target(h, env); !reflect.DeepEqual(got, want) {
			t.Errorf("target(%s) = %+v, want %+v", env, got, want)
		}
	}
}
