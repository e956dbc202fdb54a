package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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
			fmt.Fprintln(tw, "APP\tENV\tREVISION\tSOURCE\tARTIFACT\tSINCE")
			for _, u := range st.Units {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.App, u.Env, abbrev(u.Revision, 7), abbrev(strings.TrimPrefix(u.Source, "sha256:"), 12),
					orDash(abbrev(strings.TrimPrefix(u.Artifact, "sha256:"), 12)), u.UpdatedAt.Local().Format(time.DateTime))
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// get calls the server's API and decodes the JSON answer, turning the API's
// error body into an error.
func (g *globals) get(cmd *cobra.Command, path string, out any) error {
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, strings.TrimRight(g.server, "/")+path, nil)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return withCode(ExitError, fmt.Errorf("socle server at %s: %w (is `socle up` running? set --server or SOCLE_SERVER)", g.server, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return withCode(ExitError, fmt.Errorf("%s: %s %s", path, resp.Status, e.Error.Message))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
