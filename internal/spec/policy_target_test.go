package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestPolicyTargetStacks: a policy's target and match.stacks are checked
// against each other and against the repository's stacks, at their line.
func TestPolicyTargetStacks(t *testing.T) {
	t.Parallel()
	m := stacksRepo(t)
	m["policies/p.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: socle.dev/v1
kind: Policies
policies:
  - {name: ok, severity: deny, target: stacks, match: {stacks: [network]}, expression: "true", message: m}
  - {name: nostack, severity: deny, target: stacks, match: {stacks: [netwrk]}, expression: "true", message: m}
  - {name: app-target, severity: deny, match: {stacks: [network]}, expression: "true", message: m}
  - {name: apps-match, severity: deny, target: stacks, match: {apps: [web]}, expression: "true", message: m}
  - {name: bad-target, severity: deny, target: stack, expression: "true", message: m}
`)}
	_, ps := Load(m)
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	want := []string{
		`policies/p.yaml:5:70: policies[1].match.stacks[0]: no stack "netwrk" (stacks/netwrk/stack.yaml)`,
		`policies/p.yaml:6:56: policies[2].match.stacks: match.stacks selects stacks, and this policy's target is apps: add target: stacks`,
		`policies/p.yaml:7:70: policies[3].match.apps: match.apps selects apps, and this policy's target is stacks: use match.stacks`,
		`policies/p.yaml:7:71: policies[3].match.apps[0]: no app "web"`,
		`policies/p.yaml:8:48: policies[4].target: expected one of apps, stacks, found stack`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
