package web

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/stack"
)

const fakeStackRev = "9a8b7c6d5e4f30219a8b7c6d5e4f30219a8b7c6d"

// fakeStacks are the instances the fake API answers, upstream first: hub
// in the connectivity zone (applied, a sensitive output, in sync); network
// in dev (planned and applying, held by a run), preprod (drifted, not
// healed) and prod (its replacement denied by a policy); edge in dev
// (waiting for network's output); vpn in prod (gated: its plan waits for
// 1 approval, not by ann who wrote the change), dns in prod (approved by
// sofia, outside the window) and firewall in preprod (approved, frozen).
func fakeStacks() []api.StackDetail {
	gated := func(name, env, plan, reason, msg string, g api.StackGate) api.StackDetail {
		g.PlanID = plan
		g.Message = msg
		return api.StackDetail{StackInstance: api.StackInstance{Stack: name, Instance: env, Of: "environment", Gated: true, Gate: &g,
			Unit: &api.StackUnit{Phase: "Blocked", Reason: reason, Message: msg, Since: t0.Add(-10 * time.Minute), Revision: fakeStackRev},
			Plan: &api.StackPlan{Status: "Planned", Reason: "Changes", PlanID: plan, Hash: "h-" + plan, Summary: api.StackSummary{Add: 1}, RecordedAt: t0.Add(-10 * time.Minute)}},
			Revision: fakeStackRev,
			Changes:  []api.StackChange{{Address: "terraform_data.tunnel", Type: "terraform_data", Name: "tunnel", Action: "create"}}}
	}
	hubRun := api.StackApply{PlanID: "p-hub-2", Hash: "h-hub-2", Status: "Applied", Reason: "Applied",
		Holder: api.StackLock{PID: 4242, Host: "socle-1"}, Started: t0.Add(-2 * time.Hour), Finished: t0.Add(-2*time.Hour + 40*time.Second)}
	hubOld := api.StackApply{PlanID: "p-hub-1", Hash: "h-hub-1", Status: "Failed", Reason: "ApplyFailed", Message: "terraform apply: exit status 1: Error: local-exec provisioner error",
		Holder: api.StackLock{PID: 4100, Host: "socle-1"}, Started: t0.Add(-26 * time.Hour), Finished: t0.Add(-26*time.Hour + 12*time.Second)}
	netApplied := api.StackApply{PlanID: "p-net-3", Status: "Applied", Reason: "Applied", Holder: api.StackLock{PID: 4242, Host: "socle-1"},
		Started: t0.Add(-90 * time.Minute), Finished: t0.Add(-89 * time.Minute)}
	subnet := `terraform_data.subnet["app"]`
	return []api.StackDetail{
		{StackInstance: api.StackInstance{Stack: "hub", Instance: "connectivity", Of: "zone",
			Unit:  &api.StackUnit{Phase: "Synced", Message: "applied plan p-hub-2 at 2026-11-24T07:30:40Z", Since: t0.Add(-2 * time.Hour), Revision: fakeStackRev},
			Plan:  &api.StackPlan{Status: "NoChanges", Reason: "UpToDate", Hash: "h-hub-2", RecordedAt: t0.Add(-time.Hour)},
			Apply: &hubRun},
			Revision: fakeStackRev,
			Inputs:   map[string]string{"cidr": `"10.0.0.0/16"`, "key": stack.Redacted},
			Outputs:  map[string]string{"hub_id": `"8c1e2f3a-hub"`, "key": stack.Redacted},
			Drift:    &api.StackDrift{Checked: t0.Add(-20 * time.Minute), Status: "InSync", Reason: "UpToDate", Summary: "InSync: nothing changed outside socle"},
			History:  []api.StackApply{hubRun, hubOld}},
		{StackInstance: api.StackInstance{Stack: "network", Instance: "dev", Of: "environment", DependsOn: []string{"hub"},
			Unit: &api.StackUnit{Phase: "Progressing", Reason: "Applying", Message: "applies 1 to add, 1 to change, 0 to replace, 0 to destroy", Since: t0.Add(-time.Minute), Revision: fakeStackRev},
			Plan: &api.StackPlan{Status: "Planned", Reason: "Changes", PlanID: "p-net-4", Hash: "h-net-4", Summary: api.StackSummary{Add: 1, Change: 1}, RecordedAt: t0.Add(-2 * time.Minute)},
			Lock: &api.StackLock{PID: 4242, Host: "socle-1", Addr: "10.1.2.3:7070", Since: t0.Add(-30 * time.Second)}},
			Revision: fakeStackRev,
			Inputs:   map[string]string{"env": `"dev"`, "hub": `"8c1e2f3a-hub"`},
			Changes: []api.StackChange{
				{Address: subnet, Type: "terraform_data", Name: "subnet", Action: "create", Attributes: []api.StackAttributeChange{{Path: "input.cidr", After: `"10.1.0.0/24"`}, {Path: "id", After: stack.Unknown}}},
				{Address: "terraform_data.vpn", Type: "terraform_data", Name: "vpn", Action: "update", MoreAttributes: 3, Attributes: []api.StackAttributeChange{
					{Path: "input.psk", Before: stack.Redacted, After: stack.Redacted}, {Path: "input.peer", Before: `"10.9.0.1"`, After: `"10.9.0.2"`}}},
			},
			OutputChanges: []api.StackOutputChange{{Name: "subnet_id", Action: "create", After: stack.Unknown}},
		},
		{StackInstance: api.StackInstance{Stack: "network", Instance: "preprod", Of: "environment", DependsOn: []string{"hub"},
			Unit: &api.StackUnit{Phase: "Degraded", Reason: "Drift", Message: `Drifted: 1 resource changed outside socle: ` + subnet + ` (reported, not corrected: the instance does not heal)`,
				Since: t0.Add(-15 * time.Minute), Revision: fakeStackRev},
			Plan:  &api.StackPlan{Status: "NoChanges", Reason: "UpToDate", Hash: "h-net-pp", RecordedAt: t0.Add(-90 * time.Minute)},
			Apply: &netApplied},
			Revision: fakeStackRev,
			Inputs:   map[string]string{"env": `"preprod"`, "hub": `"8c1e2f3a-hub"`},
			Outputs:  map[string]string{"subnet_id": `"sn-preprod"`},
			Drift: &api.StackDrift{Checked: t0.Add(-15 * time.Minute), Status: "Drifted", Reason: "ChangedOutside",
				Summary: "Drifted: 1 resource changed outside socle: " + subnet,
				Drifted: []api.StackChange{{Address: subnet, Type: "terraform_data", Name: "subnet", Action: "update",
					Attributes: []api.StackAttributeChange{{Path: "input.cidr", Before: `"10.2.0.0/24"`, After: `"10.2.9.0/24"`}}}}},
			History: []api.StackApply{netApplied}},
		{StackInstance: api.StackInstance{Stack: "network", Instance: "prod", Of: "environment", DependsOn: []string{"hub"},
			Unit: &api.StackUnit{Phase: "Blocked", Reason: "PolicyDenied", Since: t0.Add(-5 * time.Minute), Revision: fakeStackRev,
				Message: `plan p-net-9 (0 to add, 0 to change, 1 to replace, 0 to destroy) is denied: ` + subnet + `: no replace of a network in production (no-replace-in-prod)`},
			Plan: &api.StackPlan{Status: "Planned", Reason: "Changes", PlanID: "p-net-9", Hash: "h-net-9", Summary: api.StackSummary{Replace: 1}, RecordedAt: t0.Add(-5 * time.Minute)}},
			Revision: fakeStackRev,
			Inputs:   map[string]string{"env": `"prod"`, "hub": `"8c1e2f3a-hub"`},
			Changes: []api.StackChange{{Address: subnet, Type: "terraform_data", Name: "subnet", Action: "replace", Reason: "replace_because_cannot_update",
				Attributes: []api.StackAttributeChange{{Path: "input.cidr", Before: `"10.3.0.0/24"`, After: `"10.3.0.0/23"`, ForcesReplacement: true}}}},
		},
		{StackInstance: api.StackInstance{Stack: "edge", Instance: "dev", Of: "environment", DependsOn: []string{"network"},
			Unit:    &api.StackUnit{Phase: "Pending", Reason: "UpstreamPending", Message: "not planned: subnet: known after network @ dev applies (output subnet_id)", Revision: fakeStackRev},
			Pending: []api.StackPending{{Input: "subnet", Stack: "network", Instance: "dev", Output: "subnet_id"}}},
			Revision: fakeStackRev},
		gated("vpn", "prod", "p-vpn-7", "AwaitingApproval", "plan p-vpn-7 (1 to add, 0 to change, 0 to destroy) waits for 1 approval (not by ann, who wrote the change)",
			api.StackGate{Author: "ann", Need: 1, Approvals: []string{}, Blocks: []api.GateBlock{{Gate: "approvals", Reason: "0 of 1 approvals"}}}),
		gated("dns", "prod", "p-dns-2", "GateClosed", "plan p-dns-2 (1 to add, 0 to change, 0 to destroy) is approved by sofia; the window Tue,Thu 10:00-16:00 Europe/Paris opens at 2026-11-26T09:00:00Z",
			api.StackGate{Author: "ann", Need: 1, Approvals: []string{"sofia"}, Blocks: []api.GateBlock{{Gate: "window", Reason: "outside the allowed windows Tue,Thu 10:00-16:00 Europe/Paris", Opens: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}}}),
		gated("firewall", "preprod", "p-fw-5", "GateClosed", "plan p-fw-5 (1 to add, 0 to change, 0 to destroy) is approved by sofia; frozen: year-end until 2026-12-02T00:00:00Z",
			api.StackGate{Need: 1, Approvals: []string{"sofia"}, Blocks: []api.GateBlock{{Gate: "freeze", Reason: "freeze year-end", Opens: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}}}),
	}
}

// fakeStackAccess lets approvers and admins approve stack plans, as the
// owner team bookings' rules would.
type fakeStackAccess struct{}

func (fakeStackAccess) MayApproveStack(user, stack, instance string) (bool, string) {
	me := fakeUsers["tok-"+user]
	if me.Admin || slices.Contains(me.Teams, api.Membership{Team: "bookings", Role: "approver"}) {
		return true, ""
	}
	return false, user + " has developer in bookings, the owner team of stack " + stack + "; the plans of " + stack + " @ " + instance + " are approved by approver or admin of bookings, or an admin"
}

// approveStack answers a POST of an approval: 409 for a plan that is not
// the instance's current one, as the API does.
func approveStack(w http.ResponseWriter, p string, body []byte) bool {
	rest, ok := strings.CutSuffix(strings.TrimPrefix(p, "/api/v1/stacks/"), "/approvals")
	if !ok {
		return false
	}
	var req api.StackApprovalRequest
	json.Unmarshal(body, &req)
	for _, d := range fakeStacks() {
		if rest == d.Stack+"/"+d.Instance && d.Plan != nil && req.Plan != d.Plan.PlanID {
			writeFake(w, http.StatusConflict, api.Error{Error: api.ErrorBody{Code: "conflict",
				Message: "plan " + req.Plan + " is not the current plan of " + d.Stack + " @ " + d.Instance + ": the current one is " + d.Plan.PlanID + " (+1 ~0 -0)"}})
			return true
		}
	}
	writeFake(w, http.StatusCreated, api.StackApproval{Plan: req.Plan, Comment: req.Comment})
	return true
}

// serveStacks answers the stack routes; ok is false for another path.
func (f *fakeAPI) serveStacks(w http.ResponseWriter, p string) bool {
	f.mu.Lock()
	refuse := f.stacksRefused
	f.mu.Unlock()
	if refuse && strings.HasPrefix(p, "/api/v1/stacks") {
		writeFake(w, http.StatusConflict, api.Error{Error: api.ErrorBody{Code: "refused", Message: "no valid revision of the platform repository yet"}})
		return true
	}
	if p == "/api/v1/stacks" {
		l := api.StackList{Revision: fakeStackRev}
		for _, d := range fakeStacks() {
			l.Items = append(l.Items, d.StackInstance)
		}
		writeFake(w, 200, l)
		return true
	}
	rest, ok := strings.CutPrefix(p, "/api/v1/stacks/")
	if !ok {
		return false
	}
	if inst, name, ok := strings.Cut(rest, "/logs"); ok {
		logs := fakeStackLogs[inst]
		if name == "" {
			l := api.StackLogList{Items: []api.StackRunLog{}}
			l.Stack, l.Instance, _ = strings.Cut(inst, "/")
			for _, fl := range logs {
				l.Items = append(l.Items, fl.StackRunLog)
			}
			writeFake(w, 200, l)
			return true
		}
		for _, fl := range logs {
			if "/"+fl.Name == name {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Write([]byte(fl.text))
				return true
			}
		}
		writeFake(w, http.StatusNotFound, api.Error{Error: api.ErrorBody{Code: "not_found", Message: "no log " + name}})
		return true
	}
	for _, d := range fakeStacks() {
		if rest == d.Stack+"/"+d.Instance {
			writeFake(w, 200, d)
			return true
		}
	}
	writeFake(w, http.StatusNotFound, api.Error{Error: api.ErrorBody{Code: "not_found", Message: "no stack instance " + rest}})
	return true
}

// fakeStackLog is a run log the fake API keeps, with its text.
type fakeStackLog struct {
	api.StackRunLog
	text string
}

// fakeStackLogs are the run logs of the fake instances: network @ dev's
// apply runs now, after its plan; hub's last apply; the others have none.
var fakeStackLogs = map[string][]fakeStackLog{
	"network/dev": {
		{api.StackRunLog{Name: "20261124T092930.000000000Z-apply.log", Kind: "apply", Started: t0.Add(-30 * time.Second), Size: 120, Running: true},
			"# apply of network @ dev, started 2026-11-24T09:29:30Z\n$ terraform apply\nterraform_data.subnet[\"app\"]: Creating...\n"},
		{api.StackRunLog{Name: "20261124T092800.000000000Z-plan.log", Kind: "plan", Started: t0.Add(-2 * time.Minute), Size: 230},
			"# plan of network @ dev, started 2026-11-24T09:28:00Z\n$ terraform init\n$ terraform plan\nPlan: 1 to add, 1 to change, 0 to destroy.\n# planned: 1 to add, 1 to change, 0 to replace, 0 to destroy\n"},
	},
	"hub/connectivity": {
		{api.StackRunLog{Name: "20261124T073000.000000000Z-apply.log", Kind: "apply", Started: t0.Add(-2 * time.Hour), Size: 160},
			"# apply of hub @ connectivity, started 2026-11-24T07:30:00Z\n$ terraform apply\nApply complete! Resources: 1 added, 0 changed, 0 destroyed.\n# applied: 1 to add, 0 to change, 0 to replace, 0 to destroy\n"},
	},
}
