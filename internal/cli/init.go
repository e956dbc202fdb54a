package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/examples"
	"github.com/socle-dev/socle/internal/source"
)

func newInitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init DIR",
		Short: "Create a new platform repository from socle's example",
		Long: `Init creates DIR as a git repository holding a complete platform: landing zones,
dev → preprod → prod and a sandbox, three teams, three apps with their Go sources,
budgets, a policy file and a golden-path template. Edit it, then run
socle validate DIR and socle up --repo DIR.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return withCode(ExitUsage, fmt.Errorf("%s exists and is not empty", dir))
			}
			tmp, err := os.MkdirTemp("", "socle-init-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			if err := examples.WritePlatform(tmp); err != nil {
				return err
			}
			rev, err := source.Init(cmd.Context(), tmp, dir, envOr("GIT_AUTHOR_NAME", "socle"), envOr("GIT_AUTHOR_EMAIL", "socle@localhost"), "New platform repository from socle init")
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(map[string]string{"dir": dir, "revision": rev.SHA})
			}
			fmt.Fprintf(g.stdout, "Created platform repository %s (commit %s).\nNext: socle validate %s && socle up --repo %s\n", dir, rev.Short(), dir, dir)
			return nil
		},
	}
}
