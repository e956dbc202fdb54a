package spec

import (
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

// stacksRepo is testdata/stacks as a map, for the tests to change.
func stacksRepo(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	src := os.DirFS("testdata/stacks")
	err := fs.WalkDir(src, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := fs.ReadFile(src, p)
		m[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadStacks(t *testing.T) {
	t.Parallel()
	r, ps := Load(stacksRepo(t))
	if len(ps) > 0 {
		t.Fatalf("testdata/stacks has problems:\n%v", ps)
	}
	var names []string
	for _, s := range r.Stacks {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "app-zone,network" {
		t.Fatalf("stacks = %s", got)
	}
	net := r.Stack("network")
	if !net.PerZone() || !slices.Equal(net.Instances(), []string{"connectivity"}) {
		t.Errorf("network instances = %v, per zone %v", net.Instances(), net.PerZone())
	}
	// The module it calls outside its directory is part of it.
	wantFiles := []string{"modules/tags/main.tf", "stacks/network/main.tf", "stacks/network/stack.yaml"}
	if !slices.Equal(net.Files, wantFiles) {
		t.Errorf("network files = %v, want %v", net.Files, wantFiles)
	}
	if o := net.Outputs["admin_password"]; !o.Sensitive || o.Line != 30 || o.File != "stacks/network/main.tf" {
		t.Errorf("admin_password output = %+v", o)
	}
	if net.Outputs["hub_id"].Sensitive {
		t.Error("hub_id is not sensitive")
	}
	if v := net.Variables["cidr"]; !v.Required {
		t.Errorf("cidr has no default: %+v", v)
	}
	if net.Variables["account"].Required {
		t.Error("account has a default")
	}
	if net.Config.Apply != StackApplyGated || net.Config.Drift.String() != "4h0m0s" {
		t.Errorf("apply %q drift %s", net.Config.Apply, net.Config.Drift)
	}
	az := r.Stack("app-zone")
	if got := az.InstanceInputs("prod")["size"]; got != "large" {
		t.Errorf("prod size = %v", got)
	}
	if _, ok := az.InstanceInputs("dev")["size"]; ok {
		t.Error("dev has no size input: the override is prod's")
	}
	if az.Config.Overrides["prod"].Inputs == nil || az.Config.Inputs["size"] != nil {
		t.Error("InstanceInputs must not change the stack's inputs")
	}
	for _, inst := range []string{"dev", "prod"} {
		if up, ok := r.UpstreamInstance(az, inst, net); !ok || up != "connectivity" {
			t.Errorf("app-zone@%s reads network@%q, %v", inst, up, ok)
		}
	}
}

// TestStackSourceHash: the hash covers the stack's files and the modules
// it calls, and nothing else.
func TestStackSourceHash(t *testing.T) {
	t.Parallel()
	base := stacksRepo(t)
	source := func(m fstest.MapFS) map[string]string {
		r, ps := Load(m)
		if ps.Errors() > 0 {
			t.Fatalf("problems:\n%v", ps)
		}
		out := map[string]string{}
		for _, s := range r.Stacks {
			out[s.Name] = s.Source
		}
		return out
	}
	before := source(base)
	change := func(file, text string) map[string]string {
		m := maps.Clone(base)
		m[file] = &fstest.MapFile{Data: append(slices.Clone(base[file].Data), text...)}
		return source(m)
	}
	app := maps.Clone(base)
	app["apps/shop/score.yaml"] = &fstest.MapFile{Data: []byte(minimalScore)}
	if got := source(app); got["network"] != before["network"] || got["app-zone"] != before["app-zone"] {
		t.Error("an app's files changed a stack's hash")
	}
	if got := change("modules/tags/main.tf", "\n# a comment\n"); got["network"] == before["network"] || got["app-zone"] != before["app-zone"] {
		t.Errorf("a change of modules/tags must change network's hash only: %v → %v", before, got)
	}
	if got := change("stacks/app-zone/main.tf", "\n"); got["app-zone"] == before["app-zone"] || got["network"] != before["network"] {
		t.Error("a change of app-zone's files must change its hash only")
	}
}

// TestStackProblems plants one mistake at a time in testdata/stacks and
// expects exactly the problems listed, with file:line:column and field.
func TestStackProblems(t *testing.T) {
	t.Parallel()
	const az = "stacks/app-zone/stack.yaml"
	const net = "stacks/network/stack.yaml"
	azYAML := string(stacksRepo(t)[az].Data)
	netYAML := string(stacksRepo(t)[net].Data)
	tests := []struct {
		name  string
		files map[string]string // "" deletes
		want  []string
	}{
		{"unknown field", map[string]string{az: azYAML + "dependOn: [x]\n"},
			[]string{`stacks/app-zone/stack.yaml:14:1: dependOn: unknown field "dependOn"; did you mean "dependsOn"?`}},
		{"bad apply", map[string]string{az: azYAML + "apply: sometimes\n"},
			[]string{`stacks/app-zone/stack.yaml:14:8: apply: expected one of auto, gated, found sometimes`}},
		{"bad drift", map[string]string{az: azYAML + "drift: often\n"},
			[]string{`stacks/app-zone/stack.yaml:14:8: drift: "often" does not have the expected form (pattern ^([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*$)`}},
		{"destroy behind gates", map[string]string{az: azYAML + "onRemove: destroy\n"},
			[]string{`stacks/app-zone/stack.yaml:14:11: onRemove: destroy, but prod applies behind gates: a destroy there is a plan people approve; remove the resources from the configuration first, then the instance (or set apply: auto)`}},
		{"destroy where it applies at once", map[string]string{az: azYAML + "onRemove: destroy\napply: auto\n"}, nil},
		{"bad onRemove", map[string]string{az: azYAML + "onRemove: archive\n"},
			[]string{`stacks/app-zone/stack.yaml:14:11: onRemove: expected one of keep, destroy, found archive`}},
		{"drift too often", map[string]string{az: azYAML + "drift: 10s\n"},
			[]string{`stacks/app-zone/stack.yaml:14:8: drift: a drift check runs at most every minute, found 10s`}},
		{"unknown environment", map[string]string{az: strings.Replace(azYAML, "[dev, prod]", "[dev, qa]", 1)},
			[]string{
				`stacks/app-zone/stack.yaml:3:21: environments[1]: no environment "qa" (known: dev, prod)`,
				`stacks/app-zone/stack.yaml:11:3: overrides.prod: override for environment "prod", which the stack is not applied to (known: dev, qa)`,
			}},
		{"unknown zone", map[string]string{net: strings.Replace(netYAML, "[connectivity]", "[conectivity]", 1)},
			[]string{`stacks/network/stack.yaml:4:9: zones[0]: no zone "conectivity" (known: apps-nonprod, apps-prod, connectivity)`}},
		{"both zones and environments", map[string]string{net: netYAML + "environments: [dev]\n"},
			[]string{`stacks/network/stack.yaml:11:15: environments: a stack is applied per zone or per environment, not both: list zones or environments`}},
		{"neither", map[string]string{net: strings.Replace(netYAML, "zones: [connectivity]\n", "", 1)},
			[]string{`stacks/network/stack.yaml:1:1: missing zones or environments: a stack names where it is applied, one instance each (zones: [connectivity], or environments: [dev, prod])`}},
		{"environment field in a zone stack", map[string]string{net: strings.Replace(netYAML, "${zone.account}", "${environment.name}", 1)},
			[]string{`stacks/network/stack.yaml:7:12: inputs.account: ${environment.name}: the stack is applied per zone, so its instances have no environment`}},
		{"upstream instance not clear", map[string]string{net: strings.Replace(netYAML, "[connectivity]", "[connectivity, apps-prod]", 1)},
			[]string{`stacks/app-zone/stack.yaml:8:8: inputs.hub: ${stacks.network.outputs.hub_id}: stack "network" has several instances (connectivity, apps-prod) and none is "dev" or its zone, so which one "dev" reads is not clear`}},
		{"sensitive output into a plain variable", map[string]string{az: strings.Replace(azYAML, "outputs.hub_id", "outputs.admin_password", 1)},
			[]string{`stacks/app-zone/stack.yaml:8:8: inputs.hub: ${stacks.network.outputs.admin_password} is a sensitive output: declare variable "hub" with sensitive = true (stacks/app-zone/variables.tf:3), so that terraform redacts it`}},
		{"override of another instance", map[string]string{az: strings.Replace(azYAML, "  prod:\n", "  qa:\n", 1)},
			[]string{`stacks/app-zone/stack.yaml:11:3: overrides.qa: override for environment "qa", which the stack is not applied to (known: dev, prod)`}},
		{"dependsOn a missing stack", map[string]string{az: strings.Replace(azYAML, "[network]", "[network, dns]", 1)},
			[]string{`stacks/app-zone/stack.yaml:4:22: dependsOn[1]: no stack "dns" under stacks/ (known: app-zone, network)`}},
		{"dependsOn itself", map[string]string{az: strings.Replace(azYAML, "[network]", "[network, app-zone]", 1)},
			[]string{`stacks/app-zone/stack.yaml:4:22: dependsOn[1]: stack "app-zone" depends on itself`}},
		{"dependsOn cycle", map[string]string{net: netYAML + "dependsOn: [app-zone]\n"},
			[]string{`stacks/app-zone/stack.yaml:4:13: dependsOn[0]: dependsOn cycle: app-zone → network → app-zone`}},
		{"three-stack cycle", map[string]string{
			net:                          netYAML + "dependsOn: [dns]\n",
			"stacks/dns/stack.yaml":      "apiVersion: socle.dev/v1\nkind: Stack\nzones: [connectivity]\ndependsOn: [app-zone]\n",
			"stacks/dns/main.tf":         "output \"zone\" { value = \"x\" }\n",
			"stacks/dns/README.md":       "the DNS zone\n",
			"stacks/dns/tests/extra.txt": "nested files belong to the stack\n"},
			[]string{`stacks/app-zone/stack.yaml:4:13: dependsOn[0]: dependsOn cycle: app-zone → network → dns → app-zone`}},
		{"output not declared", map[string]string{az: strings.Replace(azYAML, "outputs.hub_id", "outputs.hub_name", 1)},
			[]string{`stacks/app-zone/stack.yaml:8:8: inputs.hub: ${stacks.network.outputs.hub_name}: stack "network" declares no output "hub_name" (outputs: admin_password, hub_cidr, hub_id)`}},
		{"reads a stack not depended on", map[string]string{az: strings.Replace(azYAML, "dependsOn: [network]\n", "", 1)},
			[]string{`stacks/app-zone/stack.yaml:7:8: inputs.hub: ${stacks.network.outputs.hub_id}: stack "network" is not in dependsOn; list it there, so that it is applied first`}},
		{"bad reference", map[string]string{az: strings.Replace(azYAML, "${zone.name}", "${zone.region}", 1)},
			[]string{`stacks/app-zone/stack.yaml:7:9: inputs.zone: no field "region" of zone to read in ${zone.region} (fields: name, kind, description, provider, account)`}},
		{"unclosed reference", map[string]string{az: strings.Replace(azYAML, "${environment.name}\n", "${environment.name\n", 1)},
			[]string{`stacks/app-zone/stack.yaml:6:8: inputs.env: unclosed reference "${environment.name": a reference ends with }`}},
		{"nested reference", map[string]string{az: strings.Replace(azYAML, "overrides:", "  tags: {owner: \"${stacks.network.outputs.nope}\"}\noverrides:", 1)},
			[]string{
				`stacks/app-zone/stack.yaml:10:3: inputs.tags: no variable "tags" in the stack's configuration (variables: env, hub, label, size, zone)`,
				`stacks/app-zone/stack.yaml:10:17: inputs.tags.owner: ${stacks.network.outputs.nope}: stack "network" declares no output "nope" (outputs: admin_password, hub_cidr, hub_id)`,
			}},
		{"input for no variable", map[string]string{az: strings.Replace(azYAML, "size: large", "sise: large", 1)},
			[]string{
				`stacks/app-zone/stack.yaml:13:7: overrides.prod.inputs.sise: no variable "sise" in the stack's configuration (variables: env, hub, label, size, zone)`,
			}},
		{"required variable without input", map[string]string{az: strings.Replace(azYAML, "  zone: ${zone.name}\n", "", 1)},
			[]string{`stacks/app-zone/stack.yaml:6:3: inputs: variable "zone" (stacks/app-zone/variables.tf:2) has no default and no input for dev, prod`}},
		{"export not declared", map[string]string{net: strings.Replace(netYAML, "[hub_id]", "[hub_id, hub]", 1)},
			[]string{`stacks/network/stack.yaml:10:19: exports[1]: exports "hub", which no output block of the stack declares (outputs: admin_password, hub_cidr, hub_id)`}},
		{"terraform syntax error", map[string]string{"stacks/app-zone/main.tf": "resource \"terraform_data\" \"subnet\" {\n  input = \n}\n"},
			[]string{`stacks/app-zone/main.tf:2:11: terraform: Invalid expression: Expected the start of an expression, but found an invalid expression token`}},
		{"syntax error in a module", map[string]string{"modules/tags/main.tf": "output \"tags\" {\n  value = {\n}\n"},
			[]string{`modules/tags/main.tf:1:15: terraform: Unclosed configuration block: There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file`}},
		{"output without a name", map[string]string{"stacks/app-zone/main.tf": "output {\n  value = 1\n}\n"},
			[]string{`stacks/app-zone/main.tf:1:8: terraform: Missing name for output: All output blocks must have 1 labels (name)`}},
		{"second output of a name", map[string]string{"stacks/app-zone/extra.tf": "output \"subnet_id\" {\n  value = 1\n}\n"},
			[]string{`stacks/app-zone/main.tf:5:1: terraform: a second output "subnet_id" (the first is at stacks/app-zone/extra.tf:1)`}},
		{"too deep", map[string]string{"stacks/app-zone/deep.tf": "locals {\n  x = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n}\n"},
			[]string{`stacks/app-zone/deep.tf: brackets nest more than 64 deep; socle reads Terraform files nested at most 64 deep`}},
		{"no terraform files", map[string]string{"stacks/app-zone/main.tf": "", "stacks/app-zone/variables.tf": ""},
			[]string{`stacks/app-zone: no Terraform configuration: a stack holds *.tf files beside its stack.yaml`}},
		{"missing stack.yaml", map[string]string{az: ""},
			[]string{`stacks/app-zone/stack.yaml: missing: every stack needs a stack.yaml (apiVersion socle.dev/v1, kind Stack) saying where it is applied`}},
		{"module out of the repository", map[string]string{"stacks/app-zone/mod.tf": "module \"x\" {\n  source = \"../../../elsewhere\"\n}\n"},
			[]string{`stacks/app-zone/mod.tf:1:1: module "x": source "../../../elsewhere" leads out of the repository`}},
		{"module missing", map[string]string{"stacks/app-zone/mod.tf": "module \"x\" {\n  source = \"../../modules/nope\"\n}\n"},
			[]string{`stacks/app-zone/mod.tf:1:1: module "x": no directory modules/nope in the repository`}},
		{"own backend without a block", map[string]string{az: azYAML + "backend: own\n"},
			[]string{`stacks/app-zone/stack.yaml:14:10: backend: backend own: the configuration's backend block keeps the state, but no *.tf of the stack declares one (terraform { backend "…" { … } })`}},
		{"backend block socle would override", map[string]string{"stacks/app-zone/backend.tf": "terraform {\n  backend \"s3\" {\n    bucket = \"x\"\n  }\n}\n"},
			[]string{`stacks/app-zone/backend.tf:2:3: the configuration declares backend "s3", but socle keeps this stack's state (stack.yaml: backend socle, the default): remove the block, or set backend: own in stacks/app-zone/stack.yaml`}},
		{"own backend", map[string]string{az: azYAML + "backend: own\n", "stacks/app-zone/backend.tf": "terraform {\n  backend \"s3\" {}\n}\n"}, nil},
		{"json configuration", map[string]string{"stacks/app-zone/extra.tf.json": `{"output": {"extra": {"value": "x", "sensitive": true}}}`}, nil},
		{"unknown owner", map[string]string{az: azYAML + "owner: netops\n"},
			[]string{`stacks/app-zone/stack.yaml:14:8: owner: no team "netops" (known: platform)`}},
		{"known owner", map[string]string{az: azYAML + "owner: platform\n"}, nil},
		{"bad stack name", map[string]string{"stacks/App/stack.yaml": "apiVersion: socle.dev/v1\nkind: Stack\nzones: [connectivity]\n", "stacks/App/main.tf": "\n"},
			[]string{`stacks/App: stack directory "App" is not a valid stack name: lowercase letters, digits and dashes, at most 63`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := stacksRepo(t)
			for f, data := range tt.files {
				if data == "" {
					delete(m, f)
				} else {
					m[f] = &fstest.MapFile{Data: []byte(data)}
				}
			}
			_, ps := Load(m)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseInput(t *testing.T) {
	t.Parallel()
	parts, err := ParseInput("a-${environment.name}-$${x}-${stacks.net.outputs.id}")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Ref != nil {
			b.WriteString("<" + p.Ref.String() + ">")
		} else {
			b.WriteString("[" + p.Text + "]")
		}
	}
	if got := b.String(); got != "[a-]<${environment.name}>[-${x}-]<${stacks.net.outputs.id}>" {
		t.Errorf("parts = %s", got)
	}
	for _, bad := range []string{"${stacks.net.id}", "${env.name}", "${ zone.name}", "${zone.}", "${", "${stacks.a.outputs.b.c}"} {
		if _, err := ParseInput(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseInput: whatever the string, ParseInput ends, and what it
// returns writes back to a string that parses the same.
func FuzzParseInput(f *testing.F) {
	for _, s := range []string{"", "plain", "${zone.name}", "a$${b}c", "$$$", "${stacks.a.outputs.b}${environment.sync}", "${", "}${}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts, err := ParseInput(s)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Ref != nil {
				b.WriteString(p.Ref.String())
			} else {
				b.WriteString(strings.ReplaceAll(p.Text, "${", "$${"))
			}
		}
		again, err := ParseInput(b.String())
		if err != nil {
			t.Fatalf("%q → %q does not parse: %v", s, b.String(), err)
		}
		if !slices.EqualFunc(parts, again, func(a, b InputPart) bool {
			return a.Text == b.Text && (a.Ref == nil) == (b.Ref == nil) && (a.Ref == nil || *a.Ref == *b.Ref)
		}) {
			t.Fatalf("%q → %q parses differently", s, b.String())
		}
	})
}

// FuzzStackTerraform: no Terraform file makes the loader panic or hang,
// and a problem of a .tf file names it.
func FuzzStackTerraform(f *testing.F) {
	f.Add([]byte("output \"a\" {\n  value = 1\n}\n"))
	f.Add([]byte("module \"m\" {\n  source = \"../x\"\n}\nterraform {\n  backend \"s3\" {}\n}\n"))
	f.Add([]byte("variable \"v\" {\n  default = [[[1]]]\n}\n"))
	f.Fuzz(func(t *testing.T, tf []byte) {
		m := fstest.MapFS{
			"socle.yaml":              {Data: []byte(minimalPlatform)},
			"teams.yaml":              {Data: []byte(minimalTeams)},
			"stacks/s/stack.yaml":     {Data: []byte("apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\n")},
			"stacks/s/main.tf":        {Data: tf},
			"stacks/x/stack.yaml":     {Data: []byte("apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\n")},
			"stacks/x/main.tf":        {Data: []byte("output \"o\" {\n  value = 1\n}\n")},
			"stacks/s/modules/m/a.tf": {Data: tf},
		}
		_, ps := Load(m)
		for _, p := range ps {
			if p.File == "" {
				t.Fatalf("a problem without a file: %v", p)
			}
		}
	})
}

// TestTruncate: a cut falls at a character's start, never inside one.
func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…"},
		{"│ error", 2, "…"},    // │ is 3 bytes: nothing of it is kept
		{"a│ error", 3, "a…"},  // cut inside │
		{"a│ error", 4, "a│…"}, // cut after it
	} {
		got := Truncate(c.s, c.n)
		if got != c.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

// TestMayApproveStack is the rule of who approves a stack instance's
// plan: approvers of the owner team (or admins) where it is
// production-like, developers and above of it elsewhere, admins only
// without an owner.
func TestMayApproveStack(t *testing.T) {
	t.Parallel()
	m := stacksRepo(t)
	m["teams.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: socle.dev/v1
kind: Teams
teams:
  - name: platform
    members: [{user: ann, role: admin}]
  - name: net
    members:
      - {user: dev, role: developer}
      - {user: appr, role: approver}
      - {user: view, role: viewer}
  - name: other
    members: [{user: stranger, role: approver}]
`)}
	m["stacks/app-zone/stack.yaml"] = &fstest.MapFile{Data: append(m["stacks/app-zone/stack.yaml"].Data, "owner: net\n"...)}
	repo, ps := Load(m)
	if ps.Errors() > 0 {
		t.Fatal(ps.Err())
	}
	owned, zoned, ownerless := repo.Stack("app-zone"), repo.Stack("network"), *repo.Stack("app-zone")
	ownerless.Config.Owner = ""
	zonedOwned := *zoned
	zonedOwned.Config.Owner = "net"
	tests := []struct {
		user     string
		s        *Stack
		instance string
		want     bool
	}{
		{"dev", owned, "dev", true},       // not production-like: developers of the owner team
		{"appr", owned, "dev", true},      //
		{"view", owned, "dev", false},     // a viewer approves nothing
		{"stranger", owned, "dev", false}, // an approver of another team
		{"dev", owned, "prod", false},     // prod ends the promotion line: its deployRoles leave developers out
		{"appr", owned, "prod", true},
		{"ann", owned, "prod", true}, // an admin of any team
		{"dev", &zonedOwned, "connectivity", false},
		{"appr", &zonedOwned, "connectivity", true}, // a zone instance is production-like
		{"appr", &ownerless, "dev", false},          // no owner: admins only
		{"ann", &ownerless, "dev", true},
		{"ann", zoned, "connectivity", true},
		{"nobody", owned, "dev", false},
	}
	for _, tt := range tests {
		if got := repo.MayApproveStack(tt.user, tt.s, tt.instance); got != tt.want {
			t.Errorf("MayApproveStack(%s, %s, %s) = %v, want %v (roles %v)", tt.user, tt.s.Name, tt.instance, got, tt.want, repo.StackApproveRoles(tt.s, tt.instance))
		}
	}
}

// TestStackInstanceFor: an environment is served by the instance of its
// name in a stack per environment, by its zone's in a stack per zone, and
// by none where the stack lists neither.
func TestStackInstanceFor(t *testing.T) {
	repo := &Repo{Platform: Platform{Environments: []Environment{{Name: "dev", Zone: "apps-nonprod"}, {Name: "prod", Zone: "apps-prod"}, {Name: "lab"}}}}
	perEnv := &Stack{Name: "databases", Config: StackConfig{Environments: []string{"dev", "preprod"}}}
	perZone := &Stack{Name: "clusters", Config: StackConfig{Zones: []string{"apps-nonprod", "connectivity"}}}
	for _, tc := range []struct {
		s         *Stack
		env, want string
		ok        bool
	}{
		{perEnv, "dev", "dev", true},
		{perEnv, "prod", "", false},
		{perZone, "dev", "apps-nonprod", true},
		{perZone, "prod", "", false},
		{perZone, "lab", "", false},
		{perZone, "nowhere", "", false},
	} {
		got, ok := repo.StackInstanceFor(tc.s, tc.env)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("StackInstanceFor(%s, %s) = %q, %v; want %q, %v", tc.s.Name, tc.env, got, ok, tc.want, tc.ok)
		}
	}
}
