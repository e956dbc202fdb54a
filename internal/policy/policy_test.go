package policy

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf8"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

// platformYAML is a small platform: dev → preprod → prod in their zones, and
// a sandbox.
const platformYAML = `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: test}
zones:
  - {name: apps-nonprod, kind: application}
  - {name: apps-prod, kind: application, account: acme-apps-prod}
  - {name: sandbox, kind: sandbox}
environments:
  - {name: dev, zone: apps-nonprod, runtime: {type: local}, sync: auto}
  - {name: preprod, zone: apps-nonprod, runtime: {type: local}, sync: manual, promotion: {from: dev}}
  - {name: prod, zone: apps-prod, runtime: {type: local}, sync: manual, promotion: {from: preprod}}
  - {name: sandbox, zone: sandbox, runtime: {type: local}, sync: auto}
`

const teamsYAML = `apiVersion: socle.dev/v1
kind: Teams
teams:
  - name: bookings
    members:
      - {user: marco, role: developer}
      - {user: sofia, role: approver}
`

// repoFS is the small platform with extra files (policies, overrides, tests).
func repoFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{
		"socle.yaml": {Data: []byte(platformYAML)},
		"teams.yaml": {Data: []byte(teamsYAML)},
	}
	for _, app := range []string{"api", "web"} {
		fsys["apps/"+app+"/score.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: score.dev/v1b1\nmetadata: {name: " + app +
			"}\ncontainers:\n  " + app + ":\n    image: registry.example/" + app + ":1.0.0\n")}
		fsys["apps/"+app+"/socle.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: socle.dev/v1\nkind: App\nowner: bookings\n")}
	}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

// compile loads and compiles a repository that must be valid but for its
// policies; it returns the set and the policy problems.
func compile(t *testing.T, files map[string]string) (*Set, spec.Problems) {
	t.Helper()
	fsys := repoFS(files)
	repo, problems := spec.Load(fsys)
	if err := problems.Err(); err != nil {
		t.Fatalf("test repository does not load: %v", err)
	}
	return Compile(repo, fsys)
}

func policies(ps ...string) map[string]string {
	return map[string]string{"policies/test.yaml": "apiVersion: socle.dev/v1\nkind: Policies\npolicies:\n" + strings.Join(ps, "")}
}

func ptr[T any](v T) *T { return &v }

// webUnit is a unit that every built-in allows in env: a pinned image with
// limits, a readiness probe, a service port, an owner that exists.
func webUnit(env string) *plan.Unit {
	zone := map[string]string{"dev": "apps-nonprod", "preprod": "apps-nonprod", "prod": "apps-prod", "sandbox": "sandbox"}[env]
	return &plan.Unit{
		App: "web", Env: env, Team: "bookings", Zone: zone, Source: "sha256:src", Runtime: spec.RuntimeLocal,
		Replicas: spec.Replicas{Min: 2, Max: 4}, Rollout: spec.DefaultRollout,
		Containers: map[string]types.Container{
			"web": {
				Image:          "registry.example/web:1.4.2",
				Variables:      types.ContainerVariables{"LOG_LEVEL": "info"},
				Resources:      &types.ContainerResources{Limits: &types.ResourcesLimits{Cpu: ptr("500m"), Memory: ptr("128Mi")}},
				ReadinessProbe: &types.ContainerProbe{HttpGet: &types.HttpProbe{Path: "/readyz", Port: 8080}},
			},
		},
		Service: &types.WorkloadService{Ports: types.WorkloadServicePorts{"http": {Port: 80}}},
	}
}

func create(u *plan.Unit) Input {
	return Input{Change: plan.Change{Action: plan.Create, App: u.App, Env: u.Env, Desired: u}, Context: Context{Now: testNow}}
}

var testNow = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

// verdict returns the verdict of one policy, or nil when it did not select the change.
func verdict(vs Verdicts, policy string) *Verdict {
	for i := range vs {
		if vs[i].Policy == policy {
			return &vs[i]
		}
	}
	return nil
}

func TestCompileErrorsAreLocated(t *testing.T) {
	t.Parallel()
	_, problems := compile(t, policies(
		// line 4: a misspelt field in a plain scalar
		`  - {name: plain, severity: deny, message: m, expression: change.new.replica.min > 1}
`,
		// line 5-6: a quoted scalar with a syntax error
		`  - name: quoted
    severity: deny
    message: m
    expression: "change.app == 'web' &&"
`,
		// a folded scalar: the error is on its second line
		`  - name: folded
    severity: warn
    message: m
    expression: >-
      change.app == 'web' &&
        change.new.containers.exists(n, n.startsWith(1))
`,
		// a literal scalar: the error is on its third line
		`  - name: literal
    severity: warn
    message: m
    expression: |
      change.app == 'web'
      &&
      change.nope
`,
		// not a bool
		`  - {name: count, severity: warn, message: m, expression: "size(change.new.containers)"}
`,
		// an unknown placeholder, a built-in's name
		`  - {name: owner-team-exists, severity: warn, message: "{{app}} in {{environment}}", expression: "true"}
`,
	))
	var got []string
	for _, p := range problems {
		got = append(got, truncate(p.String(), 90))
	}
	// Columns point at the offending token: the dot of a select, the
	// parenthesis of a call, the end of the input for a syntax error, the start of the value otherwise.
	want := []string{
		`policies/test.yaml:4:69: policies[0].expression: CEL: undefined field 'replica'`,
		`policies/test.yaml:8:40: policies[1].expression: CEL: Syntax error: mismatched input '<EOF…`,
		`policies/test.yaml:14:53: policies[2].expression: CEL: found no matching overload for 'sta…`,
		`policies/test.yaml:21:13: policies[3].expression: CEL: undefined field 'nope'`,
		`policies/test.yaml:22:60: policies[4].expression: CEL: the expression gives int, not bool:…`,
		`policies/test.yaml:23:12: policies[5].name: "owner-team-exists" is the name of a built-in …`,
		`policies/test.yaml:23:56: policies[5].message: unknown placeholder {{environment}} in mess…`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBrokenPolicyDeniesWhatItMatches(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, policies(`  - {name: typo, severity: warn, message: m, match: {environments: [prod]}, expression: "change.nope"}
`))
	if len(problems) != 1 {
		t.Fatalf("want one problem, got %v", problems)
	}
	if v := verdict(set.Evaluate(create(webUnit("dev"))), "typo"); v != nil {
		t.Errorf("a broken policy still matches only what it selects: %+v", v)
	}
	v := verdict(set.Evaluate(create(webUnit("prod"))), "typo")
	if v == nil || !v.Blocks() || !strings.Contains(v.Message, "does not compile") {
		t.Errorf("a broken policy must deny what it matches, got %+v", v)
	}
}

func TestCostLimit(t *testing.T) {
	t.Parallel()
	// 200³ iterations are far above the limit, whatever the input.
	big := "[" + strings.Repeat("0,", 199) + "0]"
	set, problems := compile(t, policies(`  - name: expensive
    severity: warn
    message: m
    expression: "`+big+`.all(x, `+big+`.all(y, `+big+`.all(z, x + y + z >= 0)))"
`))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	v := verdict(set.Evaluate(create(webUnit("dev"))), "expensive")
	if v == nil || v.Allowed || v.Severity != spec.SeverityDeny || !strings.Contains(v.Message, "exceeded the evaluation cost limit") {
		t.Errorf("an expression over the cost limit must deny with a clear message, got %+v", v)
	}
}

func TestMatchSelects(t *testing.T) {
	t.Parallel()
	set, _ := compile(t, policies(
		`  - {name: all, severity: warn, message: m, expression: "true"}
`, `  - {name: prod-only, severity: warn, message: m, match: {environments: [prod]}, expression: "true"}
`, `  - {name: nonprod-zone, severity: warn, message: m, match: {zones: [apps-nonprod]}, expression: "true"}
`, `  - {name: api-in-prod, severity: warn, message: m, match: {apps: [api], environments: [prod]}, expression: "true"}
`))
	for _, tt := range []struct {
		app, env string
		want     []string
	}{
		{"web", "dev", []string{"all", "nonprod-zone"}},
		{"web", "preprod", []string{"all", "nonprod-zone"}},
		{"web", "prod", []string{"all", "prod-only"}},
		{"api", "prod", []string{"all", "prod-only", "api-in-prod"}},
		{"api", "sandbox", []string{"all"}},
	} {
		u := webUnit(tt.env)
		u.App = tt.app
		var got []string
		for _, v := range set.Evaluate(create(u)) {
			if !v.Builtin {
				got = append(got, v.Policy)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s in %s: policies %v, want %v", tt.app, tt.env, got, tt.want)
		}
	}
}

func TestMessageRendering(t *testing.T) {
	t.Parallel()
	set, _ := compile(t, policies(`  - name: says
    severity: warn
    expression: "false"
    message: "{{app}} in {{ env }} ({{zone}}), team {{team}}, artifact {{artifact}} by {{author}} from {{from}}"
`))
	in := create(webUnit("prod"))
	in.Artifact = "sha256:abc"
	in.Author = "marco"
	v := verdict(set.Evaluate(in), "says")
	want := "web in prod (apps-prod), team bookings, artifact sha256:abc by marco from preprod"
	if v == nil || v.Message != want || !v.Warns() || v.File != "policies/test.yaml" {
		t.Errorf("got %+v, want message %q", v, want)
	}
}

// TestInputVariables exercises every CEL variable on one change.
func TestInputVariables(t *testing.T) {
	t.Parallel()
	exprs := []string{
		`change.app == 'web' && change.env == 'prod' && change.action == 'update' && change.operation == 'promote'`,
		`change.artifact == 'sha256:new' && change.new.artifact == 'sha256:new' && change.old.artifact == 'sha256:old'`,
		`change.changed == ['artifact', 'replicas.min']`,
		`change.new.replicas.min == 2 && change.old.replicas.min == 1`,
		`change.new.containers.web.resources.limits.cpu == '500m' && !has(change.new.containers.web.resources.requests.cpu)`,
		`change.new.rollout.strategy == 'canary' && change.new.rollout.steps[0].pause == duration('30s') && change.new.rollout.analysis.maxP95 == duration('300ms')`,
		`change.new.resources.db.type == 'postgres' && change.new.resources.db.class == 'large' && change.new.resources.db.params.tier.size == 3`,
		`change.new.service.ports.http.port == 80`,
		`change.new.emergency.startsWith('INC-') && change.old.emergency == ''`,
		`environment.name == 'prod' && environment.production && environment.from == 'preprod' && environment.zoneKind == 'application' && environment.position == 2`,
		`!platform.environments.preprod.production && platform.zones.sandbox == 'sandbox' && platform.teams.bookings.members.sofia == 'approver'`,
		`now == timestamp('2026-03-03T10:00:00Z') && now.getDayOfWeek() == 2`,
		`author == 'marco' && approvers == ['sofia'] && approvers.all(a, a != author)`,
		`history.ranHealthy(change.artifact, environment.from) && history.healthyFor(change.artifact, 'preprod') == duration('2h')`,
		`!history.ranHealthy(change.artifact, 'dev') && history.healthyFor('sha256:other', 'preprod') == duration('0s')`,
	}
	var ps []string
	for i, e := range exprs {
		ps = append(ps, "  - {name: p"+string(rune('a'+i))+", severity: deny, message: m, expression: \""+e+"\"}\n")
	}
	set, problems := compile(t, policies(ps...))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	old := webUnit("prod")
	old.Artifact, old.Replicas.Min = "sha256:old", 1
	u := webUnit("prod")
	u.Artifact, u.Emergency = "sha256:new", "INC-4711 bookings down"
	u.Rollout = spec.Rollout{Strategy: spec.StrategyCanary, Steps: []spec.CanaryStep{{Weight: 10, Pause: spec.Duration(30 * time.Second)}},
		Analysis: &spec.Analysis{MaxP95: spec.Duration(300 * time.Millisecond)}}
	u.Resources = types.WorkloadResources{"db": {Type: "postgres", Class: ptr("large"), Params: map[string]any{"tier": map[string]any{"size": 3}}}}
	in := Input{
		Change: plan.Change{Action: plan.Update, App: "web", Env: "prod", Desired: u,
			Fields: []plan.Field{{Path: "artifact"}, {Path: "replicas.min"}}},
		Old: old,
		Context: Context{Operation: Promote, Now: testNow, Author: "marco", Approvers: []string{"sofia"},
			History: Runs{{App: "web", Artifact: "sha256:new", Env: "preprod", Since: testNow.Add(-2 * time.Hour)}}},
	}
	for _, v := range set.Evaluate(in) {
		if !v.Builtin && !v.Allowed {
			t.Errorf("%s is false: %s", exprs[v.Policy[1]-'a'], v.Message)
		}
	}
}

func TestCreateHasNoOld(t *testing.T) {
	t.Parallel()
	set, _ := compile(t, policies(`  - {name: shrink, severity: deny, message: m, expression: "!has(change.old) || change.new.replicas.min >= change.old.replicas.min"}
`))
	desired := []plan.Unit{*webUnit("dev")}
	applied := []plan.Unit{*webUnit("dev"), *webUnit("preprod")}
	applied[0].Replicas.Min = 3
	p := plan.Diff("", desired, applied)
	got := set.EvaluatePlan(&p, applied, Context{Now: testNow})
	if len(got) != 2 || got[0].Action != plan.Update || got[1].Action != plan.Delete {
		t.Fatalf("decisions must line up with the plan: %+v", got)
	}
	if v := verdict(got[0].Verdicts, "shrink"); v == nil || v.Allowed {
		t.Errorf("the update sees change.old: %+v", v)
	}
	if got[1].Verdicts != nil {
		t.Errorf("a delete has no verdicts: %+v", got[1].Verdicts)
	}
	if v := verdict(set.Evaluate(create(webUnit("dev"))), "shrink"); v == nil || !v.Allowed {
		t.Errorf("a create has no change.old: %+v", v)
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, map[string]string{OverridesFile: `apiVersion: socle.dev/v1
kind: BuiltinPolicies
builtins:
  immutable-image-tags: warn
  readiness-probe-for-traffic: off
`})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	u := webUnit("dev")
	c := u.Containers["web"]
	c.Image, c.ReadinessProbe = "nginx", nil
	u.Containers["web"] = c
	vs := set.Evaluate(create(u))
	if v := verdict(vs, "immutable-image-tags"); v == nil || !v.Warns() {
		t.Errorf("immutable-image-tags must warn: %+v", v)
	}
	if v := verdict(vs, "readiness-probe-for-traffic"); v != nil {
		t.Errorf("readiness-probe-for-traffic is off: %+v", v)
	}

	_, problems = compile(t, map[string]string{OverridesFile: `apiVersion: socle.dev/v1
kind: BuiltinPolicies
builtins:
  immutable-tags: warn
  no-plain-secrets: block
extra: 1
`})
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`policies/builtins/overrides.yaml:6:1: extra: unknown field "extra": expected apiVersion, kind, builtins`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, problems = compile(t, map[string]string{OverridesFile: `apiVersion: socle.dev/v1
kind: BuiltinPolicies
builtins:
  immutable-tags: warn
  no-plain-secrets: block
`})
	got = nil
	for _, p := range problems {
		got = append(got, p.String())
	}
	want = []string{
		`policies/builtins/overrides.yaml:4:3: builtins.immutable-tags: no built-in guardrail is named "immutable-tags"; they are ` + strings.Join(builtinNames(), ", "),
		`policies/builtins/overrides.yaml:5:21: builtins.no-plain-secrets: expected deny, warn or off, found "block"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDeleteHasNoVerdicts(t *testing.T) {
	t.Parallel()
	set, _ := compile(t, nil)
	if vs := set.Evaluate(Input{Change: plan.Change{Action: plan.Delete, App: "web", Env: "prod"}}); vs != nil {
		t.Errorf("got %+v", vs)
	}
}

// TestUnitViewCoversPlanUnit fails when plan.Unit gains a field that
// policies cannot see: add it to unit and viewUnit.
func TestUnitViewCoversPlanUnit(t *testing.T) {
	t.Parallel()
	names := func(rt reflect.Type) []string {
		var out []string
		for i := range rt.NumField() {
			out = append(out, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		slices.Sort(out)
		return out
	}
	derived := []string{"secretSources"} // computed from plan.Unit's fields
	if got, want := names(reflect.TypeFor[unit]()), slices.Sorted(slices.Values(append(names(reflect.TypeFor[plan.Unit]()), derived...))); !slices.Equal(got, want) {
		t.Errorf("policy unit fields %v, plan.Unit fields %v", got, want)
	}
	// And every value reaches CEL: compare the JSON of both forms of a full unit.
	u := webUnit("prod")
	u.Resources = types.WorkloadResources{"db": {Type: "postgres", Id: ptr("main"), Params: map[string]any{"size": "s"}}}
	b1, _ := json.Marshal(viewUnit(u))
	var m map[string]any
	_ = json.Unmarshal(b1, &m)
	if m["containers"] == nil || m["service"] == nil || m["resources"] == nil || m["replicas"] == nil {
		t.Errorf("view lost fields: %s", b1)
	}
}

func TestPolicies(t *testing.T) {
	t.Parallel()
	set, _ := compile(t, policies(`  - {name: mine, severity: warn, message: m, expression: "true"}
`))
	var names []string
	for _, p := range set.Policies() {
		names = append(names, p.Name)
	}
	if want := append(builtinNames(), "mine"); !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
}

// TestConcurrentEvaluation shares one set between goroutines, as the server
// does (run with -race).
func TestConcurrentEvaluation(t *testing.T) {
	t.Parallel()
	set, _ := compile(t, policies(`  - {name: replicas, severity: warn, message: m, expression: "change.new.replicas.min >= 2 && history.ranHealthy(change.artifact, 'preprod') || true"}
`))
	done := make(chan Verdicts)
	for range 4 {
		go func() {
			in := create(webUnit("prod"))
			in.History = Runs{}
			var vs Verdicts
			for range 50 {
				vs = set.Evaluate(in)
			}
			done <- vs
		}()
	}
	first := <-done
	for range 3 {
		if got := <-done; !reflect.DeepEqual(got, first) {
			t.Errorf("verdicts differ between goroutines: %+v, %+v", got, first)
		}
	}
}

// truncate shortens s to n runes.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// TestClockPolicies: a policy whose expression reads now or history says
// so on its verdicts (the same change may be judged otherwise later, so a
// server judges its denial again as time passes); the others do not.
func TestClockPolicies(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, policies(
		`  - {name: office-hours, severity: deny, message: m, expression: "now.getHours() >= 8 && now.getHours() < 18"}
`, `  - {name: soaked, severity: deny, message: m, expression: "history.healthyFor(change.artifact, 'dev') > duration('24h') || change.env != 'prod'"}
`, `  - {name: limits, severity: deny, message: m, expression: "change.new.containers.all(n, has(change.new.containers[n].resources.limits.memory))"}
`))
	if problems.Errors() > 0 {
		t.Fatal(problems)
	}
	vs := set.Evaluate(create(webUnit("dev")))
	for name, want := range map[string]bool{"office-hours": true, "soaked": true, "limits": false, "owner-team-exists": false} {
		if v := verdict(vs, name); v == nil || v.Clock != want {
			t.Errorf("%s: verdict %+v, want Clock %t", name, v, want)
		}
	}
}
