package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
)

// newResourceCmd shows the resources socle provisions, through the
// server's API.
func newResourceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resource",
		Short: "Show the resources socle provisions for workloads (databases, caches): provisioner, apps, outputs, state",
		Long: `Show the resources socle provisions for what workloads ask for under
resources: (a PostgreSQL database, a redis), through the server: each one's
provisioner and driver, the apps that use it, its outputs (secret ones shown
as (secret)) and its state; and delete one removed from Git that socle
keeps. Talks to the server (--server, SOCLE_SERVER or socle login).`,
	}
	cmd.AddCommand(newResourceListCmd(g), newResourceGetCmd(g), newResourceDeleteCmd(g))
	return cmd
}

func newResourceListCmd(g *globals) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "list [--env ENV]",
		Short: "List the resources socle provisions, with their provisioner, apps and state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.client().Resources(cmd.Context(), env, "")
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(l)
			}
			if l.NotProvisioned != "" {
				fmt.Fprintln(g.stdout, l.NotProvisioned+".")
				return nil
			}
			if len(l.Items) == 0 {
				fmt.Fprintln(g.stdout, "No resource is provisioned.")
				return nil
			}
			t := newTable(g.stdout, "ENV", "NAME", "TYPE", "PROVISIONER", "APPS", "STATE")
			for _, r := range l.Items {
				t.row(r.Env, r.Name, r.Type, r.Provisioner+" ("+r.Driver+")", strings.Join(r.Apps, ", "), resourceState(r))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only the resources of this environment")
	return cmd
}

func newResourceGetCmd(g *globals) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "get NAME --env ENV",
		Short: "Show a resource: its provisioner, apps, outputs (secret ones redacted) and state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required: the environment of the resource"))
			}
			r, err := g.client().Resource(cmd.Context(), env, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(r)
			}
			fmt.Fprintf(g.stdout, "%s @ %s: %s, provisioned by %s (%s)\n", r.Name, r.Env, r.Type, r.Provisioner, r.Driver)
			apps := strings.Join(r.Apps, ", ")
			if apps == "" {
				apps = "none (removed from Git)"
			}
			fmt.Fprintf(g.stdout, "Apps:   %s\nState:  %s\n", apps, resourceState(r))
			if len(r.Outputs) == 0 {
				fmt.Fprintln(g.stdout, "No output yet: it was never provisioned.")
				return nil
			}
			t := newTable(g.stdout, "OUTPUT", "VALUE")
			for _, o := range r.Outputs {
				t.row(o.Name, o.Value)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment of the resource")
	return cmd
}

func newResourceDeleteCmd(g *globals) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "delete NAME --env ENV",
		Short: "Delete a resource removed from Git that socle keeps, with its data (admins only)",
		Long: `Delete a resource that no workload in Git declares any more but that socle
keeps: a data-bearing one (a database) removed from Git in production is
retained until an admin deletes it with this command. Its driver
deprovisions it (drops the database and its role, or stops and removes the
redis server): its data is gone. A resource still declared in Git is
refused: remove it from the workloads first. The deletion is recorded in
the audit trail. A driver that fails keeps the resource: run the command
again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required: the environment of the resource"))
			}
			r, err := g.client().DeleteResource(cmd.Context(), env, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(r)
			}
			fmt.Fprintf(g.stdout, "Deleted %s @ %s: %s, provisioned by %s (%s), and its data.\n", r.Name, r.Env, r.Type, r.Provisioner, r.Driver)
			if len(r.FormerApps) > 0 {
				fmt.Fprintf(g.stdout, "It was used by %s.\n", strings.Join(r.FormerApps, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment of the resource")
	return cmd
}

// resourceState is a resource's phase, with its message when it is not
// Synced.
func resourceState(r api.Resource) string {
	if r.Unit == nil {
		return "not reported yet"
	}
	if r.Unit.Message == "" || r.Unit.Phase == "Synced" {
		return r.Unit.Phase
	}
	return r.Unit.Phase + ": " + r.Unit.Message
}
