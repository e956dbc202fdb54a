package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/store/sqlite"
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

Exit code 1 when the repository does not validate.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			repo, problems, err := loadDir(dir)
			if err != nil {
				return err
			}
			if problems.Errors() > 0 {
				if g.json() {
					g.printJSON(validation{Valid: false, Problems: problems, Summary: summarize(repo)})
				} else {
					for _, p := range problems {
						fmt.Fprintln(g.stderr, p)
					}
				}
				return withCode(ExitProblems, fmt.Errorf("%s does not validate (%d problems): nothing to plan", dir, problems.Errors()))
			}
			if env != "" && repo.Environment(env) == nil {
				return withCode(ExitUsage, fmt.Errorf("no environment %q in %s", env, filepath.Join(dir, "socle.yaml")))
			}
			applied, from, err := appliedState(cmd, data)
			if err != nil {
				return err
			}
			p := plan.Diff("", plan.Desired(repo, "", nil), applied)
			if env != "" {
				p = p.Only(env)
			}
			if g.json() {
				return g.printJSON(p)
			}
			fmt.Fprintf(g.stdout, "Planning %s against %s.\n\n", dir, from)
			return plan.Render(g.stdout, &p)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only this environment")
	cmd.Flags().StringVar(&data, "data", ".socle", "data directory holding the last-applied state")
	return cmd
}

// appliedState reads the last-applied units from a data directory, or
// returns none when the directory has no database yet.
func appliedState(cmd *cobra.Command, data string) ([]plan.Unit, string, error) {
	db := filepath.Join(data, server.DBFile)
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return nil, "an empty state (no " + db + ")", nil
	}
	st, err := sqlite.Open(cmd.Context(), db)
	if err != nil {
		return nil, "", err
	}
	defer st.Close()
	units, err := server.Applied(cmd.Context(), st)
	return units, "the state recorded in " + data, err
}
