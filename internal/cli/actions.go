package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
)

func newPromoteCmd(g *globals) *cobra.Command {
	var to, message string
	var em emergencyFlags
	cmd := &cobra.Command{
		Use:   "promote APP --to ENV",
		Short: "Pin in ENV the revision and artifact that run in the environment before it, as a commit",
		Long: `Promote writes a commit to releases/<ENV>.yaml that pins the same revision and
artifact digest that run in ENV's promotion.from environment (never a rebuild).
Every gate is checked first (the artifact healthy there for the soak time,
approvals, allowed windows, freezes) and every policy; a blocked promotion says
which gate or policy blocks and when it could open, and exits 1.

--emergency --reason "…" declares an emergency change (admins, and the roles
the environment's emergency.roles names): it passes the soak, the windows and
the freezes, still needs the artifact healthy in the environment before, the
approvals the environment's emergency rule asks for (by default its usual
ones) and the policies, and is recorded as an exception: in the pin, the audit
trail, a notification, the portal and the DORA figures.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return withCode(ExitUsage, fmt.Errorf("--to is required"))
			}
			req := api.ActionRequest{To: to, Message: message}
			var err error
			if req.Emergency, err = em.request(); err != nil {
				return err
			}
			res, err := g.client().PromoteRequest(cmd.Context(), args[0], req)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "Promoted %s to %s: %s (%s) from %s, commit %s.\nsocle deploys it now: socle status\n",
				res.App, res.Env, abbrev(res.Revision, 7), abbrev(strings.TrimPrefix(res.Artifact, "sha256:"), 12), res.From, abbrev(res.Commit.SHA, 7))
			printEmergency(g, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the environment to promote to")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why, for the commit message")
	em.add(cmd)
	return cmd
}

// emergencyFlags are --emergency and --reason, of the actions that pin.
type emergencyFlags struct {
	on     bool
	reason string
}

func (f *emergencyFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.on, "emergency", false, "declare an emergency change: pass the soak, the windows and the freezes, recorded as an exception (needs --reason)")
	cmd.Flags().StringVar(&f.reason, "reason", "", "why the emergency, such as an incident number (with --emergency)")
}

// request returns the declaration the flags make, nil for none.
func (f *emergencyFlags) request() (*api.Emergency, error) {
	switch {
	case f.on && strings.TrimSpace(f.reason) == "":
		return nil, withCode(ExitUsage, fmt.Errorf("--emergency needs --reason \"…\": say why, such as an incident number"))
	case !f.on && f.reason != "":
		return nil, withCode(ExitUsage, fmt.Errorf("--reason goes with --emergency; say why a usual change is made with --message"))
	case !f.on:
		return nil, nil
	}
	return &api.Emergency{Reason: f.reason}, nil
}

// printEmergency says that an action was an emergency change and which
// gates it passed.
func printEmergency(g *globals, res api.ActionResult) {
	if res.Emergency == "" {
		return
	}
	fmt.Fprintf(g.stdout, "This was an EMERGENCY change (%s), recorded for review in the audit trail and notified.\n", res.Emergency)
	for _, b := range res.Passed {
		fmt.Fprintf(g.stdout, "  passed %s: %s\n", b.Gate, b.Reason)
	}
}

func newApproveCmd(g *globals) *cobra.Command {
	var env, comment string
	cmd := &cobra.Command{
		Use:   "approve APP --env ENV",
		Short: "Approve the artifact a promotion to ENV would pin (approvers of the app's team, and admins)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required"))
			}
			a, err := g.client().Approve(cmd.Context(), args[0], env, comment)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(a)
			}
			fmt.Fprintf(g.stdout, "%s approved %s (%s) for %s.\n", a.User, abbrev(a.Revision, 7), abbrev(strings.TrimPrefix(a.Artifact, "sha256:"), 12), a.Env)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment the promotion goes to")
	cmd.Flags().StringVar(&comment, "comment", "", "a comment kept with the approval")
	return cmd
}

func newRollbackCmd(g *globals) *cobra.Command {
	var env, message string
	var to int64
	var em emergencyFlags
	cmd := &cobra.Command{
		Use:   "rollback APP --env ENV [--to RELEASE]",
		Short: "Pin the previous (or the given) release of APP in ENV, as a commit; deployed with the app's strategy",
		Long: `Rollback commits to releases/<ENV>.yaml a pin of an earlier release that
succeeded. A rollback passes the soak and the approvals (it is no new change)
but not the windows and the freezes; outside them, --emergency --reason "…"
declares it an emergency change (see socle promote --help).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required"))
			}
			req := api.ActionRequest{Release: to, Message: message}
			var err error
			if req.Emergency, err = em.request(); err != nil {
				return err
			}
			res, err := g.client().RollbackRequest(cmd.Context(), args[0], env, req)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "Rolling %s in %s back to release %d: %s (%s), commit %s.\n", res.App, res.Env, res.Release,
				abbrev(res.Revision, 7), abbrev(strings.TrimPrefix(res.Artifact, "sha256:"), 12), abbrev(res.Commit.SHA, 7))
			printEmergency(g, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().Int64Var(&to, "to", 0, "the release to restore (default: the one before what runs)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why, for the commit message")
	em.add(cmd)
	return cmd
}

func newReleasesCmd(g *globals) *cobra.Command {
	var env string
	var limit int
	cmd := &cobra.Command{
		Use:   "releases APP --env ENV",
		Short: "List an app's releases in an environment: revision, artifact, who, when, how long, outcome, notes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return withCode(ExitUsage, fmt.Errorf("--env is required"))
			}
			var out api.Page[api.Release]
			if err := g.get(cmd, fmt.Sprintf("/api/v1/apps/%s/envs/%s/releases?limit=%d", url.PathEscape(args[0]), url.PathEscape(env), limit), &out); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(out.Items)
			}
			return writeReleases(g.stdout, out.Items, time.Local)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many, newest first")
	return cmd
}

// writeReleases writes releases as a table, then the notes of each (the
// commits it brings), which would not fit a row; times are in loc.
func writeReleases(w io.Writer, rels []api.Release, loc *time.Location) error {
	t := newTable(w, "ID", "STATUS", "REVISION", "ARTIFACT", "TRIGGER", "STRATEGY", "AUTHOR", "STARTED", "TOOK", "REASON")
	type notes struct {
		Commits []struct{ SHA, Author, Subject string }
	}
	withNotes := map[int64]notes{}
	var order []int64
	for _, r := range rels {
		took := "-"
		if !r.FinishedAt.IsZero() {
			took = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		t.row(strconv.FormatInt(r.ID, 10), r.Status, abbrev(r.Revision, 7), abbrev(strings.TrimPrefix(r.Artifact, "sha256:"), 12),
			r.Trigger, r.Strategy, cmp.Or(r.Author, "-"), r.StartedAt.In(loc).Format(time.DateTime), took, r.Reason)
		var n notes
		if json.Unmarshal(r.Notes, &n) == nil && len(n.Commits) > 0 {
			withNotes[r.ID] = n
			order = append(order, r.ID)
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, id := range order {
		n := withNotes[id]
		fmt.Fprintf(w, "\nRelease %d brings %d commit%s:\n", id, len(n.Commits), plural(len(n.Commits)))
		nt := newTable(w)
		for _, c := range n.Commits {
			nt.row("  "+abbrev(c.SHA, 7), c.Subject, c.Author)
		}
		if err := nt.flush(); err != nil {
			return err
		}
	}
	return nil
}

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The tamper-evident record of every change"}
	var data string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit chain; name the first record changed, inserted or removed",
		Long: `Verify recomputes the hash chain of the audit trail, through the server, or
directly on a data directory with --data. Exit code 1 when the chain is broken.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res audit.VerifyResult
			if data != "" {
				st, err := openData(cmd.Context(), data)
				if err != nil {
					return err
				}
				defer st.Close()
				if res, err = audit.Verify(store.AuditTrail(cmd.Context(), st.Store, 0)); err != nil {
					return err
				}
			} else if err := g.get(cmd, "/api/v1/audit/verify", &res); err != nil {
				return err
			}
			if g.json() {
				g.printJSON(res)
			} else if res.OK() {
				fmt.Fprintf(g.stdout, "The audit trail verifies: %d records, the last #%d %s.\n", res.Verified, res.LastSeq, abbrev(res.LastHash, 16))
			} else {
				fmt.Fprintf(g.stdout, "The audit trail does NOT verify: record %d was %s.\n%s\n%d records verified before it.\n", res.Problem.Seq, res.Problem.Kind, res.Problem.Message, res.Verified)
			}
			if !res.OK() {
				return withCode(ExitProblems, errSilent)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&data, "data", "", "verify this data directory's store directly, without a server")
	cmd.AddCommand(verify)
	return cmd
}

func newDORACmd(g *globals) *cobra.Command {
	var app, team, env string
	var period time.Duration
	cmd := &cobra.Command{
		Use:   "dora",
		Short: "Deployment frequency, lead time, change failure rate and time to restore, from socle's own records",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"app": {app}, "team": {team}, "env": {env}, "period": {period.String()}}
			var f store.DORAFigures
			if err := g.get(cmd, "/api/v1/dora?"+q.Encode(), &f); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(f)
			}
			w := g.stdout
			scope := strings.TrimSpace(strings.Join([]string{app, team, env}, " "))
			if scope == "" {
				scope = "every app and environment"
			}
			fmt.Fprintf(w, "DORA for %s, %s to %s\n", scope, f.Since.Local().Format(time.DateOnly), f.Until.Local().Format(time.DateOnly))
			fmt.Fprintf(w, "  deployment frequency   %d deployments, %.2f per day\n", f.Deployments, f.DeploymentsPerDay)
			fmt.Fprintf(w, "  lead time for changes  median %s, mean %s, max %s (%d changes)\n", f.LeadTime.Median.Round(time.Second), f.LeadTime.Mean.Round(time.Second), f.LeadTime.Max.Round(time.Second), f.LeadTime.N)
			fmt.Fprintf(w, "  change failure rate    %.1f%% (%d of %d changes)\n", 100*f.ChangeFailureRate, f.Failures, f.Changes)
			fmt.Fprintf(w, "  time to restore        median %s, max %s (%d restored, %d not yet)\n", f.TimeToRestore.Median.Round(time.Second), f.TimeToRestore.Max.Round(time.Second), f.TimeToRestore.N, f.Unrestored)
			fmt.Fprintf(w, "  emergency changes      %d (counted above like any release; the audit trail lists them as promote.emergency, rollback.emergency, deploy.emergency)\n", f.Emergencies)
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "only this app")
	cmd.Flags().StringVar(&team, "team", "", "only this team's apps")
	cmd.Flags().StringVar(&env, "env", "", "only this environment (DORA usually looks at production)")
	cmd.Flags().DurationVar(&period, "period", 30*24*time.Hour, "how far back")
	return cmd
}
