package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
)

func newStackLogsCmd(g *globals, data *string) *cobra.Command {
	var env, run string
	var list, follow bool
	cmd := &cobra.Command{
		Use:   "logs STACK --env ENV [--list | --run NAME] [-f] [DIR]",
		Short: "Print what terraform printed during a stack instance's last run (plan, apply or drift check)",
		Long: `Print the log of a run of a stack's instance (--env: an environment, or a zone
for a stack with one instance per zone): what terraform printed during a plan,
an apply or a drift check, each command announced by a "$ terraform" line and
the run's outcome last. The instance's secret inputs are redacted. socle keeps
the last 20 logs of each kind (plan, apply, drift) of each instance: --list
lists them, newest first, and --run NAME prints one (default: the newest).

The logs are read from the data directory (with --server: from the server).
-f, with --server, follows a run that goes on until it ends.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, err := g.stackRemote(cmd, args[1:])
			if err != nil {
				return err
			}
			if follow && !remote {
				return withCode(ExitUsage, fmt.Errorf("-f follows the runs of a server: give --server (or SOCLE_SERVER)"))
			}
			if list && run != "" {
				return withCode(ExitUsage, fmt.Errorf("--list and --run: give one or the other"))
			}
			if run == "" {
				run = "latest"
			}
			var logs api.StackLogList
			var open func(name string) (io.ReadCloser, error)
			if remote {
				if env, err = g.remoteInstance(cmd.Context(), args[0], env); err != nil {
					return err
				}
				c := g.client()
				if logs, err = c.StackLogs(cmd.Context(), args[0], env); err != nil {
					return g.apiErr(err)
				}
				open = func(name string) (io.ReadCloser, error) {
					rc, err := c.StackLog(cmd.Context(), args[0], env, name, follow)
					return rc, g.apiErr(err)
				}
			} else {
				s, inst, r, err := g.stackInstanceArgs(args, env, *data)
				if err != nil {
					return err
				}
				infos, err := r.Logs(s.Name, inst)
				if err != nil {
					return err
				}
				logs = api.StackLogList{Stack: s.Name, Instance: inst, Items: []api.StackRunLog{}}
				for _, l := range infos {
					logs.Items = append(logs.Items, api.StackRunLog{Name: l.Name, Kind: l.Kind, Started: l.Started, Size: l.Size})
				}
				open = func(name string) (io.ReadCloser, error) {
					rc, err := r.OpenLog(s.Name, inst, name)
					if errors.Is(err, fs.ErrNotExist) {
						return nil, withCode(ExitUsage, fmt.Errorf("%s @ %s has no log %s (socle stack logs --list lists them)", s.Name, inst, name))
					}
					return rc, err
				}
			}
			if list {
				if g.json() {
					return g.printJSON(logs)
				}
				t := newTable(g.stdout, "NAME", "KIND", "STARTED", "SIZE")
				for _, l := range logs.Items {
					started := ago(l.Started) + " ago"
					if l.Running {
						started += " (running)"
					}
					t.row(l.Name, l.Kind, started, fmt.Sprintf("%d B", l.Size))
				}
				return t.flush()
			}
			if run == "latest" {
				if len(logs.Items) == 0 {
					return withCode(ExitProblems, fmt.Errorf("%s @ %s has run no terraform yet: no log is kept", logs.Stack, logs.Instance))
				}
				if !remote {
					run = logs.Items[0].Name
				}
			}
			rc, err := open(run)
			if err != nil {
				return err
			}
			defer rc.Close()
			if g.json() {
				err = logJSONLines(rc, g)
			} else {
				// terraform's words, the repository's: escaped as all human
				// output; -o json has them exact.
				_, err = io.Copy(g.stdout, rc)
			}
			if cmd.Context().Err() != nil {
				return nil // interrupted while following
			}
			return err
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment, or the zone, of the instance")
	cmd.Flags().BoolVar(&list, "list", false, "list the logs kept, newest first")
	cmd.Flags().StringVar(&run, "run", "", "the `NAME` of the log to print, as --list lists it (default: the newest)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "with --server: follow a run that goes on until it ends")
	return cmd
}

// logJSONLines prints each line of a run log as a JSON object.
func logJSONLines(r io.Reader, g *globals) error {
	return eachJSONLine(r, g, func(line string) any { return map[string]string{"line": line} })
}
