package cli

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/wiring"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a platform repository: every problem, with file:line:column",
		Long: `Validate reads a platform repository (default: the current directory) and reports
every problem in one pass: YAML syntax, unknown fields, wrong types, references
between files, the promotion line, and Score files as the Score project reads them.
Where terraform (or tofu) is on PATH, each stack is also checked by terraform
validate, in a scratch copy: a stack whose providers cannot be installed here is
reported as not checked (a warning).

Exit code 1 when the repository has problems (warnings alone exit 0).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			repo, problems, err := loadDir(dir)
			if err != nil {
				return err
			}
			problems = withPolicyProblems(dir, repo, problems)
			if problems, err = withTerraformProblems(cmd.Context(), dir, repo, problems); err != nil {
				return err
			}
			if g.json() {
				if err := g.printJSON(validation{Valid: problems.Errors() == 0, Problems: nonNil(problems), Summary: summarize(repo)}); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(g.stdout, p)
				}
				if n := problems.Errors(); n > 0 {
					fmt.Fprintf(g.stdout, "\n%s: %d problem%s\n", dir, n, plural(n))
				} else {
					s := summarize(repo)
					fmt.Fprintf(g.stdout, "%s is valid: %d apps, %d environments, %d teams, %d policies\n", dir, s.Apps, s.Environments, s.Teams, s.Policies)
				}
			}
			if problems.Errors() > 0 {
				return withCode(ExitProblems, errSilent)
			}
			return nil
		},
	}
}

type validation struct {
	Valid    bool          `json:"valid"`
	Problems spec.Problems `json:"problems"`
	Summary  repoSummary   `json:"summary"`
}

type repoSummary struct {
	Apps         int `json:"apps"`
	Environments int `json:"environments"`
	Teams        int `json:"teams"`
	Policies     int `json:"policies"`
}

func summarize(r *spec.Repo) repoSummary {
	s := repoSummary{Apps: len(r.Apps), Environments: len(r.Platform.Environments), Teams: len(r.Teams.Teams)}
	for _, ps := range r.Policies {
		s.Policies += len(ps.Policies)
	}
	return s
}

func nonNil(ps spec.Problems) spec.Problems {
	if ps == nil {
		return spec.Problems{}
	}
	return ps
}

func dirArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return "."
}

// loadDir loads a platform repository from a directory, as the server
// loads a revision (wiring.Load, with socle's runtime types); err is for a
// directory that cannot be read at all, problems for its content.
func loadDir(dir string) (*spec.Repo, spec.Problems, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, nil, withCode(ExitUsage, err)
	}
	if !st.IsDir() {
		return nil, nil, withCode(ExitUsage, fmt.Errorf("%s is not a directory", dir))
	}
	repo, problems := wiring.Load(dirFS(dir), runtimeTypes())
	return repo, problems, nil
}

// dirFS is a platform repository's directory as a file system that never
// leads out of it: an os.Root refuses any path, symbolic links included,
// that would. (The loader refuses links wherever it reads; this is the
// floor under every offline reader of the repository, policies and plans
// included.) A root that cannot be opened is a file system whose every
// call fails with that error. The root closes when the file system is no
// longer used (os.Root's finalizer).
func dirFS(dir string) fs.FS {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return failingFS{err}
	}
	return r.FS()
}

type failingFS struct{ err error }

func (f failingFS) Open(string) (fs.File, error) { return nil, f.err }

// withPolicyProblems adds the problems of policies that do not compile.
func withPolicyProblems(dir string, repo *spec.Repo, problems spec.Problems) spec.Problems {
	if problems.Errors() > 0 {
		return problems // the repository must load before its policies can compile
	}
	_, more := policy.Compile(repo, dirFS(dir))
	problems = append(problems, more...)
	sortProblems(problems)
	return problems
}

// sortProblems orders problems by file and place, as they are read.
func sortProblems(ps spec.Problems) {
	slices.SortStableFunc(ps, func(a, b spec.Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// withTerraformProblems adds what terraform validate finds in the stacks,
// where terraform is on PATH.
func withTerraformProblems(ctx context.Context, dir string, repo *spec.Repo, problems spec.Problems) (spec.Problems, error) {
	if problems.Errors() > 0 || len(repo.Stacks) == 0 {
		return problems, nil // the stacks' files must load before terraform reads them
	}
	bin, err := stack.Binary()
	if err != nil || bin == "" {
		return problems, err
	}
	tmp, err := os.MkdirTemp("", "socle-validate-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	r := &stack.Runner{Dir: tmp, Terraform: bin}
	problems = append(problems, r.Validate(ctx, repo, dirFS(dir))...)
	sortProblems(problems)
	return problems, nil
}

// runtimeTypes are socle's runtime types, as far as a command that opens
// none needs them: to check and decode environments' runtime blocks, to
// render, to publish schemas.
func runtimeTypes() *runtime.Registry { return wiring.Runtimes(wiring.RuntimeOptions{}) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func isUsage(err error) bool {
	// cobra's own argument and flag errors.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires ", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
