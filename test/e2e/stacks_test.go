package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/test/tfprovider/tfprovidertest"
)

// Infrastructure stacks through the real binary: socle up plans and
// applies them with the machine's terraform, and the test reads what it
// did through the API and the files the stacks touch.

// getAs decodes the answer of GET path from the socle s as user, which
// must be 200 OK.
func (s *socle) getAs(t *testing.T, user, path string, v any) {
	t.Helper()
	if code, body := s.as(t, user, http.MethodGet, path, nil, v); code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
}

// stacks returns the stack instances by "stack@instance": none while
// socle has no revision in force yet (409 Conflict).
func (s *socle) stacks(t *testing.T, user string) map[string]api.StackInstance {
	t.Helper()
	var list api.StackList
	switch code, body := s.as(t, user, http.MethodGet, "/api/v1/stacks", nil, &list); code {
	case http.StatusOK:
	case http.StatusConflict:
		return nil
	default:
		t.Fatalf("GET /api/v1/stacks: %d %s", code, body)
	}
	out := map[string]api.StackInstance{}
	for _, it := range list.Items {
		out[it.Stack+"@"+it.Instance] = it
	}
	return out
}

// phase is an instance's engine phase and reason, "" without a unit.
func phase(it api.StackInstance) string {
	if it.Unit == nil {
		return ""
	}
	return it.Unit.Phase + "/" + it.Unit.Reason
}

func applied(it api.StackInstance) bool {
	return it.Unit != nil && it.Unit.Phase == "Synced" && it.Apply != nil && it.Apply.Status == "Applied"
}

// waitStacks polls the stack list as user until ok holds of it, or fails
// the test after timeout with what it last saw.
func (s *socle) waitStacks(t *testing.T, user string, timeout time.Duration, what string, ok func(map[string]api.StackInstance) bool) map[string]api.StackInstance {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.stacks(t, user)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for k, it := range got {
				fmt.Fprintf(&b, "  %s: %s %+v %+v\n", k, phase(it), it.Unit, it.Apply)
			}
			t.Fatalf("%s: not within %s; the stacks:\n%s\nsocle's log:\n%s", what, timeout, b.String(), tail(s.log.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unquote reads a JSON-encoded input or output value of the API.
func unquote(t *testing.T, v string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		t.Fatalf("%q is not a JSON string: %v", v, err)
	}
	return s
}

// demoRepo is a repository of the demo platform's files, made as socle up
// makes its own (source.Init), committed by Ann.
func demoRepo(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	if _, err := source.Init(context.Background(), "../../examples/platform", dst, "Ann", "ann@example.com", "the demo platform"); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestDemoLandingZone: socle up on the demo platform applies the landing
// zone's automatic instances without anyone acting (connectivity, identity,
// management, devops, and the spokes of dev and sandbox), upstream stacks
// first, their outputs flowing into their dependents' inputs; the spokes of
// preprod and prod and the databases wait for an approval.
func TestDemoLandingZone(t *testing.T) {
	repo := demoRepo(t)
	s := start(t, repo, filepath.Join(t.TempDir(), "data"))
	defer s.stop(t)
	const viewer = "paul" // the demo's viewer: reading stacks needs no more

	auto := []string{"connectivity@connectivity", "identity@identity", "management@management", "devops@devops", "app-zone@dev", "app-zone@sandbox"}
	gated := []string{"app-zone@preprod", "app-zone@prod", "databases@dev", "databases@preprod", "databases@prod"}
	began := time.Now()
	got := s.waitStacks(t, viewer, 3*time.Minute, "the demo's automatic stack instances applied and Synced", func(m map[string]api.StackInstance) bool {
		for _, k := range auto {
			if !applied(m[k]) {
				return false
			}
		}
		for _, k := range gated {
			if phase(m[k]) != "Blocked/AwaitingApproval" {
				return false
			}
		}
		return true
	})
	t.Logf("the %d automatic instances were Synced %s after socle was up", len(auto), time.Since(began).Round(100*time.Millisecond))
	if len(got) != len(auto)+len(gated) {
		t.Errorf("%d instances, want %d: %v", len(got), len(auto)+len(gated), got)
	}
	for _, k := range gated {
		if it := got[k]; it.Apply != nil || it.Plan == nil || it.Plan.Status != "Planned" {
			t.Errorf("%s: applied %+v, plan %+v; want planned, held, not applied", k, it.Apply, it.Plan)
		}
	}
	// Upstreams were applied before their dependents.
	for _, dep := range [][2]string{{"connectivity@connectivity", "app-zone@dev"}, {"management@management", "app-zone@sandbox"}, {"identity@identity", "devops@devops"}} {
		if up, down := got[dep[0]].Apply, got[dep[1]].Apply; up.Finished.After(down.Started) {
			t.Errorf("%s started at %s, before %s finished at %s", dep[1], down.Started, dep[0], up.Finished)
		}
	}

	// Outputs flow into inputs: the hub's, into each spoke.
	var hub, dev, sandbox, devops, identity api.StackDetail
	s.getAs(t, viewer, "/api/v1/stacks/connectivity/connectivity", &hub)
	s.getAs(t, viewer, "/api/v1/stacks/app-zone/dev", &dev)
	s.getAs(t, viewer, "/api/v1/stacks/app-zone/sandbox", &sandbox)
	s.getAs(t, viewer, "/api/v1/stacks/devops/devops", &devops)
	s.getAs(t, viewer, "/api/v1/stacks/identity/identity", &identity)
	if unquote(t, hub.Outputs["hub_network"]) != "vpc-hub-europe-west6" || unquote(t, hub.Outputs["address_space"]) != "10.40.0.0/13" {
		t.Errorf("connectivity's outputs: %v", hub.Outputs)
	}
	for _, in := range []string{"hub_network", "address_space", "dns_zone", "region"} {
		if dev.Inputs[in] != hub.Outputs[in] || sandbox.Inputs[in] != hub.Outputs[in] {
			t.Errorf("input %s: dev %s, sandbox %s; connectivity's output %s", in, dev.Inputs[in], sandbox.Inputs[in], hub.Outputs[in])
		}
	}
	if devops.Inputs["runner_identity"] != identity.Outputs["ci_identity"] || unquote(t, identity.Outputs["ci_identity"]) != "wi-platform@alpenrose-identity.iam.gserviceaccount.com" {
		t.Errorf("devops' runner_identity %s, identity's ci_identity %s", devops.Inputs["runner_identity"], identity.Outputs["ci_identity"])
	}
	// Each spoke has its own /16 of the hub's space.
	if c := unquote(t, dev.Outputs["cidr"]); c != "10.41.0.0/16" {
		t.Errorf("dev's spoke is %s, want 10.41.0.0/16", c)
	}
	if c := unquote(t, sandbox.Outputs["cidr"]); c != "10.47.0.0/16" {
		t.Errorf("sandbox's spoke is %s, want 10.47.0.0/16", c)
	}
}

// slowStack is a stack whose second resource's apply appends a line to
// count and then waits while hold exists: an apply the test can catch
// half-way, and count the applies of.
func slowStack(count, hold string, slow bool) files {
	tf := `variable "count_file" {
  type = string
}

variable "hold_file" {
  type = string
}

resource "terraform_data" "base" {
  input = "base"
}

output "base_id" {
  value = terraform_data.base.id
}
`
	if slow {
		tf += `
resource "terraform_data" "slow" {
  input = "slow"
  provisioner "local-exec" {
    command = "echo applied >> '${var.count_file}'; while [ -e '${var.hold_file}' ]; do sleep 0.05; done"
  }
}
`
	}
	return files{
		"socle.yaml":             oneEnvPlatform,
		"teams.yaml":             annTeam,
		"stacks/slow/stack.yaml": fmt.Sprintf("apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\ninputs:\n  count_file: %s\n  hold_file: %s\n", count, hold),
		"stacks/slow/main.tf":    tf,
	}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestSocleKilledMidStackApply: socle is killed (SIGKILL) while terraform
// applies a stack, and started again on the same data directory: the run
// lock the dead socle held does not stand in the way, the state keeps
// what was applied before, the apply is recorded as interrupted (and
// audited once), and the change is applied once more, once: the
// interrupted apply's side effect and the retry's, no third.
func TestSocleKilledMidStackApply(t *testing.T) {
	tmp := t.TempDir()
	count, hold := filepath.Join(tmp, "applies"), filepath.Join(tmp, "hold")
	repo := newRepo(t, "slow: base", slowStack(count, hold, false))
	data := filepath.Join(t.TempDir(), "data")
	s := start(t, repo, data)
	const key = "slow@dev"
	first := s.waitStacks(t, reader, time.Minute, "slow @ dev applied", func(m map[string]api.StackInstance) bool { return applied(m[key]) })[key]
	var before api.StackDetail
	s.getAs(t, reader, "/api/v1/stacks/slow/dev", &before)
	if before.Outputs["base_id"] == "" {
		t.Fatalf("no base_id output after the first apply: %v", before.Outputs)
	}

	// The second commit adds the slow resource; its apply waits on hold.
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hold) }) // lets an orphaned provisioner end
	for p, data := range slowStack(count, hold, true) {
		if err := os.WriteFile(filepath.Join(repo, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCommit(t, repo, "slow: add the slow resource")
	s.hook(t)
	mid := s.waitStacks(t, reader, time.Minute, "slow @ dev applying its second plan, the provisioner started", func(m map[string]api.StackInstance) bool {
		it := m[key]
		return it.Apply != nil && it.Apply.Status == "Applying" && it.Apply.PlanID != first.Apply.PlanID && lines(t, count) == 1
	})[key]
	if mid.Lock == nil || mid.Lock.PID != s.cmd.Process.Pid {
		t.Errorf("while it applies, the lock is %+v; want socle's (pid %d)", mid.Lock, s.cmd.Process.Pid)
	}
	s.kill()
	t.Logf("socle killed while it applied plan %s", mid.Apply.PlanID[:19])
	// The provisioner's shell outlives terraform (killed with socle): let
	// it end, as an operator would find it ended.
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}

	s = start(t, repo, data)
	defer s.stop(t)
	var sawInterrupted bool
	after := s.waitStacks(t, reader, 2*time.Minute, "slow @ dev applied again after the restart", func(m map[string]api.StackInstance) bool {
		it := m[key]
		if it.Apply != nil && it.Apply.Status == "Interrupted" {
			sawInterrupted = true
		}
		return applied(it) && it.Apply.PlanID != mid.Apply.PlanID && it.Lock == nil
	})[key]
	t.Logf("applied again with plan %s (the API showed the interrupted run: %v)", after.Apply.PlanID[:19], sawInterrupted)

	// The interrupted run is on record, with its plan.
	runs, _ := filepath.Glob(filepath.Join(data, "stacks", "slow", "dev", "history", "*.json"))
	var interrupted int
	for _, p := range runs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var run struct{ PlanID, Status, Message string }
		if err := json.Unmarshal(b, &run); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if run.Status == "Interrupted" {
			interrupted++
			if run.PlanID != mid.Apply.PlanID || !strings.Contains(run.Message, "socle stopped during this apply") {
				t.Errorf("the interrupted run: %+v; want plan %s", run, mid.Apply.PlanID)
			}
		}
	}
	if interrupted != 1 {
		t.Errorf("%d interrupted runs recorded in %d runs of history, want 1", interrupted, len(runs))
	}

	// It is audited once, and its release ended failed (DORA counts it).
	var audit api.Page[api.AuditRecord]
	s.getAs(t, reader, "/api/v1/audit?action=stack.apply_interrupted", &audit)
	if len(audit.Items) != 1 || !strings.Contains(string(audit.Items[0].Detail), mid.Apply.PlanID) {
		t.Errorf("stack.apply_interrupted records: %+v; want one, of plan %s", audit.Items, mid.Apply.PlanID)
	}

	// The state is intact: what was applied before the kill is kept.
	var now api.StackDetail
	s.getAs(t, reader, "/api/v1/stacks/slow/dev", &now)
	if now.Outputs["base_id"] != before.Outputs["base_id"] {
		t.Errorf("base_id %s after the restart, %s before: the base resource was created again", now.Outputs["base_id"], before.Outputs["base_id"])
	}
	// One line from the apply that was killed, one from the retry.
	if n := lines(t, count); n != 2 {
		t.Errorf("the slow resource's provisioner ran %d times, want 2 (the interrupted apply, the retry)", n)
	}
	// Another pass of the engine over the instance applies nothing more.
	s.hook(t)
	s.waitStacks(t, reader, time.Minute, "slow @ dev observed again after its apply", func(m map[string]api.StackInstance) bool {
		it := m[key]
		return it.Unit != nil && it.Unit.UpdatedAt.After(after.Apply.Finished) && applied(it)
	})
	if n := lines(t, count); n != 2 {
		t.Errorf("after another pass the provisioner ran %d times, want still 2", n)
	}
	if got := s.stacks(t, reader)[key]; got.Apply.PlanID != after.Apply.PlanID {
		t.Errorf("applied again, plan %s", got.Apply.PlanID)
	}
}

// TestStackDriftHealed: a file that a stack's resource (the socletest
// provider's, whose Read reads the file) keeps is deleted by hand; at the
// stack's next drift check (drift: 1m, the shortest allowed; the test
// moves socle's clock instead of waiting) socle reports the drift and,
// the instance applying automatically in an environment that heals,
// applies the configuration again: the file is back.
func TestStackDriftHealed(t *testing.T) {
	t.Setenv("TF_CLI_CONFIG_FILE", tfprovidertest.CLIConfig(t))
	target := filepath.Join(t.TempDir(), "motd")
	repo := newRepo(t, "motd: first version", files{
		"socle.yaml": `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: e2e}
environments:
  - {name: dev, runtime: {type: local}, sync: auto, selfHeal: true}
`,
		"teams.yaml":             annTeam,
		"stacks/motd/stack.yaml": "apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\ndrift: 1m\ninputs:\n  path: " + target + "\n  env: ${environment.name}\n",
		"stacks/motd/main.tf": `terraform {
  required_providers {
    socletest = {
      source  = "` + tfprovidertest.Source + `"
      version = "` + tfprovidertest.Version + `"
    }
  }
}

variable "path" {
  type = string
}

variable "env" {
  type = string
}

resource "socletest_file" "motd" {
  path    = var.path
  content = "hello ${var.env}\n"
}
`,
	})
	s := start(t, repo, filepath.Join(t.TempDir(), "data"))
	defer s.stop(t)
	const key = "motd@dev"
	first := s.waitStacks(t, reader, time.Minute, "motd @ dev applied", func(m map[string]api.StackInstance) bool { return applied(m[key]) })[key]
	if b, err := os.ReadFile(target); err != nil || string(b) != "hello dev\n" {
		t.Fatalf("after the apply the file holds %q (%v)", b, err)
	}
	drifts := func() []api.Event {
		var page api.Page[api.Event]
		s.getAs(t, reader, "/api/v1/events?kind=drift&app=motd", &page)
		return page.Items
	}
	if d := drifts(); len(d) != 0 {
		t.Fatalf("drift reported before anything drifted: %+v", d)
	}

	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	s.clock.advance(t, time.Minute)
	deadline := time.Now().Add(time.Minute)
	var found []api.Event
	for found = drifts(); len(found) == 0; found = drifts() {
		if time.Now().After(deadline) {
			t.Fatalf("no drift event within a minute of the next check's time; socle's log:\n%s", tail(s.log.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if msg := found[0].Message; !strings.Contains(msg, "motd @ dev drifted (corrected by the next apply)") || !strings.Contains(msg, "socletest_file.motd") {
		t.Errorf("drift event: %q", msg)
	}
	healed := s.waitStacks(t, reader, time.Minute, "motd @ dev applied again", func(m map[string]api.StackInstance) bool {
		it := m[key]
		return applied(it) && it.Apply.PlanID != first.Apply.PlanID
	})[key]
	if b, err := os.ReadFile(target); err != nil || string(b) != "hello dev\n" {
		t.Errorf("after the heal the file holds %q (%v)", b, err)
	}
	t.Logf("drift found and healed: %s; applied plan %s", found[0].Message, healed.Apply.PlanID[:19])
}
