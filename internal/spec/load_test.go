package spec

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/socle-dev/socle/internal/golden"
)

func TestLoadExample(t *testing.T) {
	t.Parallel()
	r, ps := Load(os.DirFS("../../examples/platform"))
	if len(ps) > 0 {
		t.Fatalf("examples/platform has problems:\n%v", ps.Err())
	}
	var names []string
	for _, a := range r.Apps {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "api,web,worker" {
		t.Errorf("apps = %s", got)
	}
	web := r.App("web")
	if got := web.ReplicasIn("prod"); got != (Replicas{Min: 3, Max: 8}) {
		t.Errorf("web replicas in prod = %+v", got)
	}
	if got := web.ReplicasIn("preprod"); got != (Replicas{Min: 2, Max: 4}) {
		t.Errorf("web replicas in preprod = %+v", got)
	}
	if got := r.App("worker").RolloutIn("dev").Strategy; got != StrategyRolling {
		t.Errorf("worker inherits rollout %q, want rolling from the platform defaults", got)
	}
	prod := r.Environment("prod")
	if prod.Promotion == nil || prod.Promotion.Approvals != 1 || len(prod.Promotion.Windows) != 1 {
		t.Fatalf("prod promotion = %+v", prod.Promotion)
	}
	if !*prod.Prune || *r.Environment("sandbox").Prune {
		t.Error("prune defaults: want prod true (default) and sandbox false (set)")
	}
	if r.App("api").EnabledIn("sandbox") {
		t.Error("api is disabled in sandbox")
	}
}

// TestLoadBroken checks that one pass reports every mistake of a repository
// with a dozen of them, each with file:line:column and field.
func TestLoadBroken(t *testing.T) {
	t.Parallel()
	_, ps := Load(os.DirFS("testdata/broken"))
	var b bytes.Buffer
	for _, p := range ps {
		fmt.Fprintln(&b, p)
	}
	golden.Check(t, "testdata/broken.golden", b.Bytes())
	if n := ps.Errors(); n < 10 {
		t.Errorf("found %d errors, want at least the 10 planted", n)
	}
	for _, p := range ps {
		if p.Line == 0 {
			t.Errorf("problem without a line: %v", p)
		}
	}
}

const minimalPlatform = `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: acme}
environments:
  - name: dev
    runtime: {type: local}
    sync: auto
  - name: prod
    runtime: {type: local}
    sync: manual
    promotion: {from: dev}
`

const minimalTeams = `apiVersion: socle.dev/v1
kind: Teams
teams:
  - name: core
    members: [{user: ann, role: developer}]
`

const minimalScore = `apiVersion: score.dev/v1b1
metadata: {name: shop}
containers:
  main:
    image: nginx@sha256:0123456789012345678901234567890123456789012345678901234567890123
`

func minimalRepo() fstest.MapFS {
	return fstest.MapFS{
		"socle.yaml":           {Data: []byte(minimalPlatform)},
		"teams.yaml":           {Data: []byte(minimalTeams)},
		"apps/shop/score.yaml": {Data: []byte(minimalScore)},
	}
}

// TestProblems plants one mistake at a time in a minimal valid repository.
func TestProblems(t *testing.T) {
	t.Parallel()
	if _, ps := Load(minimalRepo()); len(ps) > 0 {
		t.Fatalf("the minimal repository is not clean:\n%v", ps.Err())
	}
	tests := []struct {
		name, file, data, want string
	}{
		{"empty platform", "socle.yaml", "", `socle.yaml:1:1: expected a mapping of fields (apiVersion, kind, …), found an empty file`},
		{"list instead of mapping", "teams.yaml", "- a\n- b\n", `teams.yaml:1:1: expected a mapping of fields (apiVersion, kind, …), found a list`},
		{"tab in YAML", "teams.yaml", "apiVersion: socle.dev/v1\n\tkind: Teams\n", `teams.yaml:2:1: invalid YAML: found a tab character`},
		{"duplicate key", "teams.yaml", "apiVersion: socle.dev/v1\napiVersion: socle.dev/v1\n", `teams.yaml:2:1: invalid YAML: key "apiVersion" appears twice`},
		{"two documents", "teams.yaml", minimalTeams + "---\na: 1\n", `teams.yaml:6:1: a second YAML document`},
		{"wrong kind", "teams.yaml", strings.Replace(minimalTeams, "kind: Teams", "kind: Team", 1), `teams.yaml:2:7: kind: expected one of Teams, found Team`},
		{"wrong apiVersion", "teams.yaml", strings.Replace(minimalTeams, "socle.dev/v1", "socle.dev/v2", 1), `teams.yaml:1:13: apiVersion: expected one of socle.dev/v1, found socle.dev/v2`},
		{"missing field", "teams.yaml", strings.Replace(minimalTeams, ", role: developer", "", 1), `teams.yaml:5:15: teams[0].members[0].role: missing required field "role"`},
		{"bad role", "teams.yaml", strings.Replace(minimalTeams, "role: developer", "role: boss", 1), `teams.yaml:5:33: teams[0].members[0].role: expected one of viewer, developer, approver, admin, found boss`},
		{"unknown field with suggestion", "socle.yaml", strings.Replace(minimalPlatform, "sync: auto", "sync: auto\n    promtion: {from: dev}", 1), `socle.yaml:8:5: environments[0].promtion: unknown field "promtion"; did you mean "promotion"?`},
		{"unknown field listing", "socle.yaml", strings.Replace(minimalPlatform, "sync: auto", "sync: auto\n    colour: blue", 1), `unknown field "colour"; expected one of: deployRoles, description, emergency, name, notify, promotion, prune, runtime, secretStores, selfHeal, sync, variables, zone`},
		{"bad sync", "socle.yaml", strings.Replace(minimalPlatform, "sync: auto", "sync: always", 1), `socle.yaml:7:11: environments[0].sync: expected one of auto, manual, found always`},
		{"bad soak", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: dev, soak: soon}", 1), `environments[1].promotion.soak: "soon" does not have the expected form`},
		{"unknown from", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: qa}", 1), `socle.yaml:11:23: environments[1].promotion.from: no environment "qa" to promote from (known: dev, prod)`},
		{"self promotion", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: prod}", 1), `environments[1].promotion.from: environment "prod" promotes from itself`},
		{"out of order", "socle.yaml", minimalPlatform + "  - name: qa\n    runtime: {type: local}\n    sync: manual\n", ``},
		{"fork", "socle.yaml", minimalPlatform + "  - name: qa\n    runtime: {type: local}\n    sync: manual\n    promotion: {from: dev}\n", `environments[2].promotion.from: "prod" already promotes from "dev": promotions form one line`},
		{"duplicate environment", "socle.yaml", minimalPlatform + "  - name: dev\n    runtime: {type: local}\n    sync: auto\n", `socle.yaml:12:11: environments[2].name: a second entry named "dev"`},
		{"bad window zone", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: dev, windows: [\"Mon-Fri 09:00-17:00 Mars/Olympus\"]}", 1), `unknown time zone "Mars/Olympus"`},
		{"window ends before it starts", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: dev, windows: [\"Mon 17:00-09:00\"]}", 1), `the end must be after the start`},
		{"freeze backwards", "socle.yaml", minimalPlatform + "freezes:\n  - {name: x, environments: [prod], start: 2026-12-20, end: 2026-12-01, reason: r}\n", `freezes[0].end: the end must be after the start`},
		{"freeze unknown env", "socle.yaml", minimalPlatform + "freezes:\n  - {name: x, environments: [live], start: 2026-12-01, end: 2026-12-20, reason: r}\n", `freezes[0].environments[0]: no environment "live"`},
		{"freeze bad date", "socle.yaml", minimalPlatform + "freezes:\n  - {name: x, environments: [prod], start: 2026-13-01, end: 2026-12-20, reason: r}\n", `freezes[0].start: invalid time "2026-13-01"`},
		{"notification without url", "socle.yaml", minimalPlatform + "notifications:\n  - {name: ops, type: slack}\n", `notifications[0]: expected exactly one of url or urlFromEnv`},
		{"score name mismatch", "apps/shop/score.yaml", strings.Replace(minimalScore, "name: shop", "name: store", 1), `apps/shop/score.yaml:2:18: metadata.name: expected the app's directory name "shop", found "store"`},
		{"score unknown field", "apps/shop/score.yaml", minimalScore + "replicas: 3\n", `apps/shop/score.yaml:6:1: replicas: unknown field "replicas"`},
		{"score placeholder", "apps/shop/score.yaml", minimalScore + "    variables: {A: \"${resources.db.host}\"}\n", `placeholder ${resources.db.host} does not resolve to a resource`},
		{"score missing file source", "apps/shop/score.yaml", minimalScore + "    files: {/etc/x: {source: x.conf}}\n", `file source "x.conf" does not exist in the repository`},
		{"no score file", "apps/shop/score.yaml", "", `apps/shop/score.yaml:1:1: expected a mapping`},
		{"app owner", "apps/shop/socle.yaml", "apiVersion: socle.dev/v1\nkind: App\nowner: sales\n", `apps/shop/socle.yaml:3:8: owner: no team "sales" (known: core)`},
		{"app override env", "apps/shop/socle.yaml", "apiVersion: socle.dev/v1\nkind: App\nowner: core\nenvironments:\n  stage: {replicas: {min: 2}}\n", `apps/shop/socle.yaml:5:3: environments.stage: override for environment "stage"`},
		{"replicas max below min", "apps/shop/socle.yaml", "apiVersion: socle.dev/v1\nkind: App\nowner: core\nreplicas: {min: 3, max: 2}\n", `replicas.max: max (2) is below min (3)`},
		{"canary without steps", "apps/shop/socle.yaml", "apiVersion: socle.dev/v1\nkind: App\nowner: core\nrollout: {strategy: canary}\n", `rollout: a canary needs steps`},
		{"canary weight", "apps/shop/socle.yaml", "apiVersion: socle.dev/v1\nkind: App\nowner: core\nrollout: {strategy: canary, steps: [{weight: 150}]}\n", `rollout.steps[0].weight: maximum`},
		{"pin unknown app", "releases/prod.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps:\n  cart: {revision: 0123abc}\n", `releases/prod.yaml:5:3: apps.cart: pins app "cart", which does not exist under apps/`},
		{"emergency roles", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: dev}\n    emergency: {roles: [approver], approvals: 0}", 1), ``},
		{"emergency role unknown", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: dev}\n    emergency: {roles: [viewer]}", 1), `environments[1].emergency.roles[0]: expected one of developer, approver, admin, found viewer`},
		{"emergency role may not deploy", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: dev}\n    emergency: {roles: [developer]}", 1), `socle.yaml:12:25: environments[1].emergency.roles[0]: role developer may not deploy to prod (deployRoles: approver, admin), so it cannot declare emergency changes there`},
		{"emergency approvals", "socle.yaml", strings.Replace(minimalPlatform, "{from: dev}", "{from: dev}\n    emergency: {approvals: 11}", 1), `environments[1].emergency.approvals: maximum`},
		{"emergency on auto", "socle.yaml", strings.Replace(minimalPlatform, "sync: auto", "sync: auto\n    emergency: {}", 1), ``},
		{"emergency pin", "releases/prod.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps:\n  shop: {revision: 0123abc, promotedBy: ann, emergency: {reason: INC-1 checkout down}}\n", ``},
		{"emergency pin without reason", "releases/prod.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps:\n  shop: {revision: 0123abc, promotedBy: ann, emergency: {}}\n", `releases/prod.yaml:5:57: apps.shop.emergency.reason: missing required field "reason"`},
		{"emergency pin with a blank reason", "releases/prod.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps:\n  shop: {revision: 0123abc, promotedBy: ann, emergency: {reason: \"  \"}}\n", `releases/prod.yaml:5:66: apps.shop.emergency.reason: an emergency change needs a reason`},
		{"emergency pin without declarer", "releases/prod.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps:\n  shop: {revision: 0123abc, emergency: {reason: r}}\n", `apps.shop.emergency: an emergency pin names who declared it in promotedBy`},
		{"pin file name", "releases/prod.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: dev\n", `file pins environment "dev" but is named for "prod"`},
		{"pin unknown env", "releases/qa.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: qa\n", `releases/qa.yaml:3:14: environment: no environment "qa" in socle.yaml`},
		{"budget currency", "budgets.yaml", "apiVersion: socle.dev/v1\nkind: Budgets\nbudgets:\n  - {name: b, team: core, amount: 10, currency: euro}\n", `budgets[0].currency: "euro" does not have the expected form`},
		{"budget amount with cents", "budgets.yaml", "apiVersion: socle.dev/v1\nkind: Budgets\nbudgets:\n  - {name: b, team: core, amount: 1234567.89, currency: EUR}\n", ``},
		{"cost split", "socle.yaml", minimalPlatform + "costs:\n  rules:\n    - {name: shared, match: {project: hub}, split: [{team: core, weight: 3}, {environment: prod, weight: 1}]}\n", ``},
		{"cost rule of nothing", "socle.yaml", minimalPlatform + "costs:\n  rules:\n    - {name: shared, match: {project: hub}}\n", `costs.rules[0]: a rule allocates with set, split or both`},
		{"cost split of one", "socle.yaml", minimalPlatform + "costs:\n  rules:\n    - {name: shared, match: {project: hub}, split: [{team: core, weight: 1}]}\n", `costs.rules[0].split: a split needs two shares or more`},
		{"cost split weight", "socle.yaml", minimalPlatform + "costs:\n  rules:\n    - {name: shared, match: {project: hub}, split: [{team: core, weight: 0}, {team: core, weight: 1}]}\n", `costs.rules[0].split[0].weight: minimum`},
		{"cost split team", "socle.yaml", minimalPlatform + "costs:\n  rules:\n    - {name: shared, match: {project: hub}, split: [{team: sales, weight: 1}, {team: core, weight: 1}]}\n", `costs.rules[0].split[0].team: no team "sales"`},
		{"budget negative", "budgets.yaml", "apiVersion: socle.dev/v1\nkind: Budgets\nbudgets:\n  - {name: b, team: core, amount: -10, currency: EUR}\n", `budgets[0].amount`},
		{"policy duplicate", "policies/a.yaml", "apiVersion: socle.dev/v1\nkind: Policies\npolicies:\n  - {name: p, severity: deny, expression: 'true', message: m}\n  - {name: p, severity: warn, expression: 'true', message: m}\n", `policies/a.yaml:5:12: policies[1].name: a policy named "p" is already defined in policies/a.yaml`},
		{"policy severity", "policies/a.yaml", "apiVersion: socle.dev/v1\nkind: Policies\npolicies:\n  - {name: p, severity: block, expression: 'true', message: m}\n", `policies[0].severity: expected one of deny, warn, found block`},
		{"template name", "templates/svc/template.yaml", "apiVersion: socle.dev/v1\nkind: Template\nmetadata: {name: service}\n", `template is named "service" but lives in templates/svc/`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fsys := minimalRepo()
			fsys[tt.file] = &fstest.MapFile{Data: []byte(tt.data)}
			_, ps := Load(fsys)
			all := ps.Err()
			if tt.want == "" {
				if all != nil {
					t.Fatalf("want no error, got:\n%v", all)
				}
				return
			}
			if all == nil {
				t.Fatalf("want %q, got no error", tt.want)
			}
			if !strings.Contains(all.Error(), tt.want) {
				t.Errorf("want a problem containing\n  %s\ngot:\n%v", tt.want, all)
			}
		})
	}
}

// TestScoreSamples places the Score project's own samples under apps/: any
// file the Score project's Go library accepts is accepted as it is, and one it
// rejects is rejected. score-minimal.yaml and score-with-extensions.yaml come
// from the specification repository's main branch, which made containers
// optional and allowed x- extensions after score-go's latest release (v1.20.0)
// was cut; score-go and so score-compose still reject them, and so does socle.
func TestScoreSamples(t *testing.T) {
	t.Parallel()
	samples := map[string]string{
		// The specification's samples (score-spec/spec, samples/).
		"score-minimal.yaml": "apiVersion: score.dev/v1b1\nmetadata:\n  name: example-workload-name123\n",
		"score-with-extensions.yaml": "apiVersion: score.dev/v1b1\nmetadata:\n  name: example-workload-name123\nx-my-extension:\n" +
			"  archive: http://example.com/binary.tgz\n  variables:\n    SOME_VAR: ${resources.example.thing}\nresources:\n  example:\n    type: resource-type\n",
		"score-deprecated-files-and-volumes.yaml": "apiVersion: score.dev/v1b1\nmetadata:\n  name: \"deprecated-files-example\"\ncontainers:\n  main:\n" +
			"    image: \"example-image:latest\"\n    files:\n    - target: /mnt/some-path\n      content: \"my content here\"\n    volumes:\n    - target: /mnt/vol\n      source: some-volume\n",
	}
	// samples/score-full.yaml as the score-go module ships it.
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/score-spec/score-go").Output()
	if err != nil {
		t.Fatalf("locating score-go: %v", err)
	}
	full, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "schema", "files", "samples", "score-full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	samples["score-full.yaml"] = string(full)
	notYet := map[string]string{
		"score-minimal.yaml":         `missing required field "containers"`,
		"score-with-extensions.yaml": `unknown field "x-my-extension"`,
	}
	for name, data := range samples {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, p := parseYAML(name, []byte(data))
			if p != nil {
				t.Fatal(p)
			}
			app := d.value.(map[string]any)["metadata"].(map[string]any)["name"].(string)
			fsys := minimalRepo()
			fsys["apps/"+app+"/score.yaml"] = &fstest.MapFile{Data: []byte(data)}
			fsys["apps/"+app+"/file.txt"] = &fstest.MapFile{Data: []byte("the file score-full.yaml mounts\n")}
			// Its resources' types are made up: the platform provisions them.
			fsys["provisioners/made-up.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: socle.dev/v1
kind: Provisioners
provisioners:
  - {name: one, match: {type: Resource-One}, driver: static, config: {outputs: {}}}
  - {name: two, match: {type: Resource-Two}, driver: static, config: {outputs: {}}}
  - {name: three, match: {type: Type-Three}, driver: static, config: {outputs: {}}}
`)}
			r, ps := Load(fsys)
			if notYet[name] != "" {
				if err := ps.Err(); err == nil || !strings.Contains(err.Error(), notYet[name]) {
					t.Fatalf("want the score-go rejection %q, got %v", notYet[name], err)
				}
				return
			}
			if err := ps.Err(); err != nil {
				t.Fatalf("a valid Score file is rejected:\n%v", err)
			}
			if r.App(app).Workload == nil {
				t.Fatal("no workload")
			}
		})
	}
}

// FuzzLoad feeds arbitrary bytes to every kind of file: the loader must
// never panic, and every problem must name its file.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{minimalPlatform, minimalTeams, minimalScore, "a: [", "{}", "- 1", "a: &x [*x]", "environments: [{promotion: {from: x}}]", minimalPlatform + bomb(9, "x-lol", "")} {
		f.Add("socle.yaml", s)
		f.Add("apps/shop/score.yaml", s)
	}
	f.Add("releases/prod.yaml", "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps: {shop: {revision: abcdefa}}")
	f.Add("budgets.yaml", "budgets: [{amount: 1e400}]")
	files := []string{"socle.yaml", "teams.yaml", "apps/shop/score.yaml", "apps/shop/socle.yaml", "releases/prod.yaml", "budgets.yaml", "policies/p.yaml", "templates/t/template.yaml"}
	f.Fuzz(func(t *testing.T, file, data string) {
		fsys := minimalRepo()
		target := files[len(file)%len(files)]
		fsys[target] = &fstest.MapFile{Data: []byte(data)}
		_, ps := Load(fsys)
		for _, p := range ps {
			if p.File == "" || p.Message == "" {
				t.Fatalf("problem without file or message: %+v", p)
			}
		}
	})
}
