package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/stack"
)

// TestStackApprove: socle up applies the stacks of a platform; the prod
// instance, gated, waits until socle stack approve (the current plan,
// read from the server, shown before it is approved) approves it, then
// it is applied, as planned. The other stack commands then ask that
// server (--server).
func TestStackApprove(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	repo := filepath.Join(t.TempDir(), "platform")
	// Carl wrote the revision, so ann's approval counts.
	if _, err := source.Init(context.Background(), stackRepo, repo, "Carl", "carl@example.com", "stacks"); err != nil {
		t.Fatal(err)
	}
	url, admin, data, _ := startUp(t, "--repo", repo)
	as := func(args ...string) (string, string, int) {
		return run(t, append(args, "--server", url, "--token", admin)...)
	}
	c := client.New(url, admin)
	deadline := time.Now().Add(3 * time.Minute)
	var d api.StackDetail
	for d.Gate == nil {
		if time.Now().After(deadline) {
			t.Fatalf("app-zone @ prod never waited for an approval: %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
		d, _ = c.Stack(t.Context(), "app-zone", "prod")
	}
	if _, e, code := as("stack", "approve", "app-zone"); code != ExitUsage || !strings.Contains(e, "--env is required") {
		t.Errorf("without --env: %d %s", code, e)
	}
	// Another plan than the current one: refused, nothing shown as
	// approved.
	if out, e, code := as("stack", "approve", "app-zone", "--env", "prod", "--plan", "sha256:0000"); code != ExitProblems || strings.Contains(out, "Plan sha256:0000") || !strings.Contains(e, "the current one is "+d.Gate.PlanID) {
		t.Errorf("approving another plan: %d %q %q", code, out, e)
	}
	out, e, code := as("stack", "approve", "app-zone", "--env", "prod", "--comment", "ship it")
	if code != 0 {
		t.Fatalf("socle stack approve: %d %s %s", code, out, e)
	}
	// What is approved is shown first, as socle stack plan shows it.
	shown, result, _ := strings.Cut(out, "ann approved plan "+d.Gate.PlanID+" of app-zone @ prod.")
	for _, want := range []string{"Plan " + d.Gate.PlanID + " of app-zone @ prod:", "~ app-zone @ prod: 1 to add, 0 to change, 0 to replace, 0 to destroy", "+ terraform_data.subnet"} {
		if !strings.Contains(shown, want) || result == "" {
			t.Errorf("socle stack approve does not show %q before the approval:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("socle stack approve shows the secret:\n%s", out)
	}
	list, err := c.StackApprovals(t.Context(), "app-zone", "prod", d.Gate.PlanID)
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("approvals: %+v %v", list, err)
	}
	a := list.Items[0]
	if a.Plan != d.Gate.PlanID || a.User != "ann" || a.Comment != "ship it" {
		t.Fatalf("the approval: %+v", a)
	}
	for {
		d, _ = c.Stack(t.Context(), "app-zone", "prod")
		if d.Apply != nil && d.Apply.Status == "Applied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app-zone @ prod was not applied after the approval: %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.Apply.PlanID != a.Plan {
		t.Errorf("applied plan %s, approved %s", d.Apply.PlanID, a.Plan)
	}
	if _, e, code := as("stack", "approve", "app-zone", "--env", "prod", "--plan", a.Plan); code == 0 || !strings.Contains(e, "no plan waiting") {
		t.Errorf("approving the plan applied: %d %s", code, e)
	}
	stackCommandsThroughServer(t, url, admin, data, d)
}

// stackCommandsThroughServer: with --server, socle stack list, outputs,
// plan and unlock read the server running the stacks of stackRepo from
// data (app-zone @ prod applied as d says), not a directory: the same
// output as offline, the secret nowhere.
func stackCommandsThroughServer(t *testing.T, url, token, data string, prod api.StackDetail) {
	as := func(args ...string) (string, string, int) {
		return run(t, append(args, "--server", url, "--token", token)...)
	}
	// app-zone @ dev applies the same commit on its own meanwhile: list
	// once every instance has applied and none runs.
	for deadline := time.Now().Add(time.Minute); ; {
		out, _, _ := as("stack", "list", "-o", "json")
		var rows []stackRow
		settled := json.Unmarshal([]byte(out), &rows) == nil && len(rows) > 0
		for _, r := range rows {
			settled = settled && r.Holder == nil && r.LastRun != nil && r.LastRun.Status == stack.RunApplied
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stacks never settled:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, e, code := as("stack", "list")
	if code != ExitOK {
		t.Fatalf("stack list --server: %d %s", code, e)
	}
	checkRows(t, out, map[string][]string{
		"STACK":    {"INSTANCE", "OF", "APPLY", "DEPENDS ON", "LAST PLAN", "LAST APPLY", "LOCK"},
		"network":  {"connectivity", "zone", "auto", "Applied, ", " ago"},
		"app-zone": {"environment", "network", "Applied, "},
	})
	if !strings.Contains(out, "plan "+prod.Apply.PlanID[:12]) || !strings.Contains(out, " gated ") {
		t.Errorf("stack list --server does not show app-zone @ prod's apply of plan %s, gated:\n%s", prod.Apply.PlanID[:12], out)
	}
	out, _, _ = as("stack", "list", "-o", "json")
	var rows []stackRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("stack list --server -o json: %v\n%s", err, out)
	}
	if len(rows) != 3 || rows[0].Stack != "network" || rows[0].LastRun == nil || rows[0].LastRun.Status != stack.RunApplied || rows[2].Apply != "gated" ||
		rows[2].LastRun == nil || rows[2].LastRun.PlanID != prod.Apply.PlanID {
		t.Errorf("stack list --server -o json:\n%s", out)
	}
	if _, e, code := as("stack", "list", stackRepo); code != ExitUsage || !strings.Contains(e, "DIR and --data are read offline") {
		t.Errorf("stack list DIR --server: %d %s", code, e)
	}

	out, e, code = as("stack", "outputs", "network", "--env", "connectivity")
	for _, want := range []string{"Outputs of network @ connectivity, applied ", "OUTPUT  VALUE", `cidr    "10.0.0.0/16"`, "key     (sensitive value)"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("stack outputs --server does not say %q (exit %d, %s):\n%s", want, code, e, out)
		}
	}
	out, _, _ = as("stack", "outputs", "network", "--env", "connectivity", "-o", "json")
	var outs stackOutputs
	if err := json.Unmarshal([]byte(out), &outs); err != nil || !outs.Applied || outs.Outputs["key"] != stack.Redacted || outs.PlanID == "" {
		t.Errorf("stack outputs --server -o json: %v\n%s", err, out)
	}

	// --env resolves as offline: an instance the stack does not have, or
	// a stack the server does not have, is named with what there is.
	if _, e, code := as("stack", "outputs", "network", "--env", "dev"); code != ExitUsage || !strings.Contains(e, `stack network has no instance for "dev": its instances are connectivity`) {
		t.Errorf("stack outputs network --env dev --server: %d %s", code, e)
	}
	if _, e, code := as("stack", "logs", "nope", "--env", "dev"); code != ExitUsage || !strings.Contains(e, `the server has no stack "nope" (its stacks: network, app-zone)`) {
		t.Errorf("stack logs nope --server: %d %s", code, e)
	}

	// The run logs: listed newest first, the apply's printed.
	out, e, code = as("stack", "logs", "app-zone", "--env", "prod", "--list")
	if code != ExitOK || !strings.Contains(out, "NAME") || !strings.Contains(out, "-apply.log  apply ") || !strings.Contains(out, "-plan.log   plan ") {
		t.Errorf("stack logs --list --server: %d %s\n%s", code, e, out)
	}
	out, _, _ = as("stack", "logs", "app-zone", "--env", "prod", "--list", "-o", "json")
	var logs api.StackLogList
	if err := json.Unmarshal([]byte(out), &logs); err != nil || len(logs.Items) < 2 {
		t.Fatalf("stack logs --list --server -o json: %v\n%s", err, out)
	}
	var applyLog string
	for _, l := range logs.Items {
		if l.Kind == "apply" && applyLog == "" {
			applyLog = l.Name
		}
	}
	out, e, code = as("stack", "logs", "app-zone", "--env", "prod", "--run", applyLog)
	for _, want := range []string{"# apply of app-zone @ prod, started ", "$ terraform apply\n", "Apply complete!", "# applied: 1 to add"} {
		if code != ExitOK || !strings.Contains(out, want) || strings.Contains(out, "s3cr3t") {
			t.Errorf("stack logs --run %s --server does not say %q (exit %d, %s):\n%s", applyLog, want, code, e, out)
		}
	}
	if _, e, code := as("stack", "logs", "app-zone", "--env", "prod", "--run", "nope.log"); code == ExitOK || !strings.Contains(e, `no log "nope.log" of app-zone @ prod`) {
		t.Errorf("stack logs --run nope.log: %d %s", code, e)
	}

	out, e, code = as("stack", "plan", "app-zone", "--env", "dev")
	if code != ExitOK || !strings.Contains(out, "Stacks (the last plans of the server at "+url+")") || !strings.Contains(out, " app-zone @ dev: ") || strings.Contains(out, "app-zone @ prod") {
		t.Errorf("stack plan --server: %d %s\n%s", code, e, out)
	}
	out, _, _ = as("stack", "plan", "app-zone", "-o", "json")
	var plans stackPlans
	if err := json.Unmarshal([]byte(out), &plans); err != nil || plans.Server != url || len(plans.Results) != 2 || plans.Results[1].Instance != "prod" {
		t.Errorf("stack plan --server -o json: %v\n%s", err, out)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the secret in stack plan --server:\n%s", out)
	}

	// A live holder of network's lock, as a running socle holds it.
	if out, _, code := as("stack", "unlock", "network", "--env", "connectivity"); code != ExitOK || !strings.Contains(out, "was not locked: nothing to do") {
		t.Errorf("unlock --server of a free instance: %d %s", code, out)
	}
	host, _ := os.Hostname()
	locks := &lease.File{Dir: filepath.Join(data, "stacks", ".locks")}
	le, err := locks.TryAcquire(t.Context(), "network.connectivity", lease.Holder{PID: os.Getpid(), Host: host, Since: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	_, e, code = as("stack", "unlock", "network", "--env", "connectivity")
	if want := fmt.Sprintf("network @ connectivity is held by pid %d on %s", os.Getpid(), host); code != ExitProblems || !strings.Contains(e, want) {
		t.Errorf("unlock --server of a live holder: %d %q, want %q", code, e, want)
	}
	out, e, code = as("stack", "unlock", "network", "--env", "connectivity", "--force")
	if code != ExitOK || !strings.Contains(out, fmt.Sprintf("Took the lock of network @ connectivity from pid %d on %s", os.Getpid(), host)) ||
		!strings.Contains(out, "Recorded in the audit trail of the server at "+url) {
		t.Errorf("unlock --server --force: %d %s %s", code, out, e)
	}
	select {
	case <-le.Lost():
	case <-time.After(time.Minute): // a bound on a failure, not a timing
		t.Fatal("the holder did not lose its lease")
	}
	var audit api.Page[api.AuditRecord]
	if err := client.New(url, token).Get(t.Context(), "/api/v1/audit?action=stack.unlocked", &audit); err != nil || len(audit.Items) != 1 {
		t.Errorf("stack.unlocked records on the server: %+v %v", audit.Items, err)
	}
}
