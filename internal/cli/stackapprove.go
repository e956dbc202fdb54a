package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newStackApproveCmd approves a gated stack instance's plan through the
// API: unlike the other stack commands it needs the server, which keeps
// the approvals and applies the plan.
func newStackApproveCmd(g *globals) *cobra.Command {
	var env, plan, comment string
	cmd := &cobra.Command{
		Use:   "approve STACK --env ENV [--plan ID]",
		Short: "Approve a gated stack instance's plan, through the server (then it is applied, as planned)",
		Long: `Approve the plan of STACK's instance in ENV (an environment, or the zone of a
zone stack) that waits for its gates. An approval is of one plan: without
--plan, the instance's current plan, read from the server first; its changes
are shown before the approval, as socle stack plan shows them. When the
gates open (the environment's approvals, by others than the author of the
change; its windows; no freeze), socle applies that plan as planned; if the
state changed since, it refuses the plan, plans again, and the new plan needs
approvals of its own.

Production-like instances (any zone, or an environment whose deployRoles leave
developers out) are approved by approvers of the stack's owner team, the others
by its developers and above; admins approve any; a stack without an owner,
only admins. Talks to the server (--server, SOCLE_SERVER or socle login).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := g.remoteInstance(cmd.Context(), args[0], env)
			if err != nil {
				return err
			}
			c := g.client()
			d, err := c.Stack(cmd.Context(), args[0], env)
			if err != nil {
				return g.apiErr(err)
			}
			if plan == "" {
				if d.Plan == nil || d.Plan.PlanID == "" {
					return withCode(ExitUsage, fmt.Errorf("%s @ %s has no plan waiting to be applied", args[0], env))
				}
				plan = d.Plan.PlanID
			}
			// What is approved, as socle stack plan shows it; another plan
			// than the current one the server refuses, naming the current.
			if !g.json() && d.Plan != nil && d.Plan.PlanID == plan {
				fmt.Fprintf(g.stdout, "Plan %s of %s @ %s:\n", plan, d.Stack, d.Instance)
				res := serverResult(d)
				res.Unit = "" // the gate's words follow the approval
				res.render(g.stdout)
				fmt.Fprintln(g.stdout)
			}
			a, err := c.ApproveStack(cmd.Context(), args[0], env, plan, comment)
			if err != nil {
				return g.apiErr(err)
			}
			if g.json() {
				return g.printJSON(a)
			}
			fmt.Fprintf(g.stdout, "%s approved plan %s of %s @ %s.\n", a.User, a.Plan, a.Stack, a.Instance)
			d, err = c.Stack(cmd.Context(), args[0], env)
			if err == nil && d.Gate != nil && d.Gate.PlanID == a.Plan {
				fmt.Fprintln(g.stdout, d.Gate.Message+".")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment, or the zone, of the instance")
	cmd.Flags().StringVar(&plan, "plan", "", "the plan `ID` approved (default: the instance's current plan)")
	cmd.Flags().StringVar(&comment, "comment", "", "a comment kept with the approval and in the audit trail")
	return cmd
}
