package fromstack

import (
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// TestNotServed: a resource whose stack has no instance for its
// environment, no stack, or an instance never applied, is refused with
// words that say which and why.
func TestNotServed(t *testing.T) {
	repo := &spec.Repo{
		Platform: spec.Platform{Environments: []spec.Environment{{Name: "dev", Zone: "apps-nonprod"}, {Name: "prod", Zone: "apps-prod"}}},
		Stacks: []*spec.Stack{
			{Name: "clusters", Config: spec.StackConfig{Zones: []string{"apps-nonprod"}}},
			{Name: "databases", Config: spec.StackConfig{Environments: []string{"dev", "preprod"}}},
		},
	}
	d := &Driver{Repo: func() *spec.Repo { return repo }, Outputs: stack.AppliedOutputs{Dir: t.TempDir()}}
	req := func(stack, env string) provision.Request {
		return provision.Request{Name: "api-db", Env: env, Type: "postgres", Config: map[string]any{"stack": stack}}
	}
	for _, tc := range []struct {
		r    provision.Request
		want string
	}{
		{req("databases", "prod"), "stack databases has no instance for environment prod (its environments: dev, preprod)"},
		{req("clusters", "prod"), "stack clusters has no instance for environment prod (its zones: apps-nonprod)"},
		{req("caches", "dev"), `no stack "caches" in the revision in force`},
		{req("databases", "dev"), "stack databases @ dev is not applied yet"},
		{req("clusters", "dev"), "stack clusters @ apps-nonprod is not applied yet"},
	} {
		_, err := d.Provision(t.Context(), tc.r)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s in %s: %v, want %q", tc.r.Config["stack"], tc.r.Env, err, tc.want)
		}
		if err := d.Check(t.Context(), tc.r); err == nil {
			t.Errorf("%s in %s: the check finds nothing wrong", tc.r.Config["stack"], tc.r.Env)
		}
	}
	if err := d.Deprovision(t.Context(), req("databases", "dev")); err != nil {
		t.Errorf("deprovisioning: %v", err)
	}
	if got := d.Leaves(req("databases", "dev")); !strings.Contains(got, "stack databases is not destroyed") {
		t.Errorf("Leaves says %q", got)
	}
}
