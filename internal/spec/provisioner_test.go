package spec

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestProvisionerFor(t *testing.T) {
	r := &Repo{Platform: Platform{Environments: []Environment{
		{Name: "dev", Zone: "nonprod", Runtime: Runtime{Type: RuntimeLocal}},
		{Name: "prod", Zone: "prod", Runtime: Runtime{Type: "kubernetes"}},
	}}}
	r.Provisioners = []*Provisioner{
		{Name: "any-postgres", Match: ProvisionerMatch{Type: "postgres"}, Driver: DriverStatic},
		{Name: "prod-zone", Match: ProvisionerMatch{Type: "postgres", Zones: []string{"prod"}}, Driver: DriverStack},
		{Name: "prod-env", Match: ProvisionerMatch{Type: "postgres", Environments: []string{"prod"}}, Driver: DriverStack},
		{Name: "reporting", Match: ProvisionerMatch{Type: "postgres", Class: "large"}, Driver: DriverStatic},
		{Name: "shared-ledger", Match: ProvisionerMatch{Type: "postgres", ID: "ledger", Environments: []string{"dev"}}, Driver: DriverStatic},
	}
	for _, tc := range []struct{ typ, class, id, env, want string }{
		{"postgres", "", "", "dev", "any-postgres"},
		{"postgres", "", "", "prod", "prod-env"}, // the environment over the zone
		{"postgres", "large", "", "prod", "reporting"},
		{"postgres", "large", "ledger", "dev", "shared-ledger"},
		{"postgres", "large", "ledger", "prod", "reporting"},
		{"redis", "", "", "dev", "builtin/redis"}, // no provisioner of the platform: the built-in
		{"redis", "", "", "prod", ""},             // the built-in serves local runtimes only
		{"postgres", "", "", "nowhere", ""},
	} {
		got := ""
		if p := r.ProvisionerFor(tc.typ, tc.class, tc.id, tc.env); p != nil {
			got = p.Name
		}
		if got != tc.want {
			t.Errorf("ProvisionerFor(%q, %q, %q, %q) = %q, want %q", tc.typ, tc.class, tc.id, tc.env, got, tc.want)
		}
	}
	if p := r.ProvisionerFor("postgres", "", "", "dev"); p.Builtin() {
		t.Error("a platform's provisioner reported built-in")
	}
	// An environment resource's outputs are its environment's variables.
	r.Platform.Environments[0].Variables = map[string]string{"LOG_LEVEL": "debug", "REGION": "eu"}
	p := r.ProvisionerFor(TypeEnvironment, "", "", "dev")
	if p == nil || p.Name != "builtin/environment" || outputNames(p) != "LOG_LEVEL, REGION" || fmt.Sprint(p.Config["values"]) != "map[LOG_LEVEL:debug REGION:eu]" {
		t.Errorf("environment in dev served by %+v", p)
	}
	if p := r.ProvisionerFor(TypeEnvironment, "", "", "prod"); p != nil {
		t.Errorf("environment on kubernetes served by %s: socle's built-in serves local runtimes only", p.Name)
	}
	if BuiltinProvisioners[2].Outputs != nil || BuiltinProvisioners[2].Config != nil {
		t.Error("ProvisionerFor changed the built-in provisioner of environment resources")
	}
	if o := BuiltinProvisioners[0].Output("password"); o == nil || !o.Secret {
		t.Errorf("builtin postgres password output = %+v, want a secret output", o)
	}
}

const provisionersHead = "apiVersion: socle.dev/v1\nkind: Provisioners\nprovisioners:\n"

const shopScore = `apiVersion: score.dev/v1b1
metadata: {name: shop}
containers:
  main:
    image: nginx
    variables:
      DB_HOST: ${resources.db.host}
resources:
  db:
    type: postgres
`

// TestProvisionerProblems plants one mistake at a time in provisioner
// files and in workloads' resources: each is reported with file:line and
// field.
func TestProvisionerProblems(t *testing.T) {
	t.Parallel()
	const static = "  - name: managed\n    match: {type: postgres}\n    driver: static\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each a problem's whole line, or a part of one
	}{
		{"unknown driver", map[string]string{"provisioners/db.yaml": provisionersHead + "  - {name: db, match: {type: postgres}, driver: magic}\n"},
			[]string{`provisioners/db.yaml:4:49: provisioners[0].driver: expected one of process, stack, kubernetes, static, found magic`}},
		{"duplicate name", map[string]string{
			"provisioners/a.yaml": provisionersHead + "  - {name: db, match: {type: postgres}, driver: process}\n",
			"provisioners/b.yaml": provisionersHead + "  - {name: db, match: {type: redis}, driver: process}\n"},
			[]string{`provisioners/b.yaml:4:12: provisioners[0].name: a provisioner named "db" is already defined at provisioners/a.yaml:4`}},
		{"builtin name", map[string]string{"provisioners/db.yaml": provisionersHead + "  - {name: builtin/postgres, match: {type: postgres}, driver: process}\n"},
			[]string{`provisioners/db.yaml:4:12: provisioners[0].name: names starting with builtin/ are socle's own provisioners`}},
		{"unknown environment, zone and runtime", map[string]string{"provisioners/db.yaml": provisionersHead +
			"  - name: db\n    match: {type: postgres, environments: [dev, qa], zones: [apps-prod, eu], runtimes: [local, k8s]}\n    driver: process\n"},
			[]string{
				`provisioners/db.yaml:5:49: provisioners[0].match.environments[1]: no environment "qa" (known: dev, prod)`,
				`provisioners/db.yaml:5:73: provisioners[0].match.zones[1]: no zone "eu" (known: apps-nonprod, apps-prod, connectivity)`,
				`provisioners/db.yaml:5:96: provisioners[0].match.runtimes[1]: no runtime "k8s" (known: local)`,
			}},
		{"static without a value", map[string]string{"provisioners/db.yaml": provisionersHead + static +
			"    outputs: [{name: host}, {name: port}, {name: password, secret: true}]\n    config: {outputs: {host: db.internal, password: {secretFromEnv: DB_PASSWORD}}}\n"},
			[]string{`provisioners/db.yaml:8:23: provisioners[0].config.outputs: no value for output "port" in config.outputs`}},
		{"static without outputs", map[string]string{"provisioners/db.yaml": provisionersHead + static + "    outputs: [{name: host}]\n"},
			[]string{`provisioners/db.yaml:4:5: provisioners[0].config: a static provisioner gives the value of each output it declares`}},
		{"static value undeclared", map[string]string{"provisioners/db.yaml": provisionersHead + static +
			"    outputs: [{name: host}]\n    config: {outputs: {host: db.internal, hostname: db}}\n"},
			[]string{`provisioners/db.yaml:8:43: provisioners[0].config.outputs.hostname: a value for "hostname", which the provisioner does not declare in outputs (it declares host)`}},
		{"secretFromEnv for a plain output", map[string]string{"provisioners/db.yaml": provisionersHead + static +
			"    outputs: [{name: host}]\n    config: {outputs: {host: {secretFromEnv: DB_HOST}}}\n"},
			[]string{`provisioners/db.yaml:8:30: provisioners[0].config.outputs.host: secretFromEnv reads a secret: declare output "host" secret: true`}},
		{"secret in clear", map[string]string{"provisioners/db.yaml": provisionersHead + static +
			"    outputs: [{name: password, secret: true}]\n    config: {outputs: {password: hunter2}}\n"},
			[]string{`provisioners/db.yaml:8:34: warning: provisioners[0].config.outputs.password: secret output "password" is written in clear`}},
		{"stack unknown", map[string]string{"provisioners/db.yaml": provisionersHead +
			"  - {name: db, match: {type: postgres}, driver: stack, outputs: [{name: host}], config: {stack: databases}}\n"},
			[]string{`provisioners/db.yaml:4:97: provisioners[0].config.stack: no stack "databases" under stacks/ (known: app-zone, network)`}},
		{"stack output missing or not secret", map[string]string{"provisioners/db.yaml": provisionersHead +
			"  - name: db\n    match: {type: postgres}\n    driver: stack\n    outputs: [{name: hub_id}, {name: host}, {name: admin_password}]\n    config: {stack: network}\n"},
			[]string{
				`provisioners/db.yaml:7:38: provisioners[0].outputs[1].name: stack "network" declares no output "host" (outputs: admin_password, hub_cidr, hub_id)`,
				`provisioners/db.yaml:7:45: provisioners[0].outputs[2]: output "admin_password" is sensitive in stack "network": declare it secret: true`,
				`provisioners/db.yaml:8:21: provisioners[0].config.stack: stack "network" has no instance for environments dev, prod, where this provisioner serves postgres (the stack's zones: connectivity): narrow its match, or add them to the stack`,
			}},
		{"stack without an instance where it serves", map[string]string{"provisioners/db.yaml": provisionersHead +
			"  - name: db\n    match: {type: postgres, environments: [prod]}\n    driver: stack\n    outputs: [{name: hub_id}]\n    config: {stack: network}\n"},
			[]string{`provisioners/db.yaml:8:21: provisioners[0].config.stack: stack "network" has no instance for environment prod, where this provisioner serves postgres (the stack's zones: connectivity): narrow its match, or add them to the stack`}},
		{"missing output", map[string]string{"apps/shop/score.yaml": strings.Replace(shopScore, "db.host", "db.hostname", 1)},
			[]string{`apps/shop/score.yaml:7:16: containers.main.variables.DB_HOST: resource db (postgres) in environments dev, prod is provisioned by builtin/postgres (built-in), which has no output "hostname"; it has host, port, name, database, username, password, url`}},
		{"missing output of a platform provisioner, by environment", map[string]string{
			"apps/shop/score.yaml": strings.Replace(shopScore, "db.host", "db.hostname", 1),
			"provisioners/db.yaml": provisionersHead + "  - name: prod-db\n    match: {type: postgres, environments: [prod]}\n    driver: static\n    outputs: [{name: host}]\n    config: {outputs: {host: db.internal}}\n"},
			[]string{
				`apps/shop/score.yaml:7:16: containers.main.variables.DB_HOST: resource db (postgres) in environment dev is provisioned by builtin/postgres (built-in), which has no output "hostname"`,
				`apps/shop/score.yaml:7:16: containers.main.variables.DB_HOST: resource db (postgres) in environment prod is provisioned by prod-db (provisioners/db.yaml:4), which has no output "hostname"; it has host`,
			}},
		{"nested output", map[string]string{"apps/shop/score.yaml": strings.Replace(shopScore, "db.host", "db.host.name", 1)},
			[]string{`apps/shop/score.yaml:7:16: containers.main.variables.DB_HOST: ${resources.db.host.name}: output "host" of resource db is a string, with nothing to read inside it`}},
		{"undeclared resource", map[string]string{"apps/shop/score.yaml": strings.Replace(shopScore, "db.host", "cache.host", 1)},
			[]string{`apps/shop/score.yaml:7:16: containers.main.variables.DB_HOST: score: placeholder ${resources.cache.host} does not resolve to a resource, no resource with name "cache"`}},
		{"no provisioner", map[string]string{"apps/shop/score.yaml": strings.Replace(shopScore, "type: postgres", "type: mongodb", 1)},
			[]string{`apps/shop/score.yaml:10:11: resources.db.type: resource db (mongodb): no provisioner serves it in environments dev, prod: add one under provisioners/`}},
		{"not supported yet", map[string]string{"apps/shop/score.yaml": shopScore + "  data:\n    type: volume\n"},
			[]string{`apps/shop/score.yaml:12:11: resources.data.type: resource data: not supported yet by socle: volume (no provisioner serves it in environments dev, prod: the local runtime runs a replica as a process of this machine, with nothing mounted in it)`}},
		{"file content and volume source", map[string]string{"apps/shop/score.yaml": strings.Replace(shopScore, "    variables:\n      DB_HOST: ${resources.db.host}\n",
			"    files:\n      /etc/db: {content: \"host=${resources.db.hostname}\"}\n      /etc/raw: {content: \"${resources.db.nope}\", noExpand: true}\n", 1)},
			[]string{`apps/shop/score.yaml:7:26: containers.main.files./etc/db.content: resource db (postgres) in environments dev, prod is provisioned by builtin/postgres (built-in), which has no output "hostname"`}},
		{"cycle between resources", map[string]string{"apps/shop/score.yaml": shopScore +
			"  aa:\n    type: postgres\n    params: {peer: \"${resources.bb.host}\"}\n  bb:\n    type: postgres\n    params: {peer: \"${resources.aa.host}\"}\n  cc:\n    type: postgres\n    params: {peer: \"${resources.cc.host}\"}\n"},
			[]string{
				`apps/shop/score.yaml:13:20: resources.aa.params.peer: cycle between resources: aa → bb → aa`,
				`apps/shop/score.yaml:19:20: resources.cc.params.peer: cycle between resources: cc → cc`,
			}},
		{"shared resource declared differently", map[string]string{
			"apps/books/score.yaml": sharedScore("books", "type: postgres\n    class: large\n    params: {extensions: [postgis]}"),
			"apps/cart/score.yaml":  sharedScore("cart", "type: postgres\n    class: small"),
			"apps/deli/score.yaml":  sharedScore("deli", "type: postgres\n    class: large"),
			"apps/feed/score.yaml":  sharedScore("feed", "type: postgres\n    class: large\n    params: {extensions: [postgis]}"),
			"apps/till/score.yaml":  sharedScore("till", "type: redis")},
			[]string{
				`apps/cart/score.yaml:10:12: resources.db.class: resource db shares id "orders" with resource db of app books (apps/books/score.yaml), but declares class "small", not "large": workloads that share a resource declare it alike (socle provisions it once)`,
				`apps/deli/score.yaml:8:5: resources.db.params: resource db shares id "orders" with resource db of app books (apps/books/score.yaml), but declares other params`,
				`apps/till/score.yaml:9:11: resources.db.type: resource db shares id "orders" with resource db of app books (apps/books/score.yaml), but declares type redis, not postgres`,
			}},
		{"shared resource declared differently by a later app", map[string]string{
			"apps/alpha/socle.yaml": "apiVersion: socle.dev/v1\nkind: App\nowner: platform\nenvironments:\n  prod: {disabled: true}\n",
			"apps/alpha/score.yaml": sharedScore("alpha", "type: postgres"),
			"apps/beta/socle.yaml":  "apiVersion: socle.dev/v1\nkind: App\nowner: platform\nenvironments:\n  dev: {disabled: true}\n",
			"apps/beta/score.yaml":  sharedScore("beta", "type: redis"),
			"apps/gamma/score.yaml": sharedScore("gamma", "type: postgres")},
			[]string{
				`apps/gamma/score.yaml:9:11: resources.db.type: resource db shares id "orders" with resource db of app beta (apps/beta/score.yaml), but declares type postgres, not redis`,
			}},
	}
	tests = append(tests, builtinTypeProblems(t)...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fsys := stacksRepo(t)
			fsys["apps/shop/score.yaml"] = &fstest.MapFile{Data: []byte(minimalScore)}
			for f, data := range tc.files {
				fsys[f] = &fstest.MapFile{Data: []byte(data)}
			}
			_, ps := Load(fsys)
			got := ps.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("want a problem %q, got:\n%s", w, got)
				}
			}
			if n := len(ps); n != len(tc.want) {
				t.Errorf("want %d problems, got %d:\n%s", len(tc.want), n, got)
			}
		})
	}
}

// TestProvisionersLoad: a platform's provisioners are read in file order,
// each with where it is declared, and serve before the built-in ones.
func TestProvisionersLoad(t *testing.T) {
	t.Parallel()
	fsys := stacksRepo(t)
	fsys["apps/shop/score.yaml"] = &fstest.MapFile{Data: []byte(shopScore)}
	fsys["provisioners/b.yaml"] = &fstest.MapFile{Data: []byte(provisionersHead + "  - name: prod-db\n    match: {type: postgres, zones: [apps-prod]}\n    driver: stack\n    outputs: [{name: hub_id}, {name: host}]\n    config: {stack: network}\n")}
	fsys["provisioners/a.yaml"] = &fstest.MapFile{Data: []byte(provisionersHead + "  - {name: cache, match: {type: redis}, driver: process, outputs: [{name: host}]}\n")}
	r, ps := Load(fsys)
	want := `provisioners/b.yaml:7:38: provisioners[0].outputs[1].name: stack "network" declares no output "host"`
	if !strings.Contains(ps.String(), want) {
		t.Fatalf("want %q, got:\n%s", want, ps)
	}
	var got []string
	for _, p := range r.Provisioners {
		got = append(got, fmt.Sprintf("%s %s:%d", p.Name, p.File, p.Line))
	}
	if s := strings.Join(got, ", "); s != "cache provisioners/a.yaml:4, prod-db provisioners/b.yaml:4" {
		t.Errorf("provisioners = %s", s)
	}
	if p := r.ProvisionerFor("postgres", "", "", "prod"); p == nil || p.Name != "prod-db" {
		t.Errorf("postgres in prod served by %v, want prod-db", p)
	}
}

// builtinTypeProblems are TestProvisionerProblems' cases of the types
// socle's built-in provisioners compute: environment, service-port.
func builtinTypeProblems(t *testing.T) []struct {
	name  string
	files map[string]string
	want  []string
} {
	platform, err := os.ReadFile("testdata/stacks/socle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// dev declares variables, prod none.
	withVars := func(vars string) string {
		return strings.Replace(string(platform), "    sync: auto\n", "    sync: auto\n    variables: "+vars+"\n", 1)
	}
	const envScore = `apiVersion: score.dev/v1b1
metadata: {name: shop}
containers:
  main:
    image: nginx
    variables:
      LEVEL: ${resources.env.LOG_LEVEL}
resources:
  env:
    type: environment
`
	const web = `apiVersion: score.dev/v1b1
metadata: {name: web}
containers:
  main:
    image: nginx
service:
  ports:
    http: {port: 8080}
    metrics: {port: 9090}
`
	servicePort := func(params string) string {
		return "apiVersion: score.dev/v1b1\nmetadata: {name: shop}\ncontainers:\n  main:\n    image: nginx\n" +
			"    variables:\n      WEB: http://${resources.web.hostname}:${resources.web.port}\n" +
			"resources:\n  web:\n    type: service-port\n    params: " + params + "\n"
	}
	return []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"environment variable declared in one environment only", map[string]string{"socle.yaml": withVars("{LOG_LEVEL: debug}"), "apps/shop/score.yaml": envScore},
			[]string{`apps/shop/score.yaml:7:14: containers.main.variables.LEVEL: resource env (environment) in environment prod has no output "LOG_LEVEL": its outputs are the environment's variables, and it declares none; declare LOG_LEVEL under the environment's variables in socle.yaml`}},
		{"environment variable undeclared", map[string]string{"socle.yaml": withVars("{LOG: debug, TRACE: off}"), "apps/shop/score.yaml": envScore},
			[]string{
				`resource env (environment) in environment dev has no output "LOG_LEVEL": its outputs are the environment's variables, which are LOG, TRACE`,
				`resource env (environment) in environment prod has no output "LOG_LEVEL"`,
			}},
		{"environment variable named with a dot", map[string]string{"socle.yaml": withVars("{LOG.LEVEL: debug}")},
			[]string{`socle.yaml:13:17: environments[0].variables.LOG.LEVEL: variable "LOG.LEVEL": workloads read it as ${resources.<resource>.LOG.LEVEL}: letters, digits, _ and - only`}},
		{"service-port to an unknown workload", map[string]string{"apps/shop/score.yaml": servicePort("{workload: wbe, port: http}")},
			[]string{`apps/shop/score.yaml:11:24: resources.web.params.workload: resource web (service-port): no workload "wbe" under apps/ (there are shop)`}},
		{"service-port to an unknown port", map[string]string{"apps/shop/score.yaml": servicePort("{workload: web, port: grpc}"), "apps/web/score.yaml": web},
			[]string{`apps/shop/score.yaml:11:35: resources.web.params.port: resource web (service-port): workload web has no service port "grpc" (it has http, metrics)`}},
		{"service-port to a workload with no service", map[string]string{"apps/shop/score.yaml": servicePort("{workload: web, port: http}"), "apps/web/score.yaml": strings.Replace(minimalScore, "shop", "web", 1)},
			[]string{`resources.web.params.port: resource web (service-port): workload web has no service port "http" (it has no service)`}},
		{"service-port without params", map[string]string{"apps/shop/score.yaml": servicePort("{}")},
			[]string{
				`apps/shop/score.yaml:11:13: resources.web.params: resource web (service-port): params.workload names the workload whose port it reaches`,
				`apps/shop/score.yaml:11:13: resources.web.params: resource web (service-port): params.port names the service port it reaches`,
			}},
		{"service-port to a workload disabled in prod", map[string]string{"apps/shop/score.yaml": servicePort("{workload: web, port: metrics}"), "apps/web/score.yaml": web,
			"apps/web/socle.yaml": "apiVersion: socle.dev/v1\nkind: App\nowner: platform\nenvironments:\n  prod: {disabled: true}\n"},
			[]string{`apps/shop/score.yaml:11:24: resources.web.params.workload: resource web (service-port): workload web is disabled in environment prod`}},
	}
}

// sharedScore is app's workload with one resource db of id orders,
// declared by decl (its type, class, params).
func sharedScore(app, decl string) string {
	return "apiVersion: score.dev/v1b1\nmetadata: {name: " + app + "}\ncontainers:\n  main:\n    image: nginx\nresources:\n  db:\n    id: orders\n    " + decl + "\n"
}
