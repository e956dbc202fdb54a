package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/test/tfprovider/tfprovidertest"
)

// The test binary doubles as a socle that applies a plan and is killed
// mid-apply (TestKilledMidApply): only a real process shows what a crash
// leaves behind.
func TestMain(m *testing.M) {
	if env := os.Getenv("STACK_TEST_APPLY"); env != "" {
		var job struct {
			Repo, Dir, Terraform, Stack, Instance string
			Approved                              Approved
		}
		if err := json.Unmarshal([]byte(env), &job); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		repo, ps := spec.Load(os.DirFS(job.Repo))
		if ps.Errors() > 0 {
			fmt.Println("error:", ps)
			os.Exit(2)
		}
		r := &Runner{Dir: job.Dir, Terraform: job.Terraform, Secret: testSecret}
		run := r.Apply(context.Background(), repo.Stack(job.Stack), job.Instance, job.Approved)
		fmt.Println("finished:", run.Status, run.Message) // the test kills it before
		os.Exit(1)
	}
	os.Exit(tfprovidertest.Main(m))
}

// state returns the instance's state, opened.
func (p *planner) state(stack, instance string) string {
	p.t.Helper()
	repo := load(p.t, p.repo)
	b, ok, err := p.r.files(repo.Stack(stack), instance).open(stateFile)
	if err != nil || !ok {
		p.t.Fatalf("state of %s @ %s: %v (there: %v)", stack, instance, err, ok)
	}
	return string(b)
}

func (p *planner) applyAs(stack, instance string, ok Approved) Run {
	p.t.Helper()
	return p.r.Apply(context.Background(), load(p.t, p.repo).Stack(stack), instance, ok)
}

func approved(res Result) Approved { return Approved{PlanID: res.PlanID, Hash: res.Hash} }

// TestApply: the approved plan is applied, its state sealed with the
// resources in it; the next plan has nothing to do; the outputs are shown
// redacted and reach the dependent's inputs; the plan is not applied twice.
func TestApply(t *testing.T) {
	p := newPlanner(t)
	res, _ := p.plan()
	net := res["network@connectivity"]
	run := p.apply("network", "connectivity")
	if run.PlanID != net.PlanID || run.Started.IsZero() || run.Finished.Before(run.Started) {
		t.Errorf("run = %+v", run)
	}
	st := p.state("network", "connectivity")
	for _, addr := range []string{`"name": "hub"`, `"name": "peering"`, `"name": "old"`} {
		if !strings.Contains(st, addr) {
			t.Errorf("the state has no %s", addr)
		}
	}
	dir := instanceDir(p.r.Dir, "network", "connectivity")
	for _, name := range []string{stateFile, stateBackup, planFile, varsFile, planFile + sealedExt} {
		if exists(filepath.Join(dir, name)) {
			t.Errorf("%s is left after the apply", name)
		}
	}
	if !exists(filepath.Join(dir, stateFile+sealedExt)) {
		t.Error("no sealed state")
	}
	noSecretUnder(t, p.r.Dir)

	want := map[string]string{"cidr": `"10.0.0.0/16"`, "key": Redacted}
	for k, v := range want {
		if run.Outputs[k] != v {
			t.Errorf("run output %s = %q, want %q", k, run.Outputs[k], v)
		}
	}
	shown, ok, err := p.r.ShowOutputs("network", "connectivity")
	if err != nil || !ok || shown["cidr"] != want["cidr"] || shown["key"] != Redacted || !strings.HasPrefix(shown["hub_id"], `"`) {
		t.Errorf("ShowOutputs = %v, %v, %v", shown, ok, err)
	}
	if last, ok, err := p.r.LastRun("network", "connectivity"); err != nil || !ok || last.Status != RunApplied || last.PlanID != net.PlanID {
		t.Errorf("LastRun = %+v, %v, %v", last, ok, err)
	}

	again, ran := p.plan()
	if n := again["network@connectivity"]; n.Status != StatusNoChanges || n.PlanID != "" || ran == 0 {
		t.Errorf("network after its apply: %s %s (plan %q, %d runs)", n.Status, n.Summary, n.PlanID, ran)
	}
	// The dependent reads the upstream's outputs, the secret one too, in clear
	// for terraform and redacted for people.
	dev := again["app-zone@dev"]
	if dev.Status != StatusPlanned || dev.Inputs["note"] != `"hub 10.0.0.0/16 in apps-nonprod"` || dev.Inputs["key"] != Redacted {
		t.Errorf("app-zone@dev: %s, inputs %v", dev.Status, dev.Inputs)
	}
	devRun := p.apply("app-zone", "dev")
	if !strings.Contains(p.state("app-zone", "dev"), secret) {
		t.Error("the dependent's state does not hold the upstream's secret output: it was not passed")
	}
	noSecretUnder(t, p.r.Dir)

	// The states are sealed anew after each run (a fresh nonce): the cache
	// keys on the state in clear, so a plan with nothing new runs nothing.
	p.plan()
	if _, ran := p.plan(); ran != 0 {
		t.Errorf("a plan with nothing changed since the last one ran terraform %d times", ran)
	}

	// The same plan again: refused, it was applied.
	if r := p.applyAs("app-zone", "dev", Approved{PlanID: devRun.PlanID, Hash: devRun.Hash}); r.Status != RunRefused || r.Reason != ReasonAlreadyApplied {
		t.Errorf("the applied plan again: %s %s: %s", r.Status, r.Reason, r.Message)
	}
}

// TestApplyRefusals: a plan that is not the saved one, or no plan at all,
// or a runner that cannot seal, is refused before anything runs.
func TestApplyRefusals(t *testing.T) {
	p := newPlanner(t)
	res, _ := p.plan()
	net := res["network@connectivity"]
	for _, tt := range []struct {
		name   string
		ok     Approved
		reason Reason
	}{
		{"another plan", Approved{PlanID: "sha256:other", Hash: net.Hash}, ReasonNotApproved},
		{"another commit", Approved{PlanID: net.PlanID, Hash: "sha256:other"}, ReasonNotApproved},
	} {
		if r := p.applyAs("network", "connectivity", tt.ok); r.Status != RunRefused || r.Reason != tt.reason {
			t.Errorf("%s: %s %s: %s", tt.name, r.Status, r.Reason, r.Message)
		}
	}
	if r := p.applyAs("app-zone", "dev", Approved{}); r.Status != RunRefused || r.Reason != ReasonNoPlan {
		t.Errorf("a waiting instance: %s %s: %s", r.Status, r.Reason, r.Message)
	}
	// Without the secret: nothing sealed can be read, nothing applied.
	p.apply("network", "connectivity")
	bare := &Runner{Dir: p.r.Dir, Terraform: p.r.Terraform}
	repo := load(t, p.repo)
	if r := bare.Apply(context.Background(), repo.Stack("network"), "connectivity", approved(net)); r.Reason != ReasonNoSecret {
		t.Errorf("apply without a secret: %s %s", r.Status, r.Reason)
	}
	edit(t, p.repo, "stacks/network/stack.yaml", "10.0.0.0/16", "10.9.0.0/16")
	repo = load(t, p.repo)
	if r := bare.Plan(context.Background(), repo, os.DirFS(p.repo), repo.Stack("network"), "connectivity"); r.Status != StatusFailed || r.Reason != ReasonNoSecret {
		t.Errorf("plan of a sealed state without a secret: %s %s: %s", r.Status, r.Reason, r.Message)
	}
}

// TestApplyStale: plan A is saved aside; plan B is made and applied, which
// changes the state; A, put back, is refused as stale, by socle's check
// and, when that is bypassed, by terraform's own; then planning again works.
func TestApplyStale(t *testing.T) {
	p := newPlanner(t)
	dir := instanceDir(p.r.Dir, "network", "connectivity")
	res, _ := p.plan()
	a := res["network@connectivity"]
	saved := map[string][]byte{}
	for _, n := range []string{planFile + sealedExt, cacheFile} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		saved[n] = b
	}
	restore := func() {
		for n, b := range saved {
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// B: the same commit planned again (the cache is dropped, as a new
	// plan after a restart would), then applied.
	os.Remove(filepath.Join(dir, cacheFile))
	res, _ = p.plan()
	if res["network@connectivity"].PlanID == a.PlanID {
		t.Fatal("plan B has A's id")
	}
	p.apply("network", "connectivity")
	after := p.state("network", "connectivity")

	restore()
	r := p.applyAs("network", "connectivity", approved(a))
	if r.Status != RunRefused || r.Reason != ReasonStale || !strings.Contains(r.Message, "changed since plan") {
		t.Fatalf("plan A after B applied: %s %s: %s", r.Status, r.Reason, r.Message)
	}
	// socle's check comes before terraform runs: no run of A is recorded.
	if last, _, _ := p.r.LastRun("network", "connectivity"); last.PlanID == a.PlanID {
		t.Errorf("a run of the stale plan was recorded: %+v", last)
	}
	if exists(filepath.Join(dir, planFile+sealedExt)) || exists(filepath.Join(dir, cacheFile)) {
		t.Error("the stale plan was kept")
	}

	// terraform's own check: the cache made to say A was planned from
	// today's state, terraform still refuses A (lineage and serial).
	restore()
	var c cached
	if err := json.Unmarshal(saved[cacheFile], &c); err != nil {
		t.Fatal(err)
	}
	repo := load(t, p.repo)
	st, _ := p.r.files(repo.Stack("network"), "connectivity").readState()
	if c.Key = p.r.key(c.Key.Hash, st); writeJSON(filepath.Join(dir, cacheFile), c) != nil {
		t.Fatal("writing the cache")
	}
	r = p.applyAs("network", "connectivity", approved(a))
	if r.Status != RunRefused || r.Reason != ReasonStale || !strings.Contains(r.Message, "terraform refused") {
		t.Fatalf("plan A past socle's check: %s %s: %s", r.Status, r.Reason, r.Message)
	}
	if got := p.state("network", "connectivity"); got != after {
		t.Error("a refused plan changed the state")
	}

	again, _ := p.plan()
	if n := again["network@connectivity"]; n.Status != StatusNoChanges || n.Cached {
		t.Errorf("planning again after the refusal: %s cached=%v: %s", n.Status, n.Cached, n.Message)
	}
}

// TestStateSealedAtRest: the state on disk never holds a secret input in
// clear; a state left in clear by a crash is sealed by the next run, and
// planning from it still works.
func TestStateSealedAtRest(t *testing.T) {
	p := newPlanner(t)
	p.plan()
	p.apply("network", "connectivity")
	dir := instanceDir(p.r.Dir, "network", "connectivity")
	sealed, err := os.ReadFile(filepath.Join(dir, stateFile+sealedExt))
	if err != nil {
		t.Fatal(err)
	}
	st := p.state("network", "connectivity")
	if strings.Contains(string(sealed), secret) || strings.Contains(string(sealed), "terraform_data") || !strings.Contains(st, secret) {
		t.Errorf("the sealed state shows its content, or the opened one lacks the secret")
	}
	// A crash left the state in clear (and no sealed one).
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(st), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, stateFile+sealedExt))
	edit(t, p.repo, "stacks/network/stack.yaml", "10.0.0.0/16", "10.3.0.0/16")
	res, _ := p.plan()
	if n := res["network@connectivity"]; n.Status != StatusPlanned || n.Summary.Change != 1 || n.Summary.Add != 0 {
		t.Errorf("plan from the state left in clear: %s %s", n.Status, n.Summary)
	}
	if exists(filepath.Join(dir, stateFile)) || !exists(filepath.Join(dir, stateFile+sealedExt)) {
		t.Error("the state left in clear was not sealed")
	}
	noSecretUnder(t, p.r.Dir)
}

// TestBackupsRotate: each apply keeps the state before it, sealed; only
// the last Keep stay, the newest being the state the last apply started from.
func TestBackupsRotate(t *testing.T) {
	p := newPlanner(t)
	p.r.Keep = 2
	repo := load(t, p.repo)
	f := p.r.files(repo.Stack("network"), "connectivity")
	var before string
	for i, cidr := range []string{"10.0.0.0/16", "10.4.0.0/16", "10.5.0.0/16", "10.6.0.0/16"} {
		if i > 0 {
			edit(t, p.repo, "stacks/network/stack.yaml", "cidr: 10.", "cidr: "+cidr+" #")
			before = p.state("network", "connectivity")
		}
		p.plan()
		p.apply("network", "connectivity")
	}
	es, err := os.ReadDir(f.path(backupsDir))
	if err != nil || len(es) != 2 {
		t.Fatalf("backups: %v, %v; want 2", es, err)
	}
	newest, ok, err := f.open(filepath.Join(backupsDir, strings.TrimSuffix(es[1].Name(), sealedExt)))
	if err != nil || !ok || string(newest) != before {
		t.Errorf("the newest backup is not the state before the last apply (%v, %v)", ok, err)
	}
	if b, _ := os.ReadFile(f.path(filepath.Join(backupsDir, es[0].Name()))); strings.Contains(string(b), secret) {
		t.Error("a backup holds the secret in clear")
	}
	hist, err := os.ReadDir(f.path(historyDir))
	if err != nil || len(hist) != 2 {
		t.Errorf("history: %d runs, %v; want 2", len(hist), err)
	}
	// History reads them back, newest first: the last is LastRun.
	runs, err := p.r.History("network", "connectivity")
	last, _, _ := p.r.LastRun("network", "connectivity")
	if err != nil || len(runs) != 2 || runs[0].PlanID != last.PlanID || !runs[1].Started.Before(runs[0].Started) {
		t.Fatalf("History = %+v, %v; want 2 runs, newest first, the first %s", runs, err, last.PlanID)
	}
	for _, run := range runs {
		if run.Status != RunApplied || run.Stack != "network" || run.Instance != "connectivity" {
			t.Errorf("a run of the history: %+v", run)
		}
	}
	if runs, err := p.r.History("network", "nowhere"); err != nil || runs != nil {
		t.Errorf("History of an instance never applied = %v, %v; want none", runs, err)
	}
	if err := os.WriteFile(filepath.Join(f.path(historyDir), stamp(time.Unix(0, 0))+".json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.r.History("network", "connectivity"); err == nil || !strings.Contains(err.Error(), stamp(time.Unix(0, 0))+".json") {
		t.Errorf("History with a broken record: %v; want an error naming it", err)
	}
}

// slowRepo is a repository of one stack, slow, whose resource "slow"
// (count: the input slow) runs a provisioner that says it started through
// a FIFO, then takes its time.
func slowRepo(t *testing.T, fifo string) string {
	return writeRepo(t, "slow", "inputs:\n  slow: \"0\"\n  fifo: "+fifo+"\n", `variable "slow" { type = string }
variable "fifo" { type = string }
resource "terraform_data" "base" { input = "base" }
resource "terraform_data" "slow" {
  count = tonumber(var.slow)
  input = "slow"
  provisioner "local-exec" {
    command = "if [ -p '${var.fifo}' ]; then echo started > '${var.fifo}'; exec sleep 20; fi"
  }
}
`)
}

// startedFifo makes the FIFO through which slowRepo's provisioner says
// it started.
func startedFifo(t *testing.T) string {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return fifo
}

// waitStarted waits until slowRepo's provisioner says, through fifo,
// that it started: terraform is then mid-apply.
func waitStarted(t *testing.T, fifo string) {
	t.Helper()
	fh, err := os.Open(fifo) // until the provisioner opens it
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(fh).ReadString('\n')
	fh.Close()
	if line != "started\n" {
		t.Fatalf("the provisioner said %q, %v", line, err)
	}
}

// writeRepo writes a repository of one stack, per environment (dev).
func writeRepo(t *testing.T, stack, inputs, mainTF string) string {
	dir := t.TempDir()
	files := map[string]string{
		"teams.yaml":                      "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: platform\n    members: [{user: ann, role: admin}]\n",
		"socle.yaml":                      "apiVersion: socle.dev/v1\nkind: Platform\nmetadata: {name: acme}\nenvironments:\n  - {name: dev, runtime: {type: local}, sync: auto}\n",
		"stacks/" + stack + "/stack.yaml": "apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\n" + inputs,
		"stacks/" + stack + "/main.tf":    mainTF,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestKilledMidApply: a socle (another process) applying a plan is killed
// while terraform runs. Its lock does not block the next run; the run is
// reported Interrupted; the state is intact; the old plan is never applied
// again; a fresh plan applies.
func TestKilledMidApply(t *testing.T) {
	fifo := startedFifo(t)
	p := &planner{t: t, repo: slowRepo(t, fifo), r: newRunner(t)}
	p.plan()
	p.apply("slow", "dev")
	base := p.state("slow", "dev")
	edit(t, p.repo, "stacks/slow/stack.yaml", `slow: "0"`, `slow: "1"`)
	res, _ := p.plan()
	x := res["slow@dev"]
	if x.Summary.Add != 1 {
		t.Fatalf("plan of the slow resource: %s", x.Summary)
	}

	job, _ := json.Marshal(map[string]any{"Repo": p.repo, "Dir": p.r.Dir, "Terraform": p.r.Terraform, "Stack": "slow", "Instance": "dev", "Approved": approved(x)})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STACK_TEST_APPLY="+string(job))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitStarted(t, fifo) // terraform is mid-apply
	h, held, err := p.r.Holder("slow", "dev")
	if err != nil || !held || h.PID != cmd.Process.Pid || h.Since.IsZero() {
		t.Fatalf("Holder mid-apply = %+v, %v, %v; want the child, pid %d", h, held, err, cmd.Process.Pid)
	}
	// Mid-apply the child's log has no outcome line yet.
	if logs, err := p.r.Logs("slow", "dev"); err != nil || len(logs) == 0 || logs[0].Kind != LogApply || logs[0].Ended || p.r.LogEnded("slow", "dev", logs[0].Name) {
		t.Errorf("logs mid-apply: %+v %v, want the newest an apply not ended", logs, err)
	}
	if _, _, err := p.r.Unlock("slow", "dev", false); !errors.Is(err, ErrLiveHolder) {
		t.Errorf("Unlock of a live holder without force: %v", err)
	}
	if r := p.applyAs("slow", "dev", approved(x)); r.Reason != ReasonLocked {
		t.Errorf("apply while the child applies: %s %s", r.Status, r.Reason)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	os.Remove(fifo) // the provisioner now does nothing

	if _, held, err := p.r.Holder("slow", "dev"); err != nil || held {
		t.Errorf("after the holder was killed, Holder says held: %v %v", held, err)
	}
	// The old plan is refused: the run it started was interrupted.
	if r := p.applyAs("slow", "dev", approved(x)); r.Status != RunRefused || r.Reason != ReasonAlreadyApplied {
		t.Errorf("the interrupted plan again: %s %s: %s", r.Status, r.Reason, r.Message)
	}
	last, ok, err := p.r.LastRun("slow", "dev")
	if err != nil || !ok || last.Status != RunInterrupted || last.Reason != ReasonInterrupted || last.PlanID != x.PlanID || last.Holder.PID != cmd.Process.Pid {
		t.Errorf("LastRun = %+v, %v, %v; want the child's run, interrupted", last, ok, err)
	}
	if st := p.state("slow", "dev"); !strings.Contains(st, `"name": "base"`) {
		t.Errorf("the state lost base after the crash:\n%s\n(before: %s)", st, base)
	}
	res, _ = p.plan()
	y := res["slow@dev"]
	if y.Status != StatusPlanned || y.PlanID == x.PlanID {
		t.Fatalf("a fresh plan after the crash: %s %s", y.Status, y.Message)
	}
	p.apply("slow", "dev")
	if st := p.state("slow", "dev"); strings.Count(st, `"name": "slow"`) != 1 {
		t.Errorf("after the fresh apply the state has %d slow resources", strings.Count(st, `"name": "slow"`))
	}
	if res, _ := p.plan(); res["slow@dev"].Status != StatusNoChanges {
		t.Errorf("after the fresh apply: %s", res["slow@dev"].Status)
	}
	noSecretUnder(t, p.r.Dir)
}

// TestUnlock: who holds an instance is readable; an admin's unlock of a
// live holder is refused without force; with force the holder loses its
// lease (and would stop its terraform), and the next run goes ahead.
func TestUnlock(t *testing.T) {
	p := newPlanner(t)
	le, err := p.r.lock(context.Background(), "network", "connectivity")
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	h, held, err := p.r.Holder("network", "connectivity")
	if err != nil || !held || h.PID != os.Getpid() || h.Since.IsZero() {
		t.Fatalf("Holder = %+v, %v, %v", h, held, err)
	}
	if _, held, err := p.r.Unlock("network", "connectivity", false); !held || !errors.Is(err, ErrLiveHolder) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("Unlock without force: %v, %v", held, err)
	}
	repo := load(t, p.repo)
	if r := p.r.Plan(context.Background(), repo, os.DirFS(p.repo), repo.Stack("network"), "connectivity"); r.Reason != ReasonLocked {
		t.Errorf("plan while held: %s %s", r.Status, r.Reason)
	}
	if was, held, err := p.r.Unlock("network", "connectivity", true); err != nil || !held || was.PID != os.Getpid() {
		t.Errorf("forced Unlock = %+v, %v, %v", was, held, err)
	}
	<-le.Lost()
	if r := p.r.Plan(context.Background(), repo, os.DirFS(p.repo), repo.Stack("network"), "connectivity"); r.Status != StatusPlanned {
		t.Errorf("plan after the unlock: %s %s: %s", r.Status, r.Reason, r.Message)
	}
	if _, held, err := p.r.Unlock("network", "connectivity", false); err != nil || held {
		t.Errorf("Unlock of a free instance: %v, %v", held, err)
	}
}

// TestCrashAfterApplyBeforeRecord: socle stopped after terraform applied
// and before it recorded the run and the outputs (the files are left as
// such a crash leaves them). The next run reports the apply interrupted
// and records the outputs from the state, so that dependents get them
// though the next plan has nothing to apply.
func TestCrashAfterApplyBeforeRecord(t *testing.T) {
	p := newPlanner(t)
	p.plan()
	run := p.apply("network", "connectivity")
	dir := instanceDir(p.r.Dir, "network", "connectivity")
	run.Status, run.Reason, run.Outputs = RunApplying, "", nil
	if err := writeJSON(filepath.Join(dir, runFile), run); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, outputsFile+sealedExt)); err != nil {
		t.Fatal(err)
	}
	res, _ := p.plan()
	if n := res["network@connectivity"]; n.Status != StatusNoChanges {
		t.Errorf("network after the crash: %s %s", n.Status, n.Summary)
	}
	if last, _, _ := p.r.LastRun("network", "connectivity"); last.Status != RunInterrupted {
		t.Errorf("last run: %s, want Interrupted", last.Status)
	}
	outs, ok, err := AppliedOutputs{Dir: p.r.Dir, Secret: testSecret}.Outputs("network", "connectivity")
	if err != nil || !ok || outs["key"].Value != secret || !outs["key"].Sensitive || outs["cidr"].Value != "10.0.0.0/16" {
		t.Errorf("outputs after the crash: %v, %v, %v", outs, ok, err)
	}
	// The dependents were planned in the same run, before the outputs were
	// back (the upstream's recovery runs under its own lock): the next
	// plan has them.
	res, _ = p.plan()
	if dev := res["app-zone@dev"]; dev.Status != StatusPlanned || len(dev.Pending) != 0 {
		t.Errorf("app-zone@dev: %s, pending %v", dev.Status, dev.Pending)
	}
}

// TestForcedUnlockStopsTheApply: an admin's forced unlock takes the lock
// from a live apply, which stops its terraform and says why; the next
// plan goes ahead.
func TestForcedUnlockStopsTheApply(t *testing.T) {
	fifo := startedFifo(t)
	p := &planner{t: t, repo: slowRepo(t, fifo), r: newRunner(t)}
	edit(t, p.repo, "stacks/slow/stack.yaml", `slow: "0"`, `slow: "1"`)
	res, _ := p.plan()
	done := make(chan Run)
	go func() { done <- p.applyAs("slow", "dev", approved(res["slow@dev"])) }()
	waitStarted(t, fifo)
	os.Remove(fifo)
	if _, held, err := p.r.Unlock("slow", "dev", true); err != nil || !held {
		t.Fatalf("forced Unlock: %v, %v", held, err)
	}
	run := <-done
	if run.Status != RunFailed || run.Reason != ReasonUnlocked {
		t.Errorf("the apply unlocked under it: %s %s: %s", run.Status, run.Reason, run.Message)
	}
	if res, _ := p.plan(); res["slow@dev"].Status != StatusPlanned {
		t.Errorf("plan after the forced unlock: %s %s", res["slow@dev"].Status, res["slow@dev"].Message)
	}
}

// TestStoppedMidApply: socle stops (its context is cancelled) while
// terraform applies. The run is left Applying, as a kill leaves it, and
// the next run of the instance recovers it the same way: Interrupted,
// with the summary of its plan, the plan discarded, a fresh plan next.
func TestStoppedMidApply(t *testing.T) {
	fifo := startedFifo(t)
	p := &planner{t: t, repo: slowRepo(t, fifo), r: newRunner(t)}
	edit(t, p.repo, "stacks/slow/stack.yaml", `slow: "0"`, `slow: "1"`)
	res, _ := p.plan()
	x := res["slow@dev"]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Run)
	go func() { done <- p.r.Apply(ctx, load(t, p.repo).Stack("slow"), "dev", approved(x)) }()
	waitStarted(t, fifo)
	os.Remove(fifo)
	cancel()
	run := <-done
	if run.Status != RunApplying || run.PlanID != x.PlanID {
		t.Errorf("the apply socle stopped during: %s %s: %s; want still Applying", run.Status, run.Reason, run.Message)
	}
	if last, _, _ := p.r.LastRun("slow", "dev"); last.Status != RunApplying {
		t.Errorf("recorded %s, want Applying until the next run recovers it", last.Status)
	}
	res, _ = p.plan()
	if y := res["slow@dev"]; y.Status != StatusPlanned || y.PlanID == x.PlanID {
		t.Errorf("the plan after the stop: %s %s", y.Status, y.PlanID)
	}
	last, _, err := p.r.LastRun("slow", "dev")
	if err != nil || last.Status != RunInterrupted || last.Reason != ReasonInterrupted || last.PlanID != x.PlanID || last.Summary != x.Summary {
		t.Errorf("LastRun = %+v, %v; want plan %s interrupted, summary %s", last, err, x.PlanID, x.Summary)
	}
	if r := p.applyAs("slow", "dev", approved(x)); r.Status != RunRefused {
		t.Errorf("the stopped plan again: %s %s", r.Status, r.Reason)
	}
}

// TestOutputHoldingASecretInput: an output terraform does not mark
// sensitive but whose value holds a secret input (terraform_data loses
// the mark) is redacted wherever it is shown, as in the plan.
func TestOutputHoldingASecretInput(t *testing.T) {
	const token = "tok-very-secret-value"
	repo := writeRepo(t, "leaky", "inputs:\n  token: "+token+"\n", `variable "token" {
  type      = string
  sensitive = true
}
resource "terraform_data" "t" { input = var.token }
output "echo" { value = terraform_data.t.output }
output "plain" { value = "visible" }
`)
	p := &planner{t: t, repo: repo, r: newRunner(t)}
	res, _ := p.plan()
	if js, _ := json.Marshal(res); strings.Contains(string(js), token) {
		t.Fatalf("the plan shows the token: %s", js)
	}
	run := p.apply("leaky", "dev")
	if run.Outputs["echo"] != Redacted || run.Outputs["plain"] != `"visible"` {
		t.Errorf("run outputs = %v", run.Outputs)
	}
	shown, _, _ := p.r.ShowOutputs("leaky", "dev")
	if shown["echo"] != Redacted {
		t.Errorf("ShowOutputs = %v", shown)
	}
	// A later apply that does not change the output keeps it redacted.
	edit(t, p.repo, "stacks/leaky/main.tf", `"visible"`, `"seen"`)
	p.plan()
	run = p.apply("leaky", "dev")
	if run.Outputs["echo"] != Redacted || run.Outputs["plain"] != `"seen"` {
		t.Errorf("second run outputs = %v", run.Outputs)
	}
	err := filepath.WalkDir(p.r.Dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.Contains(path, "/work/") {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), token) {
			t.Errorf("the token is in clear in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOwnBackend: a stack with its own backend keeps its state there, in
// the user's hands: socle neither seals it nor backs it up; its outputs
// are recorded (sealed) for dependents all the same.
func TestOwnBackend(t *testing.T) {
	own := filepath.Join(t.TempDir(), "own.tfstate")
	repo := writeRepo(t, "mine", "backend: own\ninputs:\n  name: x\n", `terraform {
  backend "local" { path = "`+own+`" }
}
variable "name" { type = string }
resource "terraform_data" "r" { input = var.name }
output "name" { value = terraform_data.r.output }
`)
	p := &planner{t: t, repo: repo, r: newRunner(t)}
	p.plan()
	p.apply("mine", "dev")
	edit(t, p.repo, "stacks/mine/stack.yaml", "name: x", "name: y")
	p.plan()
	p.apply("mine", "dev")
	b, err := os.ReadFile(own)
	if err != nil || !strings.Contains(string(b), `"value": "y"`) {
		t.Errorf("the own backend's state: %v\n%s", err, b)
	}
	dir := instanceDir(p.r.Dir, "mine", "dev")
	for _, name := range []string{stateFile, stateFile + sealedExt, backupsDir} {
		if exists(filepath.Join(dir, name)) {
			t.Errorf("socle keeps %s for a stack with its own backend", name)
		}
	}
	outs, ok, err := AppliedOutputs{Dir: p.r.Dir, Secret: testSecret}.Outputs("mine", "dev")
	if err != nil || !ok || outs["name"].Value != "y" {
		t.Errorf("outputs: %v, %v, %v", outs, ok, err)
	}
}

// TestApplyErrorRedacted: terraform's error quotes a secret input (through
// a value that lost its sensitive mark); the run's message does not.
func TestApplyErrorRedacted(t *testing.T) {
	const token = "tok-very-secret-value"
	repo := writeRepo(t, "fails", "inputs:\n  token: "+token+"\n", `variable "token" {
  type      = string
  sensitive = true
}
resource "terraform_data" "t" { input = var.token }
resource "terraform_data" "fail" {
  input = "x"
  provisioner "local-exec" {
    command = "echo ${terraform_data.t.output}; exit 3"
  }
}
`)
	p := &planner{t: t, repo: repo, r: newRunner(t)}
	res, _ := p.plan()
	run := p.applyAs("fails", "dev", approved(res["fails@dev"]))
	if run.Status != RunFailed || run.Reason != ReasonApplyFailed || !strings.Contains(run.Message, "exit status 3") {
		t.Fatalf("%s %s: %s", run.Status, run.Reason, run.Message)
	}
	if strings.Contains(run.Message, token) || !strings.Contains(run.Message, Redacted) {
		t.Errorf("the message: %s", run.Message)
	}
	if last, _, _ := p.r.LastRun("fails", "dev"); last.Status != RunFailed || strings.Contains(last.Message, token) {
		t.Errorf("the recorded run: %s: %s", last.Status, last.Message)
	}
}

// TestPlanErrorRedacted: a plan that fails on a precondition whose message
// quotes a secret input (made plain with nonsensitive, through a local)
// says why without it: terraform prints the value in clear there.
func TestPlanErrorRedacted(t *testing.T) {
	const token = "tok-very-secret-plan-value"
	repo := writeRepo(t, "fails", "inputs:\n  token: "+token+"\n", `variable "token" {
  type      = string
  sensitive = true
}
locals {
  plain = nonsensitive(var.token)
}
resource "terraform_data" "t" {
  input = "x"
  lifecycle {
    precondition {
      condition     = length(local.plain) > 100
      error_message = "the token ${local.plain} is too short"
    }
  }
}
`)
	r := newRunner(t)
	loaded, ps := spec.Load(os.DirFS(repo))
	if ps.Errors() > 0 {
		t.Fatal(ps)
	}
	got := r.Plan(context.Background(), loaded, os.DirFS(repo), loaded.Stack("fails"), "dev")
	if got.Status != StatusFailed || got.Reason != ReasonPlanFailed || !strings.Contains(got.Message, "is too short") {
		t.Fatalf("%s %s: %s", got.Status, got.Reason, got.Message)
	}
	if strings.Contains(got.Message, token) || !strings.Contains(got.Message, Redacted) {
		t.Errorf("the message: %s", got.Message)
	}
}
