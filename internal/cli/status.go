package cli

import (
	"fmt"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/server"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the revision in force, a failing one and why, and every unit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st server.Status
			if err := g.get(cmd, "/api/v1/status", &st); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(st)
			}
			w := g.stdout
			fmt.Fprintf(w, "Repository  %s\n", st.Repository)
			if st.Head != nil {
				fmt.Fprintf(w, "Head        %s %s (%s)\n", st.Head.Short(), st.Head.Subject(), st.Head.Author)
			}
			if st.LastGood != nil {
				fmt.Fprintf(w, "In force    %s %s\n", st.LastGood.Short(), st.LastGood.Subject())
			}
			if st.FetchError != "" {
				fmt.Fprintf(w, "Fetch       failing: %s\n", st.FetchError)
			}
			if f := st.Failing; f != nil {
				fmt.Fprintf(w, "\nRevision %s does not validate; %s stays in force:\n", f.Revision.Short(), inForce(st))
				for _, p := range f.Problems {
					fmt.Fprintf(w, "  %s\n", p)
				}
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tENV\tSTATUS\tVERSION\tREADY\tURL\tREASON")
			rt := map[[2]string]reconcile.UnitStatus{}
			for _, r := range st.Runtime {
				rt[[2]string{r.App, r.Env}] = r
			}
			_, port, _ := net.SplitHostPort(st.ProxyAddr)
			for _, u := range st.Units {
				r, ok := rt[[2]string{u.App, u.Env}]
				phase, version, ready, url := "Pending", abbrev(u.Revision, 7), "-", "-"
				if ok {
					phase = string(r.Phase)
					if r.Release != 0 {
						version = fmt.Sprintf("%s %s", abbrev(r.Revision, 7), abbrev(strings.TrimPrefix(r.Artifact, "sha256:"), 12))
						ready = fmt.Sprintf("%d/%d", r.Ready, r.Desired)
					}
					if r.URL != "" {
						url = r.URL + ":" + port
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.App, u.Env, phase, version, ready, url, r.Message)
			}
			known := map[[2]string]bool{}
			for _, u := range st.Units {
				known[[2]string{u.App, u.Env}] = true
			}
			for _, b := range st.Blocked { // new units a policy keeps out
				if !known[[2]string{b.App, b.Env}] {
					fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t%s\n", b.App, b.Env, reconcile.Blocked, b.Reason)
				}
			}
			for _, r := range st.Runtime { // units no longer in Git that still run
				if r.Phase == reconcile.Orphaned {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t-\t%s\n", r.App, r.Env, r.Phase, abbrev(r.Revision, 7), r.Ready, r.Desired, r.Message)
				}
			}
			return tw.Flush()
		},
	}
}

func inForce(st server.Status) string {
	if st.LastGood == nil {
		return "no revision"
	}
	return st.LastGood.Short()
}

func abbrev(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
