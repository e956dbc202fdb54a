package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/test/tfprovider/tfprovidertest"
)

// driftTF is a stack of two files, a in clear and b holding the secret
// input, and as many of c as the input extra says (a change to plan and
// leave saved while the drift is checked).
const driftTF = `terraform {
  required_providers {
    socletest = {
      source  = "` + tfprovidertest.Source + `"
      version = "` + tfprovidertest.Version + `"
    }
  }
}
variable "dir" { type = string }
variable "extra" { type = string }
variable "token" {
  type      = string
  sensitive = true
}
resource "socletest_file" "a" {
  path    = "${var.dir}/a"
  content = "hello a\n"
}
resource "socletest_file" "b" {
  path    = "${var.dir}/b"
  content = "key=${var.token}\n"
}
resource "socletest_file" "c" {
  count   = tonumber(var.extra)
  path    = "${var.dir}/c"
  content = "c\n"
}
`

// driftBench applies the drift stack in dev, then plans a change (one
// more file) and leaves its plan saved, unapplied.
func driftBench(t *testing.T) (p *planner, files string) {
	t.Setenv("TF_CLI_CONFIG_FILE", tfprovidertest.CLIConfig(t))
	files = t.TempDir()
	p = &planner{t: t, r: newRunner(t), repo: writeRepo(t, "files",
		"inputs:\n  dir: "+files+"\n  extra: \"0\"\n  token: "+secret+"\n", driftTF)}
	p.r.Clock = clock.NewFake(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	p.plan()
	p.apply("files", "dev")
	edit(t, p.repo, "stacks/files/stack.yaml", `extra: "0"`, `extra: "1"`)
	res, _ := p.plan()
	if x := res["files@dev"]; x.Status != StatusPlanned || x.Summary.Add != 1 || x.PlanID == "" {
		t.Fatalf("the change to leave saved: %s %s (plan %q)", x.Status, x.Summary, x.PlanID)
	}
	return p, files
}

// drift checks dev and asserts what a check must never do: change the
// sealed state's bytes, the saved plan or its result, leave a file in
// clear, show the secret input (the network's secret, in the content of
// socletest_file.b); and that the check is recorded as returned.
func (p *planner) drift() DriftResult {
	p.t.Helper()
	dir := instanceDir(p.r.Dir, "files", "dev")
	kept := []string{stateFile + sealedExt, planFile + sealedExt, secretsFile + sealedExt, cacheFile, runFile, outputsFile + sealedExt}
	before := map[string][]byte{}
	for _, n := range kept {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			p.t.Fatal(err)
		}
		before[n] = b
	}
	p.r.Clock.(*clock.Fake).Advance(time.Minute)
	repo := load(p.t, p.repo)
	ran := p.r.Runs()
	res := p.r.Drift(context.Background(), repo, os.DirFS(p.repo), repo.Stack("files"), "dev")
	if p.r.Runs() == ran {
		p.t.Error("the drift check ran no terraform")
	}
	for _, n := range kept {
		if b, _ := os.ReadFile(filepath.Join(dir, n)); !bytes.Equal(b, before[n]) {
			p.t.Errorf("the drift check changed %s", n)
		}
	}
	for _, n := range []string{stateFile, stateBackup, planFile, varsFile, driftWork} {
		if exists(filepath.Join(dir, n)) {
			p.t.Errorf("%s is left after the drift check", n)
		}
	}
	js, _ := json.Marshal(res)
	noSecretIn(p.t, string(js), "the drift check")
	noSecretUnder(p.t, dir)
	if !res.Checked.Equal(p.r.Clock.Now()) {
		p.t.Errorf("checked at %s, want the runner's clock, %s", res.Checked, p.r.Clock.Now())
	}
	last, ok, err := p.r.LastDrift("files", "dev")
	if lj, _ := json.Marshal(last); err != nil || !ok || string(lj) != string(js) {
		p.t.Errorf("LastDrift = %s, %v, %v; want %s", lj, ok, err, js)
	}
	return res
}

func wantDrift(t *testing.T, res DriftResult, status DriftStatus, summary string) {
	t.Helper()
	if res.Status != status || res.Summary != summary {
		t.Fatalf("drift: %s (%s): %q: %s; want %s: %q", res.Status, res.Reason, res.Summary, res.Message, status, summary)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDrift: an applied stack of real files is checked for drift with the
// real terraform and provider: in sync as applied; the files edited by
// hand, an update of each, the secret one redacted; deleted, the object
// gone. No check changes the state or the saved plan, which still
// applies afterwards.
func TestDrift(t *testing.T) {
	p, files := driftBench(t)
	a, b := filepath.Join(files, "a"), filepath.Join(files, "b")

	res := p.drift()
	wantDrift(t, res, DriftInSync, "InSync: nothing changed outside socle")
	if res.Reason != ReasonUpToDate || len(res.Drifted) != 0 || res.Hash != p.last["files@dev"].Hash {
		t.Errorf("in sync: %+v", res)
	}

	writeFile(t, a, "edited by hand\n")
	writeFile(t, b, "key="+secret+"-rotated\n")
	res = p.drift()
	wantDrift(t, res, DriftDrifted, "Drifted: 2 resources changed outside socle: socletest_file.a, socletest_file.b")
	if res.Reason != ReasonChangedOutside || res.Message != "" {
		t.Errorf("drifted: %s: %s", res.Reason, res.Message)
	}
	for i, want := range []struct{ addr, before, after string }{
		{"socletest_file.a", `"hello a\n"`, `"edited by hand\n"`},
		{"socletest_file.b", Redacted, Redacted},
	} {
		c := res.Drifted[i]
		if c.Address != want.addr || c.Type != "socletest_file" || c.Action != ActionUpdate {
			t.Errorf("drifted[%d] = %s %s %s; want an update of %s", i, c.Address, c.Type, c.Action, want.addr)
			continue
		}
		content := attribute(c, "content")
		if content == nil || content.Before != want.before || content.After != want.after {
			t.Errorf("%s: content %+v; want %s → %s (all: %+v)", c.Address, content, want.before, want.after, c.Attributes)
		}
		if c.Before["content"] == nil || c.After["content"] == nil {
			t.Errorf("%s: no content in before %v or after %v", c.Address, c.Before, c.After)
		}
	}

	// As applied again: the state was not changed by the checks.
	writeFile(t, a, "hello a\n")
	writeFile(t, b, "key="+secret+"\n")
	wantDrift(t, p.drift(), DriftInSync, "InSync: nothing changed outside socle")

	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	res = p.drift()
	wantDrift(t, res, DriftDrifted, "Drifted: 1 resource changed outside socle: socletest_file.a (deleted)")
	if len(res.Drifted) != 1 || res.Drifted[0].Action != ActionDelete || res.Drifted[0].Before["path"] != a || res.Drifted[0].After != nil {
		t.Errorf("the deleted file: %+v", res.Drifted)
	}
	// The saved plan is applied as it was planned: the checks left it
	// and the state it was planned from as they were.
	p.apply("files", "dev")
	if _, err := os.Stat(filepath.Join(files, "c")); err != nil {
		t.Errorf("the saved plan's file: %v", err)
	}
}

func attribute(c ResourceChange, path string) *AttributeChange {
	for i := range c.Attributes {
		if c.Attributes[i].Path == path {
			return &c.Attributes[i]
		}
	}
	return nil
}

// TestDriftNotApplied: an instance never applied has nothing to check,
// and says so without running terraform; a stack with its own backend,
// whose state socle does not see, says so after terraform found it
// empty, and is in sync once applied.
func TestDriftNotApplied(t *testing.T) {
	r := newRunner(t)
	repo := load(t, "testdata/repo")
	res := r.Drift(context.Background(), repo, os.DirFS("testdata/repo"), repo.Stack("network"), "connectivity")
	if res.Status != DriftNotApplied || res.Reason != ReasonNotApplied || r.Runs() != 0 || res.Summary != "NotApplied: never applied, nothing to check" {
		t.Errorf("never applied: %s (%s) %q, %d terraform runs: %s", res.Status, res.Reason, res.Summary, r.Runs(), res.Message)
	}
	if last, ok, err := r.LastDrift("network", "connectivity"); err != nil || !ok || last.Status != DriftNotApplied {
		t.Errorf("LastDrift = %+v, %v, %v", last, ok, err)
	}
	if _, ok, err := r.LastDrift("network", "elsewhere"); ok || err != nil {
		t.Errorf("LastDrift of an instance never checked: %v, %v", ok, err)
	}
	if res := r.Drift(context.Background(), repo, os.DirFS("testdata/repo"), repo.Stack("network"), "../elsewhere"); res.Status != DriftFailed || res.Reason != ReasonInputs {
		t.Errorf("an instance the stack does not have: %s (%s): %s", res.Status, res.Reason, res.Message)
	}

	own := filepath.Join(t.TempDir(), "own.tfstate")
	p := &planner{t: t, r: newRunner(t), repo: writeRepo(t, "mine", "backend: own\ninputs:\n  name: x\n", `terraform {
  backend "local" { path = "`+own+`" }
}
variable "name" { type = string }
resource "terraform_data" "r" { input = var.name }
`)}
	mine := load(t, p.repo)
	if res := p.r.Drift(context.Background(), mine, os.DirFS(p.repo), mine.Stack("mine"), "dev"); res.Status != DriftNotApplied {
		t.Errorf("own backend, never applied: %s (%s): %s", res.Status, res.Reason, res.Message)
	}
	p.plan()
	p.apply("mine", "dev")
	if res := p.r.Drift(context.Background(), mine, os.DirFS(p.repo), mine.Stack("mine"), "dev"); res.Status != DriftInSync {
		t.Errorf("own backend, applied: %s (%s): %s", res.Status, res.Reason, res.Message)
	}
}

// TestDriftNoSecret: a runner without the data directory's secret cannot
// open a sealed state: it refuses, before it takes the lock or runs
// terraform, and records nothing.
func TestDriftNoSecret(t *testing.T) {
	bare := &Runner{Dir: filepath.Join(t.TempDir(), "stacks"), Terraform: terraformBin(t)}
	repo := load(t, "testdata/repo")
	res := bare.Drift(context.Background(), repo, os.DirFS("testdata/repo"), repo.Stack("network"), "connectivity")
	if res.Status != DriftFailed || res.Reason != ReasonNoSecret || !strings.Contains(res.Message, ErrNoSecret.Error()) || bare.Runs() != 0 {
		t.Errorf("without a secret: %s (%s): %s", res.Status, res.Reason, res.Message)
	}
	if _, ok, _ := bare.LastDrift("network", "connectivity"); ok {
		t.Error("a refused check was recorded")
	}
}

// TestDriftWaiting: testdata/repo's network, applied, is in sync; its
// dependent, applied, then left without the network's outputs (as before
// the network's first apply), waits for them, and runs no terraform.
func TestDriftWaiting(t *testing.T) {
	p := newPlanner(t)
	p.plan()
	p.apply("network", "connectivity")
	p.plan()
	p.apply("app-zone", "dev")
	repo := load(t, p.repo)
	check := func(stack, instance string) DriftResult {
		return p.r.Drift(context.Background(), repo, os.DirFS(p.repo), repo.Stack(stack), instance)
	}
	if res := check("network", "connectivity"); res.Status != DriftInSync {
		t.Errorf("the network as applied: %s (%s): %s", res.Status, res.Reason, res.Message)
	}
	if err := os.Remove(filepath.Join(instanceDir(p.r.Dir, "network", "connectivity"), outputsFile+sealedExt)); err != nil {
		t.Fatal(err)
	}
	ran := p.r.Runs()
	res := check("app-zone", "dev")
	if res.Status != DriftWaiting || res.Reason != ReasonUpstreamNotApplied || len(res.Pending) == 0 || p.r.Runs() != ran {
		t.Errorf("without the network's outputs: %s (%s), pending %v, %d terraform runs: %s", res.Status, res.Reason, res.Pending, p.r.Runs()-ran, res.Message)
	}
	noSecretUnder(t, p.r.Dir)
}
