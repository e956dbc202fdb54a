package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
)

func newPauseCmd(g *globals) *cobra.Command {
	var env, message string
	var retryAfter time.Duration
	cmd := &cobra.Command{
		Use:   "pause [APP] --env ENV [--message TEXT] [--retry-after 10m]",
		Short: "Put APP in ENV, or every app of ENV, in maintenance mode: its proxy routes answer 503 with a page",
		Long: `Pause puts an app in an environment in maintenance mode, or, without APP, every
app of the environment. socle's proxy then answers the app's routes (every
port) itself with 503 Service Unavailable, a small HTML page with the message,
and Retry-After when --retry-after is given; nothing is restarted, the replicas
stay routed and health-checked, and "socle resume" serves them again at once.
Pausing again replaces the message.

A pause is audited (app.paused, env.paused), kept by the server, and outlives a
restart of socle or of its proxy process; "socle status" and the portal's app
page show it. Who may deploy the app in the environment may pause it; pausing a
whole environment is for admins. Only apps served by socle's proxy (the local
runtime) are paused.`,
		Example: `  socle pause web --env prod --message "Back at 14:00 UTC" --retry-after 30m
  socle pause --env staging
  socle resume web --env prod`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required"))
			}
			if retryAfter < 0 {
				return withCode(ExitUsage, fmt.Errorf("--retry-after %s is negative", retryAfter))
			}
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			req := api.PauseRequest{Message: message}
			if retryAfter > 0 {
				req.RetryAfter = retryAfter.String()
			}
			p, err := g.client().Pause(cmd.Context(), app, env, req)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(p)
			}
			fmt.Fprintf(g.stdout, "Paused %s: its routes answer 503 with the maintenance page", pauseSubject(p))
			if p.RetryAfterSeconds > 0 {
				fmt.Fprintf(g.stdout, " (Retry-After %s)", duration(time.Duration(p.RetryAfterSeconds)*time.Second))
			}
			fmt.Fprintln(g.stdout, ".")
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().StringVarP(&message, "message", "m", "", "the text of the maintenance page (default: a generic one)")
	cmd.Flags().DurationVar(&retryAfter, "retry-after", 0, "the Retry-After the page is answered with, such as 10m (default: none)")
	return cmd
}

func newResumeCmd(g *globals) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "resume [APP] --env ENV",
		Short: "Take APP in ENV, or ENV, out of maintenance mode: its routes serve again",
		Long: `Resume ends a pause made with "socle pause": the app's routes (or, without APP,
the environment's) are served by its replicas again at once. An app paused on
its own stays paused when its environment is resumed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required"))
			}
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			p, err := g.client().Resume(cmd.Context(), app, env)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(p)
			}
			fmt.Fprintf(g.stdout, "Resumed %s (paused by %s since %s).\n", pauseSubject(p), p.By, p.At.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	return cmd
}

// pauseSubject names what p pauses: "web in prod", "environment prod".
func pauseSubject(p api.Pause) string {
	if p.App == "" {
		return "environment " + p.Env
	}
	return p.App + " in " + p.Env
}
