package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// stackRemote reports whether a stack command reads the server rather
// than DIR and the data directory: --server or SOCLE_SERVER was given
// (the server of socle login alone does not switch: offline stays the
// default). DIR and --data then have no meaning, and are refused.
func (g *globals) stackRemote(cmd *cobra.Command, dirArgs []string) (bool, error) {
	if !cmd.Flags().Changed("server") && os.Getenv("SOCLE_SERVER") == "" {
		return false, nil
	}
	if len(dirArgs) > 0 || cmd.Flags().Changed("data") {
		return true, withCode(ExitUsage, fmt.Errorf("DIR and --data are read offline; with --server (or SOCLE_SERVER) the stacks are the server's: give one or the other"))
	}
	return true, nil
}

// remoteStackRows are the rows of socle stack list, from the server.
func (g *globals) remoteStackRows(ctx context.Context) ([]stackRow, error) {
	list, err := g.client().Stacks(ctx)
	if err != nil {
		return nil, g.apiErr(err)
	}
	rows := []stackRow{}
	for _, it := range list.Items {
		row := stackRow{Stack: it.Stack, Instance: it.Instance, Of: it.Of, Apply: spec.StackApplyAuto, DependsOn: it.DependsOn}
		if it.Gated {
			row.Apply = spec.StackApplyGated
		}
		if p := it.Plan; p != nil {
			row.Plan = &lastPlan{Status: stack.Status(p.Status), Reason: stack.Reason(p.Reason), Message: p.Message, Hash: p.Hash, PlanID: p.PlanID,
				Summary: stack.Summary(p.Summary), At: p.RecordedAt}
		}
		if a := it.Apply; a != nil {
			row.LastRun = &stack.Run{Stack: it.Stack, Instance: it.Instance, PlanID: a.PlanID, Hash: a.Hash, Status: stack.RunStatus(a.Status),
				Reason: stack.Reason(a.Reason), Message: a.Message, Holder: holderOf(a.Holder), Started: a.Started, Finished: a.Finished}
		}
		if it.Lock != nil {
			h := holderOf(*it.Lock)
			row.Holder = &h
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// needInstance refuses a call about one instance of the server's stacks
// without --env: the server's repository is not here to list them.
func needInstance(env string) error {
	if env == "" {
		return withCode(ExitUsage, errors.New("--env is required: the environment, or the zone, of the instance"))
	}
	return nil
}

// remoteInstance resolves --env to the instance of the server's stack
// name it names, as offline: an instance by its own name, or for a stack
// with one instance per zone, an environment names its zone's instance.
func (g *globals) remoteInstance(ctx context.Context, name, env string) (string, error) {
	if err := needInstance(env); err != nil {
		return "", err
	}
	c := g.client()
	list, err := c.Stacks(ctx)
	if err != nil {
		return "", g.apiErr(err)
	}
	var insts []string
	perZone := false
	for _, it := range list.Items {
		if it.Stack == name {
			insts = append(insts, it.Instance)
			perZone = perZone || it.Of == "zone"
		}
	}
	switch {
	case len(insts) == 0:
		var stacks []string
		for _, it := range list.Items {
			if !slices.Contains(stacks, it.Stack) {
				stacks = append(stacks, it.Stack)
			}
		}
		return "", withCode(ExitUsage, fmt.Errorf("the server has no stack %q (its stacks: %s)", name, cmp.Or(strings.Join(stacks, ", "), "none")))
	case slices.Contains(insts, env):
		return env, nil
	case perZone:
		p, err := c.Platform(ctx)
		if err != nil {
			return "", g.apiErr(err)
		}
		for _, e := range p.Environments {
			if e.Name == env && slices.Contains(insts, e.Zone) {
				return e.Zone, nil
			}
		}
	}
	return "", withCode(ExitUsage, fmt.Errorf("stack %s has no instance for %q: its instances are %s", name, env, strings.Join(insts, ", ")))
}

func holderOf(l api.StackLock) lease.Holder {
	return lease.Holder{PID: l.PID, Host: l.Host, Addr: l.Addr, Since: l.Since}
}

// remoteStackOutputs is socle stack outputs' answer from the server:
// the outputs of the last apply, redacted by the server as the data
// directory's reader redacts them.
func (g *globals) remoteStackOutputs(ctx context.Context, name, inst string) (stackOutputs, error) {
	inst, err := g.remoteInstance(ctx, name, inst)
	if err != nil {
		return stackOutputs{Stack: name}, err
	}
	out := stackOutputs{Stack: name, Instance: inst}
	d, err := g.client().Stack(ctx, name, inst)
	if err != nil {
		return out, g.apiErr(err)
	}
	// The outputs are those of the last apply that succeeded (an instance
	// without outputs has none to show, yet was applied).
	if d.Outputs != nil || slices.ContainsFunc(d.History, func(a api.StackApply) bool { return a.Status == string(stack.RunApplied) }) {
		out.Applied, out.Outputs = true, d.Outputs
		if out.Outputs == nil {
			out.Outputs = map[string]string{}
		}
		if d.Apply != nil {
			out.PlanID, out.At = d.Apply.PlanID, d.Apply.Finished
		}
	}
	return out, nil
}

// remoteStackUnlock is socle stack unlock through the server, which
// records the removal in its audit trail.
func (g *globals) remoteStackUnlock(ctx context.Context, name, inst string, force bool) (stackUnlock, error) {
	inst, err := g.remoteInstance(ctx, name, inst)
	if err != nil {
		return stackUnlock{}, err
	}
	u, err := g.client().UnlockStack(ctx, name, inst, force)
	var e *client.Error
	if errors.As(err, &e) && e.Status == http.StatusConflict && e.Details != nil {
		var l api.StackLock
		if b, jerr := json.Marshal(e.Details); jerr == nil && json.Unmarshal(b, &l) == nil && l.PID != 0 {
			return stackUnlock{}, liveHolder(name, inst, holderOf(l))
		}
	}
	if err != nil {
		return stackUnlock{}, g.apiErr(err)
	}
	out := stackUnlock{Stack: u.Stack, Instance: u.Instance, Held: u.Held, Audited: u.Held}
	if u.Holder != nil {
		h := holderOf(*u.Holder)
		out.Holder = &h
	}
	return out, nil
}

// remoteStackPlans are the server's last plans of name's instances
// (inst only, when given), as socle stack plan shows plans: the server
// plans and keeps them, nothing runs here.
func (g *globals) remoteStackPlans(ctx context.Context, name, inst string) (*stackPlans, error) {
	c := g.client()
	insts := []string{inst}
	if inst != "" {
		i, err := g.remoteInstance(ctx, name, inst)
		if err != nil {
			return nil, err
		}
		insts = []string{i}
	} else {
		list, err := c.Stacks(ctx)
		if err != nil {
			return nil, g.apiErr(err)
		}
		insts = nil
		for _, it := range list.Items {
			if it.Stack == name {
				insts = append(insts, it.Instance)
			}
		}
		if len(insts) == 0 {
			return nil, withCode(ExitUsage, fmt.Errorf("the server has no stack %q in its revision in force %s", name, short(list.Revision)))
		}
	}
	out := &stackPlans{Planned: true, Server: g.server}
	for _, i := range insts {
		d, err := c.Stack(ctx, name, i)
		if err != nil {
			return nil, g.apiErr(err)
		}
		out.Results = append(out.Results, serverResult(d))
	}
	return out, nil
}

// serverResult is the server's last plan of an instance as socle stack
// plan shows a plan.
func serverResult(d api.StackDetail) stackResult {
	res := stack.Result{Stack: d.Stack, Instance: d.Instance, Of: d.Of, Inputs: d.Inputs, MoreChanges: d.MoreChanges}
	for _, p := range d.Pending {
		res.Pending = append(res.Pending, stack.Pending(p))
	}
	p := d.Plan
	switch {
	case p != nil:
		res.Status, res.Reason, res.Message = stack.Status(p.Status), stack.Reason(p.Reason), p.Message
		res.PlanID, res.Hash, res.Summary = p.PlanID, p.Hash, stack.Summary(p.Summary)
	case len(d.Pending) > 0:
		res.Status = stack.StatusWaiting
	}
	// Else no plan is recorded (none yet, or the last one applied or
	// discarded): the status stays empty, and the instance's status says
	// where it stands.
	for _, c := range d.Changes {
		rc := stack.ResourceChange{Address: c.Address, Type: c.Type, Name: c.Name, Action: stack.Action(c.Action), CreateFirst: c.CreateFirst,
			Reason: c.Reason, MoreAttributes: c.MoreAttributes}
		for _, a := range c.Attributes {
			rc.Attributes = append(rc.Attributes, stack.AttributeChange(a))
		}
		res.Changes = append(res.Changes, rc)
	}
	for _, o := range d.OutputChanges {
		res.Outputs = append(res.Outputs, stack.OutputChange{Name: o.Name, Action: stack.Action(o.Action), Before: o.Before, After: o.After})
	}
	out := stackResult{Result: res}
	if p != nil {
		out.RecordedAt, out.Outdated = p.RecordedAt, p.Outdated
	}
	if u := d.Unit; u != nil {
		out.Unit = u.Message
		out.Denied = u.Phase == "Blocked" && u.Reason == "PolicyDenied"
	}
	return out
}
