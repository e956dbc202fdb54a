package stack

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/spec"
)

// The secret of testdata/repo's network stack: it must never be seen in a
// result, nor in what socle writes beside the state.
const secret = "s3cr3t-hub-key"

// terraformBin is the real terraform binary; the tests need it (this
// machine kind has it in /usr/local/bin) and say so when it is missing.
func terraformBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("no terraform on PATH: the stack tests run the real binary")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// checkout copies testdata/repo into a temporary directory the test may
// change, as a commit would.
func checkout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := os.CopyFS(dir, os.DirFS("testdata/repo"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func load(t *testing.T, dir string) *spec.Repo {
	t.Helper()
	repo, ps := spec.Load(os.DirFS(dir))
	if ps.Errors() > 0 {
		t.Fatalf("the repository does not validate:\n%v", ps)
	}
	return repo
}

func edit(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

type planner struct {
	t    *testing.T
	repo string
	r    *Runner
	last map[string]Result
}

// testSecret stands for the data directory's secret.key.
var testSecret = []byte("the data directory's secret, 32 bytes and more")

func newRunner(t *testing.T) *Runner {
	return &Runner{Dir: filepath.Join(t.TempDir(), "stacks"), Terraform: terraformBin(t), Secret: testSecret}
}

func newPlanner(t *testing.T) *planner {
	return &planner{t: t, repo: checkout(t), r: newRunner(t)}
}

// plan plans every instance; ran is how many terraform processes it took.
func (p *planner) plan() (byKey map[string]Result, ran int64) {
	p.t.Helper()
	repo := load(p.t, p.repo)
	before := p.r.Runs()
	results := p.r.PlanAll(context.Background(), repo, os.DirFS(p.repo), Targets(repo, nil))
	byKey = map[string]Result{}
	for _, res := range results {
		if res.Status == StatusFailed {
			p.t.Fatalf("%s @ %s failed: %s: %s", res.Stack, res.Instance, res.Reason, res.Message)
		}
		byKey[res.Stack+"@"+res.Instance] = res
	}
	p.last = byKey
	return byKey, p.r.Runs() - before
}

// apply applies the last plan of an instance, as approved.
func (p *planner) apply(stack, instance string) Run {
	p.t.Helper()
	res := p.last[stack+"@"+instance]
	repo := load(p.t, p.repo)
	run := p.r.Apply(context.Background(), repo.Stack(stack), instance, Approved{PlanID: res.PlanID, Hash: res.Hash})
	if run.Status != RunApplied {
		p.t.Fatalf("apply %s @ %s: %s %s: %s", stack, instance, run.Status, run.Reason, run.Message)
	}
	return run
}

// TestPlan plans testdata/repo from an empty state: the network is
// created, with its secret redacted; the app zones wait for it.
func TestPlan(t *testing.T) {
	p := newPlanner(t)
	res, _ := p.plan()
	var results []Result
	for _, k := range []string{"network@connectivity", "app-zone@dev", "app-zone@prod"} {
		r := res[k]
		if (r.PlanID != "") != (r.Status == StatusPlanned) {
			t.Errorf("%s: %s with plan %q", k, r.Status, r.PlanID)
		}
		r.PlanID = "" // each plan file is new (terraform stamps it)
		results = append(results, r)
	}
	got, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/plan-empty.json", append(got, '\n'))
	net := res["network@connectivity"]
	if net.Status != StatusPlanned || net.Summary != (Summary{Add: 3}) {
		t.Errorf("network: %s %s, want 3 to add", net.Status, net.Summary)
	}
	if az := res["app-zone@dev"]; az.Status != StatusWaiting || az.Reason != ReasonUpstreamNotApplied || len(az.Pending) != 3 {
		t.Errorf("app-zone@dev: %s %s, pending %v: want it waiting for network's three outputs", az.Status, az.Reason, az.Pending)
	}
	noSecretIn(t, string(got), "the results")
	noSecretUnder(t, p.r.Dir)
}

// noSecretIn fails when the network's secret is in text.
func noSecretIn(t *testing.T, text, where string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("the secret is in %s", where)
	}
}

// noSecretUnder checks every file under dir but the stack's own (the
// saved plan, the inputs, the state and the outputs are sealed).
func noSecretUnder(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if strings.Contains(p, "/work/") { // the repository's files: the test planted the secret there
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil {
			noSecretIn(t, string(b), p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestContentHash: a commit that only touches an app runs no terraform;
// a change of a stack replans that stack only; an upstream whose outputs
// change replans its dependents, and only then.
func TestContentHash(t *testing.T) {
	p := newPlanner(t)
	first, ran := p.plan()
	if ran == 0 {
		t.Fatal("the first plan ran no terraform")
	}

	edit(t, p.repo, "apps/web/score.yaml", "image: nginx", "variables: {A: b}\n    image: nginx")
	again, ran := p.plan()
	if ran != 0 {
		t.Errorf("a commit that touches only an app ran terraform %d times, want 0", ran)
	}
	if !again["network@connectivity"].Cached || again["network@connectivity"].Hash != first["network@connectivity"].Hash {
		t.Error("network was planned again for an app's change")
	}

	// The upstream applies: its dependents now have their inputs.
	p.apply("network", "connectivity")
	applied, ran := p.plan()
	if ran == 0 {
		t.Error("the state of network changed, yet nothing was planned again")
	}
	dev := applied["app-zone@dev"]
	if dev.Status != StatusPlanned || dev.Summary.Add != 1 || len(dev.Pending) != 0 {
		t.Fatalf("app-zone@dev after network applied: %s %s %v", dev.Status, dev.Summary, dev.Pending)
	}
	if dev.Inputs["key"] != Redacted || !strings.HasPrefix(dev.Inputs["hub"], `"`) || dev.Inputs["note"] != `"hub 10.0.0.0/16 in apps-nonprod"` {
		t.Errorf("app-zone@dev inputs = %v", dev.Inputs)
	}
	if n := applied["network@connectivity"]; n.Status != StatusNoChanges {
		t.Errorf("network after its apply: %s %s", n.Status, n.Summary)
	}
	js, _ := json.Marshal(applied)
	noSecretIn(t, string(js), "the results after the apply")

	// A change of the module app-zone calls replans app-zone only.
	edit(t, p.repo, "modules/naming/main.tf", `"subnet-${var.env}"`, `"net-${var.env}"`)
	mod, ran := p.plan()
	if ran == 0 || mod["app-zone@dev"].Cached || mod["app-zone@dev"].Hash == applied["app-zone@dev"].Hash {
		t.Error("a change of a module app-zone calls did not replan it")
	}
	if !mod["network@connectivity"].Cached {
		t.Error("network was replanned for a module it does not call")
	}

	// network's output changes (cidr): app-zone, which reads it, is
	// planned again after the apply, with the new value.
	edit(t, p.repo, "stacks/network/stack.yaml", "10.0.0.0/16", "10.1.0.0/16")
	changed, _ := p.plan()
	if changed["network@connectivity"].Cached || changed["app-zone@dev"].Hash != mod["app-zone@dev"].Hash {
		t.Error("network must be replanned, app-zone not yet: network's new cidr is not applied")
	}
	p.apply("network", "connectivity")
	after, _ := p.plan()
	if after["app-zone@dev"].Cached || after["app-zone@dev"].Hash == mod["app-zone@dev"].Hash {
		t.Error("an upstream output changed, but its dependent was not planned again")
	}
	if got := after["app-zone@dev"].Inputs["note"]; got != `"hub 10.1.0.0/16 in apps-nonprod"` {
		t.Errorf("note = %s, want the new cidr", got)
	}
}

// TestChangeActions: update in place, replace, destroy and create, each
// with the attributes that change, from terraform's own plans.
func TestChangeActions(t *testing.T) {
	p := newPlanner(t)
	p.plan()
	p.apply("network", "connectivity")
	edit(t, p.repo, "stacks/network/stack.yaml", "10.0.0.0/16", "10.2.0.0/16")
	edit(t, p.repo, "stacks/network/main.tf", `default = "1"`, `default = "2"`)
	edit(t, p.repo, "stacks/network/main.tf", "resource \"terraform_data\" \"old\" {\n  input = \"to be removed\"\n}\n",
		"resource \"terraform_data\" \"new\" {\n  input = \"added\"\n}\n")
	res, _ := p.plan()
	net := res["network@connectivity"]
	if net.Summary != (Summary{Add: 1, Change: 1, Replace: 1, Destroy: 1}) {
		t.Errorf("summary = %s", net.Summary)
	}
	got, err := json.MarshalIndent(net, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// terraform_data's ids are random: the golden file has a stand-in.
	got = uuid.ReplaceAll(got, []byte("<uuid>"))
	got = planID.ReplaceAll(got, []byte(`"planId": "<plan>"`))
	golden.Check(t, "testdata/plan-actions.json", append(got, '\n'))
	noSecretIn(t, string(got), "the change list")
}

var (
	uuid   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	planID = regexp.MustCompile(`"planId": "sha256:[0-9a-f]{64}"`)
)

// TestPlanBounds: a plan over its size or its time fails with the reason,
// and leaves no saved plan to apply.
func TestPlanBounds(t *testing.T) {
	tf := terraformBin(t)
	dir := checkout(t)
	repo := load(t, dir)
	net := repo.Stack("network")
	for _, tt := range []struct {
		name   string
		r      *Runner
		reason Reason
	}{
		{"output cap", &Runner{MaxShow: 1024}, ReasonTooLarge},
		{"timeout", &Runner{Timeout: time.Nanosecond}, ReasonTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.Dir, tt.r.Terraform, tt.r.Secret = filepath.Join(t.TempDir(), "stacks"), tf, testSecret
			res := tt.r.Plan(context.Background(), repo, os.DirFS(dir), net, "connectivity")
			if res.Status != StatusFailed || res.Reason != tt.reason {
				t.Fatalf("%s %s: %s, want Failed %s", res.Status, res.Reason, res.Message, tt.reason)
			}
			for _, name := range []string{planFile, planFile + sealedExt} {
				if _, err := os.Stat(filepath.Join(instanceDir(tt.r.Dir, "network", "connectivity"), name)); err == nil {
					t.Errorf("a failed plan left %s", name)
				}
			}
		})
	}
}

// TestPlanFailures: terraform's own errors and a held lock are results
// with their reason, not errors of the whole run.
func TestPlanFailures(t *testing.T) {
	p := newPlanner(t)
	// HCL reads it; terraform refuses it (no such variable).
	edit(t, p.repo, "stacks/network/main.tf", "input            = \"peering\"", "input            = var.nope")
	repo := load(t, p.repo)
	res := p.r.Plan(context.Background(), repo, os.DirFS(p.repo), repo.Stack("network"), "connectivity")
	if res.Status != StatusFailed || res.Reason != ReasonPlanFailed || !strings.Contains(res.Message, `undeclared input variable`) {
		t.Errorf("%s %s: %s", res.Status, res.Reason, res.Message)
	}

	locks := filepath.Join(p.r.Dir, ".locks")
	if err := os.MkdirAll(locks, 0o700); err != nil {
		t.Fatal(err)
	}
	held, err := (&lease.File{Dir: locks}).TryAcquire(context.Background(), "network.connectivity", lease.Holder{PID: 4242, Host: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	res = p.r.Plan(context.Background(), repo, os.DirFS(p.repo), repo.Stack("network"), "connectivity")
	if res.Status != StatusFailed || res.Reason != ReasonLocked || !strings.Contains(res.Message, "pid 4242 on elsewhere") {
		t.Errorf("%s %s: %s", res.Status, res.Reason, res.Message)
	}
}

// countedOutputs counts the reads of each instance's outputs, from the
// real state files.
type countedOutputs struct {
	AppliedOutputs
	mu    sync.Mutex
	reads map[string]int
}

func (c *countedOutputs) Outputs(stack, instance string) (map[string]Output, bool, error) {
	c.mu.Lock()
	c.reads[stack+"@"+instance]++
	c.mu.Unlock()
	return c.AppliedOutputs.Outputs(stack, instance)
}

// TestPlanAllReadsStatesOnce: the instances that read one upstream
// (app-zone in dev and in prod read network's) read its state once per
// run, not once each.
func TestPlanAllReadsStatesOnce(t *testing.T) {
	dir := checkout(t)
	repo := load(t, dir)
	r := newRunner(t)
	outs := &countedOutputs{AppliedOutputs: AppliedOutputs{Dir: r.Dir, Secret: r.Secret}, reads: map[string]int{}}
	r.Outputs = outs
	targets := Targets(repo, func(s *spec.Stack, _ string) bool { return s.Name == "app-zone" })
	if len(targets) != 2 {
		t.Fatalf("targets = %v, want app-zone's two", targets)
	}
	for _, res := range r.PlanAll(context.Background(), repo, os.DirFS(dir), targets) {
		if res.Status != StatusWaiting {
			t.Errorf("%s @ %s: %s %s, want it waiting for network", res.Stack, res.Instance, res.Status, res.Message)
		}
	}
	if n := outs.reads["network@connectivity"]; n != 1 {
		t.Errorf("network's state was read %d times, want 1 (reads: %v)", n, outs.reads)
	}
}

// TestEnv: what would make a plan depend on the shell it was started
// from is not passed to terraform; the rest is.
func TestEnv(t *testing.T) {
	for _, k := range []string{"TF_VAR_cidr", "TF_CLI_ARGS", "TF_CLI_ARGS_plan", "TF_DATA_DIR", "TF_WORKSPACE", "TF_CLI_CONFIG_FILE"} {
		t.Setenv(k, "x")
	}
	env, err := (&Runner{Dir: t.TempDir()}).env()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"TF_VAR_cidr", "TF_CLI_ARGS", "TF_CLI_ARGS_plan", "TF_DATA_DIR", "TF_WORKSPACE"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s is passed to terraform", k)
		}
	}
	if env["TF_CLI_CONFIG_FILE"] != "x" || env["TF_PLUGIN_CACHE_DIR"] == "" {
		t.Errorf("TF_CLI_CONFIG_FILE = %q, TF_PLUGIN_CACHE_DIR = %q: want the user's and socle's", env["TF_CLI_CONFIG_FILE"], env["TF_PLUGIN_CACHE_DIR"])
	}
}

// TestOlderResultPlannedAgain: a result recorded by an older socle, whose
// cache key has no format (it lacks the masked before and after that
// policies judge), is planned again rather than shown as cached.
func TestOlderResultPlannedAgain(t *testing.T) {
	p := newPlanner(t)
	p.plan()
	if again, ran := p.plan(); ran != 0 || !again["network@connectivity"].Cached {
		t.Fatalf("the second plan ran terraform %d times", ran)
	}
	file := filepath.Join(instanceDir(p.r.Dir, "network", "connectivity"), "plan.json")
	c, ok := readCache(filepath.Dir(file))
	if !ok {
		t.Fatal("no recorded plan")
	}
	c.Key.Format = 0
	if err := writeJSON(file, c); err != nil {
		t.Fatal(err)
	}
	again, ran := p.plan()
	if ran == 0 || again["network@connectivity"].Cached {
		t.Errorf("the older result was shown again (%d terraform runs)", ran)
	}
}
