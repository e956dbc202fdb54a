package policy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/spec"
)

// TestExampleCases runs the demo platform's test cases: they document its
// policies and the built-ins, and must pass.
func TestExampleCases(t *testing.T) {
	t.Parallel()
	fsys := os.DirFS("../../examples/platform")
	repo, problems := spec.Load(fsys)
	if err := problems.Err(); err != nil {
		t.Fatal(err)
	}
	set, problems := Compile(repo, fsys)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	cases, problems := LoadTests(fsys)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, r := range set.RunTests(repo, cases, testNow) {
		if !r.Pass {
			t.Errorf("%s:%d: %s: want %s, got %s\n%s", r.File, r.Line, r.Name, r.Want, r.Got, r.Detail)
		}
	}
}

func TestRunTests(t *testing.T) {
	t.Parallel()
	files := policies(`  - {name: two-replicas, severity: warn, message: "{{app}} runs one replica", expression: "change.new.replicas.min >= 2"}
`)
	files[TestsDir+"/cases.yaml"] = `apiVersion: socle.dev/v1
kind: PolicyTests
tests:
  - name: passes
    policy: two-replicas
    app: web
    env: dev
    new: {replicas: {min: 2}}
    expect: allow
  - name: wrong expectation
    policy: two-replicas
    app: web
    env: dev
    expect: allow
  - name: wrong message
    policy: two-replicas
    app: web
    env: dev
    expect: warn
    message: three replicas
  - name: unknown policy
    policy: nope
    app: web
    env: dev
    expect: allow
  - name: unknown app
    app: shop
    env: dev
    expect: allow
  - name: made-up app
    app: shop
    env: dev
    new: {containers: {shop: {image: "shop:1"}}}
    expect: allow
  - name: all policies
    app: web
    env: prod
    expect: deny
  - name: an update
    policy: two-replicas
    app: web
    env: dev
    old: {replicas: {min: 3}}
    new: {replicas: {min: 2}}
    expect: allow
`
	fsys := repoFS(files)
	repo, problems := spec.Load(fsys)
	if err := problems.Err(); err != nil {
		t.Fatal(err)
	}
	set, _ := Compile(repo, fsys)
	cases, problems := LoadTests(fsys)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var got []string
	for _, r := range set.RunTests(repo, cases, testNow) {
		got = append(got, strings.Join([]string{r.File, itoa(r.Line), r.Name, boolWord(r.Pass), r.Want, r.Got, r.Detail}, " | "))
	}
	want := []string{
		"policies/tests/cases.yaml | 4 | passes | pass | allow | allow | ",
		"policies/tests/cases.yaml | 10 | wrong expectation | fail | allow | warn | two-replicas: web runs one replica",
		"policies/tests/cases.yaml | 15 | wrong message | fail | warn | warn | no message contains \"three replicas\"\ntwo-replicas: web runs one replica",
		"policies/tests/cases.yaml | 21 | unknown policy | fail | allow |  | no policy named \"nope\" in the repository or among the built-ins that are on",
		"policies/tests/cases.yaml | 26 | unknown app | fail | allow |  | no app \"shop\" in the repository: describe the unit under new:",
		"policies/tests/cases.yaml | 30 | made-up app | fail | allow | deny | owner-team-exists: shop is owned by team \"\", which teams.yaml does not define: set owner in apps/shop/socle.yaml to an existing team\ntwo-replicas: shop runs one replica",
		"policies/tests/cases.yaml | 35 | all policies | pass | deny | deny | ",
		"policies/tests/cases.yaml | 39 | an update | pass | allow | allow | ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadTestsProblems(t *testing.T) {
	t.Parallel()
	fsys := repoFS(map[string]string{
		TestsDir + "/bad.yaml": `apiVersion: socle.dev/v1
kind: PolicyTest
tests: []
`,
		TestsDir + "/cases.yaml": `apiVersion: socle.dev/v1
kind: PolicyTests
tests:
  - name: typo
    app: web
    env: dev
    expekt: deny
  - name: bad expectation
    app: web
    env: dev
    expect: block
  - app: web
    env: dev
    expect: none
    now: yesterday
    history:
      - {env: preprod, when: 2026-01-01}
  - name: bad unit
    app: web
    env: dev
    new: [1]
    expect: allow
`,
		TestsDir + "/notes.txt": "ignored",
	})
	_, problems := LoadTests(fsys)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`policies/tests/bad.yaml:2:7: kind: expected "PolicyTests", found "PolicyTest"`,
		`policies/tests/cases.yaml:7:5: tests[0].expekt: unknown field "expekt": expected one of ` + strings.Join(caseFields, ", "),
		`policies/tests/cases.yaml:11:13: tests[1].expect: expected allow, deny, warn or none, found "block"`,
		`policies/tests/cases.yaml:12:5: tests[2].name: missing name`,
		`policies/tests/cases.yaml:14:13: tests[2].expect: expect: none needs a policy: it says that the policy does not select the change`,
		`policies/tests/cases.yaml:15:10: tests[2].now: expected a time like 2026-03-03T10:00:00+01:00 or a date like 2026-03-03, found "yesterday"`,
		`policies/tests/cases.yaml:17:9: tests[2].history[0]: unknown field "when": expected one of app, env, artifact, since`,
		`policies/tests/cases.yaml:21:10: tests[3].new: expected a mapping of unit fields (containers, replicas, service, resources, …)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func itoa(i int) string { return idx(i) }

func boolWord(pass bool) string {
	if pass {
		return "pass"
	}
	return "fail"
}
