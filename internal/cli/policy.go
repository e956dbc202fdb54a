package cli

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/spec"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "List a platform repository's guardrails and run their test cases",
		Long: `Policies are guardrails checked on every plan, deploy and promotion: socle's
built-in ones and the CEL policies of policies/*.yaml. A deny verdict blocks a
change, a warn verdict annotates it.`,
	}
	cmd.AddCommand(newPolicyTestCmd(g), newPolicyListCmd(g))
	return cmd
}

func newPolicyTestCmd(g *globals) *cobra.Command {
	var run string
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the test cases written beside the policies (policies/tests/*.yaml)",
		Long: `Test compiles a platform repository's policies (default: the current directory)
and runs the test cases of policies/tests/*.yaml: each builds a change of an app
in an environment and expects a policy to allow, deny, warn, or not apply.

Exit code 1 when a case fails, a policy does not compile or a test file is
invalid.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var filter *regexp.Regexp
			if run != "" {
				var err error
				if filter, err = regexp.Compile(run); err != nil {
					return withCode(ExitUsage, fmt.Errorf("--run: %w", err))
				}
			}
			dir := dirArg(args)
			set, repo, problems, err := compilePolicies(g, dir)
			if err != nil {
				return err
			}
			cases, tps := policy.LoadTests(dirFS(dir))
			problems = append(problems, tps...)
			if filter != nil {
				var kept []policy.TestCase
				for _, c := range cases {
					if filter.MatchString(c.Name) {
						kept = append(kept, c)
					}
				}
				cases = kept
			}
			results := set.RunTests(repo, cases, time.Now())
			report := policyTestReport{Problems: nonNil(problems), Results: results}
			for _, r := range results {
				if r.Pass {
					report.Passed++
				} else {
					report.Failed++
				}
			}
			if g.json() {
				if report.Results == nil {
					report.Results = []policy.TestResult{}
				}
				if err := g.printJSON(report); err != nil {
					return err
				}
			} else {
				printPolicyTests(g, dir, report)
			}
			if report.Failed > 0 || problems.Errors() > 0 {
				return withCode(ExitProblems, errSilent)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "only the cases whose name matches this regular expression")
	return cmd
}

type policyTestReport struct {
	Passed   int                 `json:"passed"`
	Failed   int                 `json:"failed"`
	Problems spec.Problems       `json:"problems"`
	Results  []policy.TestResult `json:"results"`
}

func printPolicyTests(g *globals, dir string, r policyTestReport) {
	for _, p := range r.Problems {
		fmt.Fprintln(g.stdout, p)
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(g.stdout)
	}
	for _, res := range r.Results {
		if res.Pass {
			fmt.Fprintf(g.stdout, "ok    %s\n", res.Name)
			continue
		}
		fmt.Fprintf(g.stdout, "FAIL  %s:%d: %s\n", res.File, res.Line, res.Name)
		if res.Got != "" {
			fmt.Fprintf(g.stdout, "      want %s, got %s\n", res.Want, res.Got)
		}
		for _, l := range strings.Split(res.Detail, "\n") {
			if l != "" {
				fmt.Fprintf(g.stdout, "      %s\n", l)
			}
		}
	}
	if len(r.Results) == 0 && len(r.Problems) == 0 {
		fmt.Fprintf(g.stdout, "no test cases in %s/%s\n", strings.TrimSuffix(dir, "/"), policy.TestsDir)
		return
	}
	fmt.Fprintf(g.stdout, "%d passed, %d failed\n", r.Passed, r.Failed)
}

func newPolicyListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list [DIR]",
		Short: "List the policies that judge a platform repository's changes, built-ins included",
		Long: `List compiles a platform repository's policies (default: the current directory)
and lists them in the order they are evaluated: socle's built-in guardrails
(with the severity policies/builtins/overrides.yaml gives them), then the
repository's own.

Exit code 1 when a policy does not compile.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, _, problems, err := compilePolicies(g, dirArg(args))
			if err != nil {
				return err
			}
			if g.json() {
				if err := g.printJSON(set.Policies()); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(g.stderr, p)
				}
				tw := newTable(g.stdout, "POLICY", "SEVERITY", "FROM", "APPLIES TO")
				for _, p := range set.Policies() {
					from := p.File
					if p.Builtin {
						from = "built-in"
					}
					tw.row(p.Name, string(p.Severity), from, policyScope(p))
				}
				if err := tw.flush(); err != nil {
					return err
				}
			}
			if problems.Errors() > 0 {
				return withCode(ExitProblems, errSilent)
			}
			return nil
		},
	}
}

// compilePolicies loads a repository and compiles its policies; a
// repository that does not validate is an error (its problems printed).
func compilePolicies(g *globals, dir string) (*policy.Set, *spec.Repo, spec.Problems, error) {
	repo, err := g.loadValid(dir, "fix it first (socle validate)")
	if err != nil {
		return nil, nil, nil, err
	}
	set, problems := policy.Compile(repo, dirFS(dir))
	return set, repo, problems, nil
}

func policyScope(p policy.Info) string {
	var parts []string
	for _, m := range []struct {
		what  string
		names []string
	}{{"stacks", p.Match.Stacks}, {"environments", p.Match.Environments}, {"zones", p.Match.Zones}, {"apps", p.Match.Apps}} {
		if len(m.names) > 0 {
			parts = append(parts, m.what+" "+strings.Join(m.names, ", "))
		}
	}
	if p.Scope != "" {
		parts = append(parts, p.Scope)
	}
	switch {
	case p.Target == spec.TargetStacks && p.Builtin:
		return strings.Join(parts, "; ")
	case p.Target == spec.TargetStacks && len(parts) == 0:
		return "every stack resource change"
	case p.Target == spec.TargetStacks:
		return "stack resource changes: " + strings.Join(parts, "; ")
	case len(parts) == 0:
		return "every change"
	}
	return strings.Join(parts, "; ")
}
