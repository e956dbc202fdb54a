package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// stackFiles are a stack per environment (net: dev, prod) and one per
// zone (hub: apps-prod, which holds prod, and apps-nonprod, which does not).
var stackFiles = map[string]string{
	"stacks/net/stack.yaml": "apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev, prod]\n",
	"stacks/net/main.tf":    "resource \"terraform_data\" \"a\" {}\n",
	"stacks/hub/stack.yaml": "apiVersion: socle.dev/v1\nkind: Stack\nzones: [apps-nonprod, apps-prod]\n",
	"stacks/hub/main.tf":    "resource \"terraform_data\" \"b\" {}\n",
}

const overridesStacks = `apiVersion: socle.dev/v1
kind: BuiltinPolicies
stacks:
  protect: [azurerm_subnet, "module.hub.*"]
  requiredTags:
    "azurerm_*": [owner, cost-center]
  regions: [westeurope, northeurope]
`

func stackRepo(extra map[string]string) map[string]string {
	files := map[string]string{}
	for k, v := range stackFiles {
		files[k] = v
	}
	for k, v := range extra {
		files[k] = v
	}
	return files
}

func withOverrides(files map[string]string) map[string]string {
	files[OverridesFile] = overridesStacks
	return files
}

func rc(addr, typ, action string, after map[string]any) StackChange {
	return StackChange{Address: addr, Type: typ, Name: addr[strings.LastIndex(addr, ".")+1:], Action: action,
		Before: map[string]any{"id": "x"}, After: after}
}

// TestStackVerdicts: the built-ins and a repository policy on stack
// resource changes, per instance.
func TestStackVerdicts(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, withOverrides(stackRepo(policies(
		`  - name: no-public-buckets
    severity: deny
    target: stacks
    match: {stacks: [net]}
    expression: "!has(change.after.acl) || change.after.acl != 'public-read'"
    message: "{{address}} in {{stack}} @ {{instance}} is public ({{action}})"
  - name: prod-creates-warn
    severity: warn
    target: stacks
    expression: "!stack.production || change.action != 'create'"
    message: "{{address}} is created in production {{instance}}"
`))))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	tagged := map[string]any{"tags": map[string]any{"owner": "net", "cost-center": "42"}, "location": "westeurope"}
	tests := []struct {
		name, stack, instance string
		perZone               bool
		change                StackChange
		policy                string
		want                  string // allow, deny, warn or none (not selected)
		message               string
	}{
		{"destroy of a protected type in prod", "net", "prod", false, rc("azurerm_subnet.app", "azurerm_subnet", "delete", nil),
			"stack-protected-in-production", "deny", "azurerm_subnet.app (stack net @ prod): the plan would destroy it, and it is protected in production (stacks.protect: azurerm_subnet in policies/builtins/overrides.yaml)"},
		{"replace of a protected address in a production zone", "hub", "apps-prod", true, rc("module.hub.terraform_data.x", "terraform_data", "replace", map[string]any{}),
			"stack-protected-in-production", "deny", "module.hub.terraform_data.x (stack hub @ apps-prod): the plan would replace (destroy and create again) it, and it is protected in production (stacks.protect: module.hub.*"},
		{"destroy of a protected type in dev", "net", "dev", false, rc("azurerm_subnet.app", "azurerm_subnet", "delete", nil),
			"stack-protected-in-production", "none", ""},
		{"destroy in a zone without production", "hub", "apps-nonprod", true, rc("azurerm_subnet.app", "azurerm_subnet", "delete", nil),
			"stack-protected-in-production", "none", ""},
		{"destroy of an unprotected resource in prod", "net", "prod", false, rc("terraform_data.a", "terraform_data", "delete", nil),
			"stack-protected-in-production", "allow", ""},
		{"update of a protected resource in prod", "net", "prod", false, rc("azurerm_subnet.app", "azurerm_subnet", "update", tagged),
			"stack-protected-in-production", "none", ""},
		{"required tags missing", "net", "dev", false, rc("azurerm_resource_group.main", "azurerm_resource_group", "create", map[string]any{"tags": map[string]any{"owner": "net"}}),
			"stack-required-tags", "deny", "azurerm_resource_group.main (stack net @ dev) lacks tag cost-center: resources of type azurerm_* carry them"},
		{"no tags at all", "net", "dev", false, rc("azurerm_resource_group.main", "azurerm_resource_group", "create", map[string]any{}),
			"stack-required-tags", "deny", "lacks tags cost-center, owner"},
		{"labels count as tags", "net", "dev", false, rc("azurerm_x.main", "azurerm_x", "update", map[string]any{"labels": map[string]any{"owner": "a", "cost-center": "b"}}),
			"stack-required-tags", "allow", ""},
		{"tags known only after apply", "net", "dev", false, rc("azurerm_x.main", "azurerm_x", "create", map[string]any{"tags": maskedUnknown}),
			"stack-required-tags", "deny", "its tags are (known after apply), so the required cost-center, owner cannot be checked"},
		{"tags of another type", "net", "dev", false, rc("google_x.main", "google_x", "create", map[string]any{}),
			"stack-required-tags", "allow", ""},
		{"a destroy needs no tags", "net", "dev", false, rc("azurerm_x.main", "azurerm_x", "delete", nil),
			"stack-required-tags", "none", ""},
		{"region not allowed", "net", "dev", false, rc("aws_s3_bucket.logs", "aws_s3_bucket", "create", map[string]any{"region": "us-east-1"}),
			"stack-allowed-regions", "deny", `aws_s3_bucket.logs (stack net @ dev) is in region "us-east-1", which is not allowed: allowed are westeurope, northeurope`},
		{"location allowed", "net", "dev", false, rc("azurerm_x.main", "azurerm_x", "create", tagged),
			"stack-allowed-regions", "allow", ""},
		{"no region at all", "net", "dev", false, rc("terraform_data.a", "terraform_data", "create", map[string]any{"input": "x"}),
			"stack-allowed-regions", "allow", ""},
		{"a repository policy denies", "net", "dev", false, rc("aws_s3_bucket.b", "aws_s3_bucket", "update", map[string]any{"acl": "public-read"}),
			"no-public-buckets", "deny", "aws_s3_bucket.b in net @ dev is public (update)"},
		{"a repository policy allows", "net", "dev", false, rc("aws_s3_bucket.b", "aws_s3_bucket", "update", map[string]any{"acl": "private"}),
			"no-public-buckets", "allow", ""},
		{"match.stacks leaves other stacks", "hub", "apps-prod", true, rc("aws_s3_bucket.b", "aws_s3_bucket", "update", map[string]any{"acl": "public-read"}),
			"no-public-buckets", "none", ""},
		{"a warn policy in a production zone", "hub", "apps-prod", true, rc("terraform_data.b", "terraform_data", "create", map[string]any{}),
			"prod-creates-warn", "warn", "terraform_data.b is created in production apps-prod"},
		{"a warn policy in dev", "net", "dev", false, rc("terraform_data.a", "terraform_data", "create", map[string]any{}),
			"prod-creates-warn", "allow", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := set.EvaluateStack(StackInput{Stack: tt.stack, Instance: tt.instance, PerZone: tt.perZone, Change: tt.change, Context: Context{Now: testNow}})
			for _, v := range vs {
				if !v.Builtin || v.Policy == "stack-protected-in-production" || v.Policy == "stack-required-tags" || v.Policy == "stack-allowed-regions" {
					continue
				}
				t.Errorf("an app built-in judged a stack change: %+v", v)
			}
			v := verdict(vs, tt.policy)
			got := "none"
			switch {
			case v == nil:
			case v.Blocks():
				got = "deny"
			case v.Warns():
				got = "warn"
			case v.Allowed:
				got = "allow"
			}
			if got != tt.want {
				t.Fatalf("%s gave %s, want %s: %+v", tt.policy, got, tt.want, v)
			}
			if v != nil && !strings.Contains(v.Message, tt.message) {
				t.Errorf("message %q does not say %q", v.Message, tt.message)
			}
		})
	}
}

// TestStackPoliciesLeaveApps: a policy whose target is stacks judges no
// app change, and an app policy no stack change.
func TestStackPoliciesLeaveApps(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, stackRepo(policies(
		`  - {name: stacks-only, severity: deny, target: stacks, message: m, expression: "false"}
  - {name: apps-only, severity: deny, message: m, expression: "false"}
`)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if v := verdict(set.Evaluate(create(webUnit("dev"))), "stacks-only"); v != nil {
		t.Errorf("a stack policy judged an app: %+v", v)
	}
	vs := set.EvaluateStack(StackInput{Stack: "net", Instance: "dev", Change: rc("terraform_data.a", "terraform_data", "create", nil)})
	if v := verdict(vs, "apps-only"); v != nil {
		t.Errorf("an app policy judged a stack change: %+v", v)
	}
	if v := verdict(vs, "stacks-only"); v == nil || !v.Blocks() {
		t.Errorf("the stack policy did not deny: %+v", v)
	}
	// The documented absence: no before on a create, no after on a delete.
	set, problems = compile(t, stackRepo(policies(
		`  - {name: sides, severity: deny, target: stacks, message: m, expression: "has(change.before) == (change.action != 'create') && has(change.after) == (change.action != 'delete')"}
`)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for _, c := range []StackChange{
		{Address: "a.b", Type: "a", Action: "create", After: map[string]any{"x": "1"}},
		{Address: "a.b", Type: "a", Action: "delete", Before: map[string]any{"x": "1"}},
		{Address: "a.b", Type: "a", Action: "update", Before: map[string]any{"x": "1"}, After: map[string]any{"x": "2"}},
	} {
		if v := verdict(set.EvaluateStack(StackInput{Stack: "net", Instance: "dev", Change: c}), "sides"); v == nil || !v.Allowed {
			t.Errorf("%s: %+v", c.Action, v)
		}
	}
}

// TestStackPolicyErrorsAreLocated: a policy whose target is stacks
// compiles against the stack change, at file:line:column.
func TestStackPolicyErrorsAreLocated(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, stackRepo(policies(
		// line 4: an app's field does not exist on a resource change
		`  - {name: apps-field, severity: deny, target: stacks, message: m, expression: "change.new.replicas.min > 1"}
`,
		// line 5: an app's placeholder
		`  - {name: app-placeholder, severity: deny, target: stacks, message: "{{app}} is wrong", expression: "true"}
`,
		// line 6: a stack's field in an app policy
		`  - {name: stack-in-app, severity: deny, message: m, expression: "stack.production"}
`,
		// line 7: a syntax error
		`  - {name: syntax, severity: deny, target: stacks, message: m, expression: "change.action =="}
`,
	)))
	var got []string
	for _, p := range problems {
		got = append(got, truncate(p.String(), 100))
	}
	want := []string{
		`policies/test.yaml:4:87: policies[0].expression: CEL: undefined field 'new'`,
		`policies/test.yaml:5:70: policies[1].message: unknown placeholder {{app}} in message: known are {{ac…`,
		`policies/test.yaml:6:67: policies[2].expression: CEL: undeclared reference to 'stack' (in container …`,
		`policies/test.yaml:7:93: policies[3].expression: CEL: Syntax error: mismatched input '<EOF>' expecti…`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	vs := set.EvaluateStack(StackInput{Stack: "net", Instance: "dev", Change: rc("terraform_data.a", "terraform_data", "create", nil)})
	if v := verdict(vs, "apps-field"); v == nil || !v.Blocks() || !strings.Contains(v.Message, "does not compile") {
		t.Errorf("a broken stack policy must deny what it matches: %+v", v)
	}
}

// TestStackSettingsErrorsAreLocated: the stacks settings of the overrides
// file are checked at their line.
func TestStackSettingsErrorsAreLocated(t *testing.T) {
	t.Parallel()
	_, problems := compile(t, map[string]string{OverridesFile: `apiVersion: socle.dev/v1
kind: BuiltinPolicies
stacks:
  protect: ["[a-"]
  region: [westeurope]
`})
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`policies/builtins/overrides.yaml:4:12: stacks.protect: "[a-" is not a pattern (path.Match: *, ?, [a-z])`,
		`policies/builtins/overrides.yaml:5:3: stacks.region: unknown field "region": expected protect, requiredTags or regions`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStackSensitiveNeverReachesCEL: a value terraform marks sensitive,
// and a secret input's value that terraform shows in clear, reach the
// policies masked, through stack.Changes as socle plan runs it.
func TestStackSensitiveNeverReachesCEL(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-db-password"
	p := &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{{
		Address: "terraform_data.db", Type: "terraform_data", Name: "db",
		Change: &tfjson.Change{
			Actions:         tfjson.Actions{tfjson.ActionUpdate},
			Before:          map[string]any{"input": map[string]any{"password": "old-" + secret, "user": "app"}, "output": "x"},
			After:           map[string]any{"input": map[string]any{"password": secret, "user": "app", "dsn": "pg://app:" + secret + "@db"}, "output": nil},
			BeforeSensitive: map[string]any{"input": map[string]any{"password": true}},
			AfterSensitive:  map[string]any{"input": map[string]any{"password": true}},
			AfterUnknown:    map[string]any{"output": true},
		},
	}}}
	res, _, _ := stack.Changes(p, []string{secret})
	if len(res) != 1 {
		t.Fatalf("changes: %+v", res)
	}
	set, problems := compile(t, stackRepo(policies(
		// Each is false when the secret, or any part of it, is visible.
		`  - {name: password, severity: deny, target: stacks, message: m, expression: "change.after.input.password == '(sensitive value)' && change.before.input.password == '(sensitive value)'"}
  - {name: dsn, severity: deny, target: stacks, message: m, expression: "change.after.input.dsn == '(sensitive value)'"}
  - {name: nowhere, severity: deny, target: stacks, message: m, expression: "[change.after, change.before].all(o, o.all(k, type(o[k]) == string ? !o[k].contains('hunter2') : type(o[k]) == map ? o[k].all(j, !string(o[k][j]).contains('hunter2')) : true))"}
  - {name: unknown, severity: deny, target: stacks, message: m, expression: "change.after.output == '(known after apply)' && change.after.input.user == 'app'"}
`)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	c := res[0]
	vs := set.EvaluateStack(StackInput{Stack: "net", Instance: "prod", Change: StackChange{Address: c.Address, Type: c.Type, Name: c.Name, Action: string(c.Action), Before: c.Before, After: c.After}})
	for _, name := range []string{"password", "dsn", "nowhere", "unknown"} {
		if v := verdict(vs, name); v == nil || !v.Allowed {
			t.Errorf("policy %s: %+v", name, v)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("the secret is in the resource change: %s", b)
	}
	if maskedSensitive != stack.Redacted || maskedUnknown != stack.Unknown {
		t.Error("policy's masks are not those of package stack")
	}
}

// TestStackChangeBounds: a stack change over the bounds is judged with
// cost tracking, and gives the same verdict.
func TestStackChangeBounds(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, stackRepo(policies(
		`  - {name: tags, severity: deny, target: stacks, message: m, expression: "change.after.tags.all(k, k != 'bad')"}
`)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	small := map[string]any{"tags": map[string]any{"a": "1"}}
	big := map[string]any{}
	for i := range boundItems + 1 {
		big[strings.Repeat("k", i+1)] = "v"
	}
	for _, tt := range []struct {
		after map[string]any
		fits  bool
	}{{small, true}, {map[string]any{"tags": big}, false}} {
		in := StackInput{Stack: "net", Instance: "dev", Change: rc("x.y", "x", "create", tt.after)}
		if got := stackChangeFits(&in, "", nil); got != tt.fits {
			t.Errorf("fits %v, want %v", got, tt.fits)
		}
		if v := verdict(set.EvaluateStack(in), "tags"); v == nil || !v.Allowed {
			t.Errorf("verdict: %+v", v)
		}
	}
}

// TestStackChangeFitsSeesEveryField: each string of a stack change over
// its bound takes the change out of the bounds the estimates assume.
func TestStackChangeFitsSeesEveryField(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", boundChars+1)
	base := StackInput{Stack: "net", Instance: "dev", Change: rc("a.b", "a", "create", map[string]any{"k": "v"})}
	if !stackChangeFits(&base, "ann", []string{"bob"}) {
		t.Fatal("a small change does not fit")
	}
	checked := 0
	for _, v := range []reflect.Value{reflect.ValueOf(&base).Elem(), reflect.ValueOf(&base.Change).Elem()} {
		for i := range v.NumField() {
			f := v.Field(i)
			if f.Kind() != reflect.String {
				continue
			}
			old := f.String()
			f.SetString(long)
			if stackChangeFits(&base, "ann", nil) {
				t.Errorf("%s of %d characters fits", v.Type().Field(i).Name, len(long))
			}
			f.SetString(old)
			checked++
		}
	}
	if checked != 6 {
		t.Errorf("checked %d string fields, want 6 (stack, instance, address, type, name, action)", checked)
	}
	for _, v := range []map[string]any{{"k": long}, {long[:boundKey+1]: "v"}, {"l": make([]any, boundItems+1)}} {
		in := base
		in.Change.Before = v
		if stackChangeFits(&in, "", nil) {
			t.Errorf("before %.40v… fits", v)
		}
	}
	if stackChangeFits(&base, long, nil) || stackChangeFits(&base, "", []string{long}) {
		t.Error("author and approvers are not bounded")
	}
}

// BenchmarkEvaluateStackPlan: the landing zone's size, 1,500 resource
// changes of one instance, judged by the three stack built-ins and two
// repository policies.
func BenchmarkEvaluateStackPlan(b *testing.B) {
	fsys := repoFS(withOverrides(stackRepo(policies(
		`  - {name: no-public, severity: deny, target: stacks, message: m, expression: "!has(change.after.acl) || change.after.acl != 'public-read'"}
  - {name: tags-lower, severity: warn, target: stacks, message: m, expression: "!has(change.after.tags) || change.after.tags.all(k, k.lowerAscii() == k)"}
`))))
	repo, problems := spec.Load(fsys)
	if err := problems.Err(); err != nil {
		b.Fatal(err)
	}
	set, problems := Compile(repo, fsys)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	changes := make([]StackChange, 1500)
	for i := range changes {
		changes[i] = StackChange{Address: fmt.Sprintf("azurerm_subnet.s%d", i), Type: "azurerm_subnet", Name: fmt.Sprintf("s%d", i), Action: "update",
			Before: map[string]any{"location": "westeurope", "tags": map[string]any{"owner": "net", "cost-center": "42"}, "address_prefixes": []any{"10.0.0.0/24"}},
			After:  map[string]any{"location": "westeurope", "tags": map[string]any{"owner": "net", "cost-center": "42"}, "address_prefixes": []any{"10.0.1.0/24"}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		ds := set.EvaluateStackPlan("net", "prod", false, changes, Context{Now: testNow})
		if len(ds) != len(changes) || ds[0].Verdicts.Blocked() {
			b.Fatalf("decisions: %+v", ds[0])
		}
	}
}

// TestStackCases: socle policy test runs cases of stack resource changes
// too, and reports a malformed one at its line.
func TestStackCases(t *testing.T) {
	t.Parallel()
	files := withOverrides(stackRepo(policies(`  - {name: no-public, severity: deny, target: stacks, message: "{{address}} is public", expression: "!has(change.after.acl) || change.after.acl != 'public-read'"}
`)))
	files[TestsDir+"/stacks.yaml"] = `apiVersion: socle.dev/v1
kind: PolicyTests
tests:
  - name: a protected subnet is not destroyed in prod
    policy: stack-protected-in-production
    stack: net
    instance: prod
    resource: {address: module.core.azurerm_subnet.app, action: delete, before: {name: app}}
    expect: deny
    message: the plan would destroy it
  - name: the same in dev
    policy: stack-protected-in-production
    stack: net
    instance: dev
    resource: {address: azurerm_subnet.app, action: delete}
    expect: none
  - name: a public bucket
    stack: hub
    instance: apps-prod
    resource: {address: aws_s3_bucket.b, action: create, after: {acl: public-read}}
    expect: deny
    message: aws_s3_bucket.b is public
  - name: wrong expectation
    stack: net
    instance: dev
    resource: {address: aws_s3_bucket.b, action: update, after: {acl: private}}
    expect: deny
  - name: no such instance
    stack: net
    instance: apps-prod
    resource: {address: a.b, action: create}
    expect: allow
  - name: malformed
    stack: net
    instance: dev
    app: web
    resource: {address: a.b, action: destroy}
    expect: allow
`
	fsys := repoFS(files)
	repo, problems := spec.Load(fsys)
	if err := problems.Err(); err != nil {
		t.Fatal(err)
	}
	set, problems := Compile(repo, fsys)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	cases, problems := LoadTests(fsys)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`policies/tests/stacks.yaml:34:12: tests[5].stack: a case of a stack's resource change has no app, env, artifact, new, old or history: describe the change under resource`,
		`policies/tests/stacks.yaml:37:38: tests[5].resource.action: expected create, update, replace, delete, read, forget, found "destroy"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var results []string
	for _, r := range set.RunTests(repo, cases, testNow) {
		results = append(results, fmt.Sprintf("%s: pass %v got %q %s", r.Name, r.Pass, r.Got, r.Detail))
	}
	wantResults := []string{
		`a protected subnet is not destroyed in prod: pass true got "deny" `,
		`the same in dev: pass true got "none" `,
		`a public bucket: pass true got "deny" `,
		`wrong expectation: pass false got "allow" `,
		`no such instance: pass false got "" stack net is not applied to "apps-prod": its instances are dev, prod`,
	}
	if strings.Join(results, "\n") != strings.Join(wantResults, "\n") {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(results, "\n"), strings.Join(wantResults, "\n"))
	}
}
