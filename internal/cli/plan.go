package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/sopsfile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/wiring"
)

func newPlanCmd(g *globals) *cobra.Command {
	var env, data string
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what a platform repository would change, like terraform plan",
		Long: `Plan validates a platform repository (default: the current directory), resolves
every (app, environment) unit and compares it with the state socle last applied,
read from the data directory (--data, default ./.socle) when it has one, or with
nothing at all otherwise. Nothing is changed.

  + create   ~ update (field: old → new)   - delete

The resources the units use (Score resources: a database, a redis) are listed
after them, per environment, with the provisioner and driver that serve them:
+ provisioned, ~ provisioned again (its provisioner, class or params change),
- deprovisioned, or retained when it holds data in a production environment.

Every change is checked by the repository's policies and socle's built-in
guardrails: a denied change is marked ✗, a warning !. The stacks' resource
changes are judged by the policies whose target is stacks, a denied instance
marked ✗. Exit code 1 when the repository does not validate, a stack instance
does not plan, or a change or a stack instance is denied.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			repo, err := g.loadValid(dir, "nothing to plan")
			if err != nil {
				return err
			}
			if env != "" && repo.Environment(env) == nil {
				return withCode(ExitUsage, fmt.Errorf("no environment %q in %s", env, filepath.Join(dir, "socle.yaml")))
			}
			// One compiled set and one time judge the apps and the stacks.
			policies, problems := policy.Compile(repo, dirFS(dir))
			now := time.Now()
			var out planOutput
			err = withState(cmd, data, func(st store.Store, from string) error {
				var applied []plan.Unit
				if st != nil {
					if applied, err = pipeline.Applied(cmd.Context(), st); err != nil {
						return err
					}
				}
				out.from = from
				desired := plan.Desired(repo, "", nil)
				// The secrets' values as the server gives them, with the
				// data directory's age identities: without them every
				// secret would read as removed. What cannot be decrypted
				// is said, and planned without its values.
				var kr sopsfile.Keyring
				if err := kr.LoadDir(filepath.Join(data, server.AgeDir)); err != nil {
					fmt.Fprintln(g.stderr, "socle: reading age identities:", err)
				}
				if id := os.Getenv("SOCLE_AGE_IDENTITIES"); id != "" {
					if err := kr.LoadFile(id); err != nil {
						fmt.Fprintln(g.stderr, "socle: reading age identities:", err)
					}
				}
				blocked := pipeline.WithSecrets(dirFS(dir), repo, desired, &kr)
				for _, u := range desired {
					if b, ok := blocked[u.Key()]; ok {
						fmt.Fprintf(g.stderr, "socle: %s @ %s: %s\n", u.App, u.Env, b.Message)
					}
				}
				// Secrets never show, old or new.
				out.Plan = plan.RedactPlan(plan.Diff("", desired, applied), applied)
				// The state keeps the units, not the provisioners they were
				// applied with: both sides are served by this repository's.
				out.Plan.Resources = plan.DiffResources(plan.ResourcesOf(repo, applied), plan.ResourcesOf(repo, desired))
				if env != "" {
					out.Plan = out.Plan.Only(env)
				}
				out.Decisions = pipeline.Judge(cmd.Context(), policies, &out.Plan, applied, st, now)
				for _, p := range problems { // such a policy denies what it matches
					fmt.Fprintln(g.stderr, p)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if out.Stacks, err = planStacks(cmd.Context(), repo, dir, data, envStacks(repo, env)); err != nil {
				return err
			}
			out.Stacks.judge(repo, policies, policy.Context{Operation: policy.Plan, Now: now})
			out.count()
			if g.json() {
				err = g.printJSON(out)
			} else {
				fmt.Fprintf(g.stdout, "Planning %s against %s.\n\n", dir, out.from)
				err = out.render(g.stdout)
				if err == nil {
					if hint := unpinnedHint(repo, env, &out.Plan); hint != "" {
						fmt.Fprintln(g.stdout, hint)
					}
					if out.Stacks != nil {
						out.Stacks.render(g.stdout)
					}
				}
			}
			if n := out.Stacks.failed(); err == nil && n > 0 {
				err = withCode(ExitProblems, fmt.Errorf("%d stack instance%s did not plan", n, plural(n)))
			}
			if err == nil && out.Policy.Denied+out.Policy.DeniedStacks > 0 {
				var what []string
				if n := out.Policy.Denied; n > 0 {
					what = append(what, fmt.Sprintf("%d change%s", n, plural(n)))
				}
				if n := out.Policy.DeniedStacks; n > 0 {
					what = append(what, fmt.Sprintf("%d stack instance%s", n, plural(n)))
				}
				err = withCode(ExitProblems, fmt.Errorf("%s denied by policy", strings.Join(what, " and ")))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only this environment")
	cmd.Flags().StringVar(&data, "data", ".socle", "data directory holding the last-applied state")
	return cmd
}

// loadValid loads the repository in dir for a command that plans or reads
// it; one that does not validate is shown as socle validate shows it, and
// is an error that says what then (next).
func (g *globals) loadValid(dir, next string) (*spec.Repo, error) {
	repo, problems, err := loadDir(dir)
	if err != nil {
		return nil, err
	}
	if problems.Errors() > 0 {
		if g.json() {
			g.printJSON(validation{Valid: false, Problems: problems, Summary: summarize(repo)})
		} else {
			for _, p := range problems {
				fmt.Fprintln(g.stderr, p)
			}
		}
		return nil, withCode(ExitProblems, fmt.Errorf("%s does not validate (%d problems): %s", dir, problems.Errors(), next))
	}
	return repo, nil
}

// planOutput is a plan with the policies' verdicts on each change.
type planOutput struct {
	plan.Plan
	Decisions []policy.Decision `json:"decisions"`
	// Stacks is the plan of the repository's stacks; absent without any.
	Stacks *stackPlans `json:"stacks,omitempty"`
	Policy struct {
		Denied   int `json:"denied"`
		Warnings int `json:"warnings"`
		// DeniedStacks counts the stack instances whose plan a policy
		// denies, StackWarnings the warnings on their resource changes.
		DeniedStacks  int `json:"deniedStacks,omitempty"`
		StackWarnings int `json:"stackWarnings,omitempty"`
	} `json:"policy"`
	from string
}

// count tallies the denied changes (creates and updates: what would be
// blocked) and the warnings.
func (o *planOutput) count() {
	o.Policy.Denied = len(pipeline.Denied(o.Decisions))
	for _, d := range o.Decisions {
		o.Policy.Warnings += len(d.Verdicts.Warnings())
	}
	o.Policy.DeniedStacks, o.Policy.StackWarnings = o.Stacks.denied()
}

func (o *planOutput) render(w io.Writer) error {
	byUnit := map[plan.Key]policy.Verdicts{}
	for _, d := range o.Decisions {
		byUnit[plan.Key{App: d.App, Env: d.Env}] = d.Verdicts
	}
	err := plan.RenderWith(w, &o.Plan, func(c *plan.Change) []string {
		var notes []string
		for _, v := range byUnit[plan.Key{App: c.App, Env: c.Env}] {
			switch {
			case v.Blocks():
				notes = append(notes, fmt.Sprintf("✗ deny  %s: %s", v.Policy, v.Message))
			case v.Warns():
				notes = append(notes, fmt.Sprintf("! warn  %s: %s", v.Policy, v.Message))
			}
		}
		return notes
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "Policies: %d change%s denied, %d warning%s.\n", o.Policy.Denied, plural(o.Policy.Denied), o.Policy.Warnings, plural(o.Policy.Warnings))
	return err
}

// unpinnedHint explains an empty plan of a manual environment: it runs only
// what releases/<env>.yaml pins, so before the first promotion there is
// nothing to plan, which a newcomer would otherwise read as a broken plan.
func unpinnedHint(repo *spec.Repo, env string, p *plan.Plan) string {
	e := repo.Environment(env)
	if e == nil || e.Sync != spec.SyncManual || len(p.Changes) > 0 {
		return ""
	}
	if rel := repo.Releases[env]; rel != nil && len(rel.Apps) > 0 {
		return ""
	}
	return fmt.Sprintf("%s runs only what releases/%s.yaml pins, and nothing is pinned yet: a release enters it with socle promote APP --to %s.", env, env, env)
}

// withState opens the data directory's store, if it has one, for fn; fn
// gets nil and a description of the empty state otherwise.
func withState(cmd *cobra.Command, data string, fn func(st store.Store, from string) error) error {
	db := filepath.Join(data, wiring.DBFile)
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return fn(nil, "an empty state (no "+db+")")
	}
	st, _, err := wiring.OpenData(cmd.Context(), data, "", clock.System)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st.Store, "the state recorded in "+data)
}
