package cli

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/spec"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"}
	var user, expires, description, data string
	create := &cobra.Command{
		Use:   "create --user USER [--expires 30d]",
		Short: "Create a token for a user (admins only); it is shown once",
		Long: `Create a bearer token for USER, a member of a team in teams.yaml. Through the
server this needs an admin's token. With --data DIR it writes straight into a
data directory's store, without a server and without a token: how the first
admin token is made (the machine's file permissions are the guard).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if user == "" {
				return withCode(ExitUsage, fmt.Errorf("--user is required"))
			}
			var created api.CreatedToken
			if data != "" {
				var at time.Time // never
				if expires != "" {
					v, err := spec.ParseDuration(expires)
					if err != nil || v <= 0 {
						return withCode(ExitUsage, fmt.Errorf("--expires %q is not a duration such as 30d or 12h", expires))
					}
					at = time.Now().Add(time.Duration(v))
				}
				st, err := openData(cmd.Context(), data)
				if err != nil {
					return err
				}
				defer st.Close()
				by := "local:" + envOr("USER", "unknown")
				secret, t, err := auth.Create(cmd.Context(), st.Store, user, description, by, at)
				if err != nil {
					return withCode(ExitError, err)
				}
				created = api.CreatedToken{Token: api.Token{ID: t.ID, User: t.User, Description: t.Description, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt}, Secret: secret}
			} else {
				var err error
				if created, err = g.client().CreateToken(cmd.Context(), api.NewToken{User: user, Expires: expires, Description: description}); err != nil {
					return g.apiErr(err)
				}
			}
			if g.json() {
				return g.printJSON(created)
			}
			fmt.Fprintf(g.stdout, "%s\n", created.Secret)
			exp := "never expires"
			if !created.ExpiresAt.IsZero() {
				exp = "expires " + created.ExpiresAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(g.stderr, "Token %s for %s (%s). It is shown once: keep it in a secret store, or run `socle login` with it.\n", created.ID, created.User, exp)
			return nil
		},
	}
	create.Flags().StringVar(&user, "user", "", "whose token it is")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30d or 12h (default: never)")
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	create.Flags().StringVar(&data, "data", "", "write into this data directory's store directly, without a server")

	var listUser string
	list := &cobra.Command{
		Use:   "list",
		Short: "List your tokens (an admin: everyone's, or --user's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := g.client().Tokens(cmd.Context(), listUser)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(ts)
			}
			tw := newTable(g.stdout, "ID", "USER", "DESCRIPTION", "CREATED", "BY", "EXPIRES", "LAST USED", "REVOKED")
			for _, t := range ts {
				tw.row(t.ID, t.User, t.Description, when(t.CreatedAt), t.CreatedBy, when(t.ExpiresAt), when(t.LastUsedAt), when(t.RevokedAt))
			}
			return tw.flush()
		},
	}
	list.Flags().StringVar(&listUser, "user", "", "only this user's tokens (admins)")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.client().RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(t)
			}
			fmt.Fprintf(g.stdout, "Revoked token %s of %s.\n", t.ID, t.User)
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func newLoginCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login [--server URL] [--token TOKEN]",
		Short: "Check a token against a server and keep both in your config file",
		Long: `Login checks the token (from --token, SOCLE_TOKEN, or read from standard input)
against the server and saves the server and the token in the config file
(` + "`$XDG_CONFIG_HOME/socle/config.json`" + `, mode 0600; SOCLE_CONFIG overrides the path).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("token") && os.Getenv("SOCLE_TOKEN") == "" {
				fmt.Fprint(g.stderr, "Token: ")
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return withCode(ExitUsage, fmt.Errorf("no token given: --token, SOCLE_TOKEN or standard input"))
				}
				g.token = strings.TrimSpace(line)
			}
			if _, err := url.Parse(g.server); err != nil {
				return withCode(ExitUsage, err)
			}
			me, err := client.New(g.server, g.token).Me(cmd.Context())
			if err != nil {
				return g.apiErr(err)
			}
			p, err := saveConfig(config{Server: g.server, Token: g.token})
			if err != nil {
				return withCode(ExitError, err)
			}
			if g.json() {
				return g.printJSON(me)
			}
			var roles []string
			for _, m := range me.Teams {
				roles = append(roles, m.Role+" in "+m.Team)
			}
			if len(roles) == 0 {
				roles = []string{"no team: ask an admin to add you to teams.yaml"}
			}
			fmt.Fprintf(g.stdout, "Logged in to %s as %s (%s). Saved in %s.\n", g.server, me.User, strings.Join(roles, ", "), p)
			return nil
		},
	}
	return cmd
}

func newDeployCmd(g *globals) *cobra.Command {
	var env, revision, message string
	var em emergencyFlags
	cmd := &cobra.Command{
		Use:   "deploy APP --env ENV [--revision SHA]",
		Short: "Deploy a revision of an app: sync now where ENV follows Git, pin it elsewhere",
		Long: `Deploy runs a revision of APP in ENV. In an environment that follows Git
(sync: auto) it syncs now: the app's unit runs the last revision that changed
it, and deploy says whether that changes anything. In a manual environment
without promotion gates it commits a pin of the revision (default: the one in
force) to releases/<ENV>.yaml; the artifact is built once. An environment with
promotion gates takes releases by promotion only (socle promote).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required"))
			}
			req := api.ActionRequest{Revision: revision, Message: message}
			var err error
			if req.Emergency, err = em.request(); err != nil {
				return err
			}
			res, err := g.client().DeployRequest(cmd.Context(), args[0], env, req)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(res)
			}
			fmt.Fprint(g.stdout, deployWords(res))
			printEmergency(g, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment")
	cmd.Flags().StringVar(&revision, "revision", "", "the revision (default: the newest valid one)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why, for the commit and the audit trail")
	em.add(cmd)
	return cmd
}

// deployWords says what a deploy really does: a unit runs the last
// revision that changed it, so syncing to a newer head may change nothing.
func deployWords(res api.ActionResult) string {
	rev := abbrev(res.Revision, 7)
	switch res.Outcome {
	case api.OutcomeUnchanged:
		s := fmt.Sprintf("Nothing changes: %s in %s already runs %s, the last revision that changed it", res.App, res.Env, rev)
		if res.Head != "" && res.Head != res.Revision {
			s += fmt.Sprintf(" (the newest, %s, does not touch it)", abbrev(res.Head, 7))
		}
		return s + fmt.Sprintf(".\nsocle fetches the repository now: a newer commit that changes %s deploys by itself.\n", res.App)
	case api.OutcomeHeld:
		running := abbrev(res.Running, 7)
		if running == "" {
			running = "nothing"
		}
		return fmt.Sprintf("%s in %s keeps running %s: %s.\n", res.App, res.Env, running, res.Reason)
	case api.OutcomeSyncing:
		if res.Running == "" {
			return fmt.Sprintf("Deploying %s in %s at %s, the last revision that changed it.\nsocle status shows the rollout.\n", res.App, res.Env, rev)
		}
		return fmt.Sprintf("Syncing %s in %s from %s to %s, the last revision that changed it.\nsocle status shows the rollout.\n", res.App, res.Env, abbrev(res.Running, 7), rev)
	}
	if res.Commit == nil {
		return fmt.Sprintf("Syncing %s in %s to %s.\nsocle status shows the rollout.\n", res.App, res.Env, rev)
	}
	return fmt.Sprintf("Deploying %s to %s: %s, commit %s.\nsocle status shows the rollout.\n", res.App, res.Env, rev, abbrev(res.Commit.SHA, 7))
}
