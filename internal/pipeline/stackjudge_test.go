package pipeline

import (
	"testing"
	"testing/fstest"

	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// TestJudgeStack: a planned instance is judged change by change, and a
// deny marks it denied; an instance that did not plan is not judged.
func TestJudgeStack(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"socle.yaml": {Data: []byte(`apiVersion: socle.dev/v1
kind: Platform
metadata: {name: acme}
zones: [{name: nonprod, kind: application}, {name: prodzone, kind: application}]
environments:
  - {name: dev, zone: nonprod, runtime: {type: local}, sync: auto}
  - {name: prod, zone: prodzone, runtime: {type: local}, sync: manual, promotion: {from: dev}}
`)},
		"teams.yaml":           {Data: []byte("apiVersion: socle.dev/v1\nkind: Teams\nteams: [{name: ops, members: [{user: ann, role: admin}]}]\n")},
		"stacks/db/stack.yaml": {Data: []byte("apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev, prod]\n")},
		"stacks/db/main.tf":    {Data: []byte("resource \"terraform_data\" \"a\" {}\n")},
		policy.OverridesFile:   {Data: []byte("apiVersion: socle.dev/v1\nkind: BuiltinPolicies\nstacks:\n  protect: [\"terraform_data.*\"]\n")},
	}
	repo, problems := spec.Load(fsys)
	if err := problems.Err(); err != nil {
		t.Fatal(err)
	}
	set, problems := policy.Compile(repo, fsys)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	changes := []stack.ResourceChange{
		{Address: "terraform_data.a", Type: "terraform_data", Name: "a", Action: stack.ActionCreate, After: map[string]any{"input": "x"}},
		{Address: "terraform_data.b", Type: "terraform_data", Name: "b", Action: stack.ActionDelete, Before: map[string]any{"input": "y"}},
	}
	for _, tt := range []struct {
		env    string
		status stack.Status
		denied bool
		judged int
	}{
		{"prod", stack.StatusPlanned, true, 2},
		{"dev", stack.StatusPlanned, false, 2},
		{"prod", stack.StatusFailed, false, 0},
	} {
		r := &stack.Result{Stack: "db", Instance: tt.env, Status: tt.status, Changes: changes}
		ds, denied := JudgeStack(set, repo, r, policy.Context{})
		if denied != tt.denied || len(ds) != tt.judged {
			t.Errorf("%s %s: denied %v with %d decisions, want %v with %d", tt.env, tt.status, denied, len(ds), tt.denied, tt.judged)
		}
		if tt.denied && (ds[0].Verdicts.Blocked() || !ds[1].Verdicts.Blocked()) {
			t.Errorf("%s: the create must pass and the delete be denied: %+v", tt.env, ds)
		}
	}
}
