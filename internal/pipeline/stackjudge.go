package pipeline

import (
	"slices"

	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// JudgeStack evaluates the policies whose target is stacks on every
// resource change of one instance's plan, as Judge does on the apps'
// changes; decisions line up with r.Changes. denied is true when a
// verdict blocks a change: the instance's plan must not be applied. socle
// plan reports it; nothing applies stacks yet, and the apply path, when
// it comes, must call this before stack.Runner.Apply.
// Only a plan that changes something is judged.
func JudgeStack(set *policy.Set, repo *spec.Repo, r *stack.Result, c policy.Context) (ds []policy.StackDecision, denied bool) {
	if r.Status != stack.StatusPlanned {
		return nil, false
	}
	changes := make([]policy.StackChange, len(r.Changes))
	for i, ch := range r.Changes {
		changes[i] = policy.StackChange{Address: ch.Address, Type: ch.Type, Name: ch.Name, Action: string(ch.Action), Before: ch.Before, After: ch.After}
	}
	s := repo.Stack(r.Stack)
	ds = set.EvaluateStackPlan(r.Stack, r.Instance, s != nil && s.PerZone(), changes, c)
	return ds, slices.ContainsFunc(ds, func(d policy.StackDecision) bool { return d.Verdicts.Blocked() })
}
