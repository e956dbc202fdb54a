package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/wiring"
)

// stackPlans is the plan of a repository's stacks beside its apps'.
type stackPlans struct {
	// Planned is false when terraform could not be run at all (Reason).
	Planned   bool   `json:"planned"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
	Terraform string `json:"terraform,omitempty"`
	// Server, when set, planned the results: they are its last plans,
	// read through its API (socle stack plan --server).
	Server  string        `json:"server,omitempty"`
	Results []stackResult `json:"results,omitempty"`
}

// stackResult is the plan of one instance with the policies' verdicts on
// each of its resource changes.
type stackResult struct {
	stack.Result
	// Decisions line up with Changes; absent when nothing was planned.
	Decisions []policy.StackDecision `json:"decisions,omitempty"`
	// Denied is true when a verdict blocks a change: the plan of the
	// instance must not be applied.
	Denied bool `json:"denied,omitempty"`
	// A server's plan only: when it was recorded; Outdated when the
	// revision in force or an upstream's outputs changed since; Unit, the
	// server's status of the instance in words.
	RecordedAt time.Time `json:"recordedAt,omitzero"`
	Outdated   bool      `json:"outdated,omitempty"`
	Unit       string    `json:"unit,omitempty"`
}

// judge evaluates the policies on every resource change of the planned
// instances (pipeline.JudgeStack).
func (s *stackPlans) judge(repo *spec.Repo, set *policy.Set, c policy.Context) {
	if s == nil {
		return
	}
	for i := range s.Results {
		r := &s.Results[i]
		r.Decisions, r.Denied = pipeline.JudgeStack(set, repo, &r.Result, c)
	}
}

// denied counts the instances a policy denies; warnings counts the
// warnings on their changes.
func (s *stackPlans) denied() (denied, warnings int) {
	if s == nil {
		return 0, 0
	}
	for _, r := range s.Results {
		if r.Denied {
			denied++
		}
		for _, d := range r.Decisions {
			warnings += len(d.Verdicts.Warnings())
		}
	}
	return denied, warnings
}

// failed counts the instances that did not plan.
func (s *stackPlans) failed() int {
	if s == nil {
		return 0
	}
	n := 0
	for _, r := range s.Results {
		if r.Status == stack.StatusFailed {
			n++
		}
	}
	return n
}

// stackInstance names s's instance for where, an environment or a zone:
// an environment's own instance, or that of its zone for a stack with one
// instance per zone; "" when s has no instance there.
func stackInstance(repo *spec.Repo, s *spec.Stack, where string) string {
	if repo.Environment(where) != nil {
		if inst, ok := repo.StackInstanceFor(s, where); ok {
			return inst
		}
		return ""
	}
	if slices.Contains(s.Instances(), where) {
		return where // a zone, by its name
	}
	return ""
}

// envStacks keeps the instances of env (nil: all): its own, and those of
// its zone.
func envStacks(repo *spec.Repo, env string) func(s *spec.Stack, inst string) bool {
	if repo.Environment(env) == nil {
		return nil
	}
	return func(s *spec.Stack, inst string) bool { return inst == stackInstance(repo, s, env) }
}

// planStacks plans the instances of repo's stacks that keep keeps (nil:
// all) in data's stacks directory, or in a temporary one, against an
// empty state, when data does not exist. No terraform on PATH is no
// error: the plan says stacks were not planned.
func planStacks(ctx context.Context, repo *spec.Repo, dir, data string, keep func(s *spec.Stack, inst string) bool) (*stackPlans, error) {
	if len(repo.Stacks) == 0 {
		return nil, nil
	}
	bin, err := stack.Binary()
	if err != nil {
		return nil, err
	}
	if bin == "" {
		return &stackPlans{Reason: "TerraformNotFound", Message: "stacks were not planned: neither terraform nor tofu is on PATH"}, nil
	}
	work := filepath.Join(data, "stacks")
	// The data directory's secret opens the states socle sealed there; a
	// plan in a temporary directory has no state, and keeps nothing to
	// apply, so it needs none.
	var secret []byte
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		tmp, err := os.MkdirTemp("", "socle-stacks-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		work = tmp
	} else if secret, err = wiring.DataSecret(data); err != nil {
		return nil, fmt.Errorf("the data directory's secret: %w", err)
	}
	if work, err = filepath.Abs(work); err != nil {
		return nil, err
	}
	r := &stack.Runner{Dir: work, Terraform: bin, Secret: secret}
	out := &stackPlans{Planned: true, Terraform: bin}
	for _, res := range r.PlanAll(ctx, repo, dirFS(dir), stack.Targets(repo, keep)) {
		out.Results = append(out.Results, stackResult{Result: res})
	}
	return out, nil
}

func (s *stackPlans) render(w io.Writer) {
	if !s.Planned {
		fmt.Fprintf(w, "\nStacks: %s.\n", s.Message)
		return
	}
	if s.Server != "" {
		fmt.Fprintf(w, "\nStacks (the last plans of the server at %s):\n\n", s.Server)
	} else {
		fmt.Fprintf(w, "\nStacks (planned with %s):\n\n", s.Terraform)
	}
	for _, r := range s.Results {
		r.render(w)
	}
	denied, warnings := s.denied()
	fmt.Fprintf(w, "\nPolicies on stacks: %d instance%s denied, %d warning%s.\n", denied, plural(denied), warnings, plural(warnings))
}

// render prints one instance's plan as socle stack plan does: its
// summary, each resource change with its sign, address, verdicts and
// attributes, and the outputs it changes.
func (r stackResult) render(w io.Writer) {
	at := r.Stack + " @ " + r.Instance
	switch r.Status {
	case stack.StatusPlanned:
		mark, denied := "~", ""
		if r.Denied {
			mark, denied = "✗", " (denied by policy: not applied)"
		}
		fmt.Fprintf(w, "  %s %s: %s%s\n", mark, at, r.Summary, denied)
		for i, c := range r.Changes {
			fmt.Fprintf(w, "      %s %s\n", c.Sign(), c.Address)
			if i < len(r.Decisions) {
				for _, v := range r.Decisions[i].Verdicts {
					switch {
					case v.Blocks():
						fmt.Fprintf(w, "          ✗ deny  %s: %s\n", v.Policy, v.Message)
					case v.Warns():
						fmt.Fprintf(w, "          ! warn  %s: %s\n", v.Policy, v.Message)
					}
				}
			}
			for _, a := range c.Attributes {
				note := ""
				if a.ForcesReplacement {
					note = "  # forces replacement"
				}
				fmt.Fprintf(w, "          %s  %s%s\n", a.Path, arrow(a.Before, a.After), note)
			}
			if c.MoreAttributes > 0 {
				fmt.Fprintf(w, "          … %d more attributes\n", c.MoreAttributes)
			}
		}
		if r.MoreChanges > 0 {
			fmt.Fprintf(w, "      … %d more changes\n", r.MoreChanges)
		}
		for _, o := range r.Outputs {
			fmt.Fprintf(w, "      output %s  %s\n", o.Name, arrow(o.Before, o.After))
		}
	case stack.StatusNoChanges:
		fmt.Fprintf(w, "  = %s: no changes\n", at)
	case "": // a server's instance without a recorded plan
		fmt.Fprintf(w, "  · %s: no plan recorded (none yet, or the last one was applied or discarded)\n", at)
	case stack.StatusWaiting:
		fmt.Fprintf(w, "  … %s: not planned until its upstream applies\n", at)
		for _, p := range r.Pending {
			fmt.Fprintf(w, "      %s\n", p)
		}
	default:
		fmt.Fprintf(w, "  ✗ %s: %s (%s)\n", at, strings.ReplaceAll(r.Message, "\n", "\n      "), r.Reason)
	}
	if !r.RecordedAt.IsZero() {
		outdated := ""
		if r.Outdated {
			outdated = " (outdated: the revision in force or an upstream's outputs changed since; the server plans it again)"
		}
		fmt.Fprintf(w, "      planned %s ago%s\n", ago(r.RecordedAt), outdated)
	}
	if r.Unit != "" {
		fmt.Fprintf(w, "      now: %s\n", r.Unit)
	}
}

func arrow(before, after string) string {
	switch {
	case before == "":
		return after
	case after == "":
		return before + " → (removed)"
	}
	return before + " → " + after
}
