package cli

import (
	"cmp"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/socle-dev/socle/internal/api"
)

func newTopCmd(g *globals) *cobra.Command {
	var env string
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Requests per second, error rate and p95 latency of every app and environment, live",
		Long: `Top shows, for every app and environment the proxy serves, what the proxy
counted over the last minute: requests per second, the share of errors (answers
of 5xx, and requests the app did not answer at all), the 95th percentile of the
latency, and the release that runs. In a terminal it refreshes every --every until
interrupted; otherwise (or with -o json) it prints once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/signals"
			if env != "" {
				path += "?" + url.Values{"env": {env}}.Encode()
			}
			f, isFile := g.raw.(*os.File)
			live := !g.json() && isFile && term.IsTerminal(int(f.Fd()))
			for {
				var list api.SignalList
				if err := g.get(cmd, path, &list); err != nil {
					return err
				}
				if g.json() {
					return g.printJSON(list)
				}
				if live {
					io.WriteString(g.raw, "\x1b[H\x1b[2J") // home, clear
					fmt.Fprintf(g.stdout, "socle top  %s  (every %s, ^C to stop)\n\n", time.Now().Format(time.TimeOnly), every)
				}
				writeTop(g.stdout, list)
				if !live {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only this environment")
	cmd.Flags().DurationVar(&every, "every", 2*time.Second, "how often to refresh, in a terminal")
	return cmd
}

// writeTop writes the last minute's signals as a table.
func writeTop(w io.Writer, list api.SignalList) {
	t := newTable(w, "APP", "ENV", "RELEASE", "REQ/S", "ERRORS", "P95", "REQUESTS")
	for _, u := range list.Items {
		p95 := "-"
		if u.Now.P95Ms > 0 {
			p95 = strconv.FormatFloat(u.Now.P95Ms, 'f', -1, 64) + "ms"
		}
		t.row(u.App, u.Env, cmp.Or(u.Release, "-"), strconv.FormatFloat(u.Now.Rate, 'f', 1, 64),
			strconv.FormatFloat(100*u.Now.ErrorRatio, 'f', 1, 64)+"%", p95, strconv.FormatUint(u.Now.Requests, 10))
	}
	t.flush()
	if len(list.Items) == 0 {
		fmt.Fprintln(w, "no app is served by the proxy yet")
	}
}
