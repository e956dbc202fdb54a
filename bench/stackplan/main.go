// Command stackplan measures how socle plans infrastructure stacks at the
// size of a landing zone (issue 17's bench): it generates a platform
// repository, a real git repository, with -stacks stacks × -resources
// builtin terraform_data resources × 3 environments (dev, preprod, prod),
// every stack calling one shared local module (modules/shared), and prints:
//
//  1. the time `socle plan REPO --data DATA` takes to plan everything after
//     a commit that touches the shared module (socle's own bounded
//     parallelism, stack.Runner's default), beside the reference: `terraform
//     init && terraform plan` run instance by instance in one shell loop
//     (bash -c 'for …; do …; done'), and the ratio socle/loop;
//  2. the time of `socle plan` after a commit that touches one app only,
//     and the terraform processes it started (goal: none);
//  3. socle's peak memory during the plan-everything run.
//
// socle is the real binary, built from this tree into the temporary
// directory; `socle plan` is the command a user runs, and the only one
// that plans stacks today. Its data directory is kept between runs, so
// each plan finds the cache of the one before, as a user's would.
//
// How it counts and measures:
//
//   - terraform runs: PATH starts with a directory holding a `terraform`
//     shell script that appends its first argument (the subcommand) to a
//     file and execs the real terraform. socle's CLI does not print
//     stack.Runner.Runs(), so the bench counts the processes themselves;
//     the loop goes through the same script, so both pay its cost (a
//     fork of sh per run). The `cached` flags of `socle plan -o json` are
//     checked against the count.
//   - peak memory: VmHWM of /proc/<socle's pid>/status, polled every -poll
//     while it runs (a lower bound: growth in the last interval before it
//     exits is missed). wait4's ru_maxrss is not used: Linux reports there
//     the largest of the process and its waited-for children (terraform),
//     and a Go parent starts children with CLONE_VM, so the parent's
//     resident set counts too. terraform's own memory is not socle's.
//   - CPU: user + system time of socle or of bash, their terraform
//     children included (wait4's rusage): on a shared machine it moves
//     less than the wall time. socle's own share (without terraform's)
//     is polled from /proc/<pid>/stat with VmHWM, a lower bound too.
//
// What the two sides do, and what differs: both start from a fresh
// terraform data directory per instance (socle copies the stack and its
// modules into a new working directory each plan; the loop gives each
// instance a new TF_DATA_DIR), the same TF_PLUGIN_CACHE_DIR and CLI
// configuration (an empty file), and the same state: none by default
// (no socle command applies a stack yet, stack.Runner.Apply has no
// caller, so no instance has one: every resource is planned "+ create"),
// or with -applied the state of a terraform apply of every instance, made
// by the bench before the timings and copied where socle and the loop
// read it (every resource is then "~ update"; `socle plan` runs without
// the data directory's secret, so it reads a state in clear).
// Both must plan the same number of changes, every resource's, or the
// bench stops. socle also resolves the inputs, copies the files, and runs
// `terraform version` (terraform-exec's check, once per instance) and
// `terraform show -json` of each saved plan, which it parses into the
// resource-level change list; the loop passes the inputs with -var, plans
// in the repository's stack directory with -out, and reads nothing back
// (-show adds `terraform show -json >/dev/null` to make it closer).
//
// Run it from the module root:
//
//	go run ./bench/stackplan [-stacks 50] [-resources 30] [-apps 3] [-runs 1] [-applied] [-show] [-keep]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/socle-dev/socle/bench/internal/build"
	"github.com/socle-dev/socle/bench/internal/peak"
)

func main() {
	var c config
	flag.IntVar(&c.Stacks, "stacks", 50, "stacks")
	flag.IntVar(&c.Resources, "resources", 30, "terraform_data resources per stack")
	flag.IntVar(&c.Apps, "apps", 3, "apps (a commit touches one)")
	flag.IntVar(&c.runs, "runs", 1, "timed runs of each measurement (the median is reported)")
	flag.StringVar(&c.dir, "dir", "", "where to work, a new or empty directory (default: a temporary one)")
	flag.BoolVar(&c.keep, "keep", false, "keep the working directory (repository, socle's data, the loop's directories)")
	flag.BoolVar(&c.loop, "loop", true, "run the reference shell loop")
	flag.BoolVar(&c.show, "show", false, "the loop also runs terraform show -json of each plan, as socle does")
	flag.BoolVar(&c.applied, "applied", false, "apply every instance first (with terraform, outside socle), so that plans update existing resources rather than create them")
	flag.DurationVar(&c.poll, "poll", 5*time.Millisecond, "how often socle's VmHWM is read")
	flag.StringVar(&c.terraform, "terraform", "", "the terraform binary (default: terraform on PATH)")
	flag.Parse()
	log.SetFlags(0)
	if c.Stacks < 1 || c.Resources < 1 || c.Apps < 1 || c.runs < 1 {
		log.Fatal("stackplan: -stacks, -resources, -apps and -runs must be ≥ 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{config: c, out: os.Stdout}
	err := b.setup(ctx)
	if err == nil {
		_, err = b.run(ctx)
	}
	b.cleanup(err != nil)
	if err != nil {
		log.Fatalf("stackplan: %v", err)
	}
}

type config struct {
	sizes
	runs      int
	dir       string
	keep      bool
	loop      bool
	show      bool
	applied   bool
	poll      time.Duration
	terraform string
}

type bench struct {
	config
	out       io.Writer
	tmp       string // everything the bench writes
	ownTmp    bool
	root      string // socle's module
	socle     string // the binary built from it
	repo      string // the platform repository (its working tree)
	data      string // socle's data directory
	binDir    string // the terraform wrapper, first on PATH
	countFile string // where the wrapper counts
	env       []string
	rev       int // the shared module's revision
	edit      int // the edited app's revision
}

// setup builds socle, writes the wrapper and the repository, and commits it.
func (b *bench) setup(ctx context.Context) error {
	var err error
	if b.root, err = build.ModuleRoot(ctx, "stackplan"); err != nil {
		return err
	}
	tf := b.terraform
	if tf == "" {
		if tf, err = exec.LookPath("terraform"); err != nil {
			return errors.New("terraform is not on PATH (or name it with -terraform)")
		}
	}
	if tf, err = filepath.Abs(tf); err != nil {
		return err
	}
	b.tmp = b.dir
	if b.tmp != "" {
		// A directory of an earlier run holds its plans' cache: the
		// first plan would come from it.
		if entries, err := os.ReadDir(b.tmp); err == nil && len(entries) > 0 {
			return fmt.Errorf("-dir %s is not empty", b.tmp)
		}
	} else {
		if b.tmp, err = os.MkdirTemp("", "stackplan-"); err != nil {
			return err
		}
		b.ownTmp = true
	}
	b.repo = filepath.Join(b.tmp, "repo")
	b.data = filepath.Join(b.tmp, "data")
	b.binDir = filepath.Join(b.tmp, "bin")
	b.countFile = filepath.Join(b.tmp, "terraform-runs")
	b.socle = filepath.Join(b.binDir, "socle")
	for _, d := range []string{b.data, b.binDir, filepath.Join(b.tmp, "plugin-cache")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n# stackplan: counts terraform runs by subcommand\necho \"$1\" >> %s\nexec %s \"$@\"\n", shellQuote(b.countFile), shellQuote(tf))
	if err := os.WriteFile(filepath.Join(b.binDir, "terraform"), []byte(wrapper), 0o755); err != nil {
		return err
	}
	cliConfig := filepath.Join(b.tmp, "terraformrc")
	if err := os.WriteFile(cliConfig, nil, 0o644); err != nil {
		return err
	}
	// The environment both sides run in: the wrapper first on PATH, one
	// plugin cache, one (empty) CLI configuration; nothing of the
	// caller's terraform settings.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TF_") || k == "PATH" || k == "CHECKPOINT_DISABLE" {
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env, "PATH="+b.binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TF_PLUGIN_CACHE_DIR="+filepath.Join(b.tmp, "plugin-cache"),
		"TF_CLI_CONFIG_FILE="+cliConfig,
		"CHECKPOINT_DISABLE=1")

	fmt.Fprintf(b.out, "stackplan: %d stacks × %d terraform_data × %d environments (%d instances, %d resources), %d apps\n",
		b.Stacks, b.Resources, len(envs), b.instances(), b.instances()*b.Resources, b.Apps)
	state := "none (no socle command applies a stack yet): every resource is planned to be created"
	if b.applied {
		state = "applied by terraform before the timings (-applied): a module commit updates every resource"
	}
	loop := "terraform init && terraform plan -out"
	if b.show {
		loop += " && terraform show -json (-show)"
	}
	fmt.Fprintf(b.out, "state: %s\nloop: %s, instance by instance, fresh TF_DATA_DIR each\n", state, loop)
	b.printMachine(ctx, tf)

	t := time.Now()
	if err := build.Socle(ctx, b.root, b.socle); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "built socle in %s\n", time.Since(t).Round(time.Millisecond))

	t = time.Now()
	b.rev = 1
	files, err := generate(b.repo, b.sizes, b.rev)
	if err != nil {
		return err
	}
	if err := b.git(ctx, "init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := b.commit(ctx, "stackplan: the platform"); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "generated and committed %d files in %s\n\n", files, time.Since(t).Round(time.Millisecond))
	return nil
}

func (b *bench) cleanup(failed bool) {
	if b.tmp == "" {
		return
	}
	if b.keep || failed || !b.ownTmp {
		fmt.Fprintf(b.out, "\nkept %s\n", b.tmp)
		return
	}
	os.RemoveAll(b.tmp)
}

// figures is what one run measured, for the test.
type figures struct {
	everything, oneApp, loop *measure
}

// run measures: a first plan (everything, cold), then per run a commit to
// the shared module planned by socle and by the loop, and a commit to one
// app planned by socle.
func (b *bench) run(ctx context.Context) ([]figures, error) {
	if b.applied {
		if err := b.applyAll(ctx); err != nil {
			return nil, err
		}
	}
	first, err := b.plan(ctx)
	if err != nil {
		return nil, err
	}
	if err := first.expect(b.instances(), 0); err != nil {
		return nil, fmt.Errorf("first plan: %w", err)
	}
	fmt.Fprintf(b.out, "first plan (nothing cached yet): %s\n\n", first)

	var all []figures
	for i := range b.runs {
		var f figures
		b.rev++
		if err := os.WriteFile(filepath.Join(b.repo, filepath.FromSlash(moduleFile)), []byte(moduleTF(b.rev)), 0o644); err != nil {
			return nil, err
		}
		if err := b.commit(ctx, fmt.Sprintf("shared: revision %d", b.rev)); err != nil {
			return nil, err
		}
		if f.everything, err = b.plan(ctx); err != nil {
			return nil, err
		}
		if err := f.everything.expect(b.instances(), 0); err != nil {
			return nil, fmt.Errorf("run %d, commit to %s: %w", i+1, moduleFile, err)
		}
		if n := f.everything.add + f.everything.change; n != b.instances()*b.Resources {
			return nil, fmt.Errorf("run %d, commit to %s: %d resource changes planned, want every resource's (%d)", i+1, moduleFile, n, b.instances()*b.Resources)
		}
		fmt.Fprintf(b.out, "run %d: commit to %s: socle plan %s\n", i+1, moduleFile, f.everything)
		if b.loop {
			if f.loop, err = b.shellLoop(ctx); err != nil {
				return nil, err
			}
			fmt.Fprintf(b.out, "run %d: same commit, shell loop     %s\n", i+1, f.loop)
			if f.loop.add != f.everything.add || f.loop.change != f.everything.change {
				return nil, fmt.Errorf("run %d: socle and the loop planned different changes", i+1)
			}
		}

		b.edit++
		app := appName(0)
		if err := os.WriteFile(filepath.Join(b.repo, "apps", app, "main.go"), []byte(appMain(app, b.edit)), 0o644); err != nil {
			return nil, err
		}
		if err := b.commit(ctx, fmt.Sprintf("%s: edit %d", app, b.edit)); err != nil {
			return nil, err
		}
		if f.oneApp, err = b.plan(ctx); err != nil {
			return nil, err
		}
		if err := f.oneApp.expect(0, b.instances()); err != nil {
			return nil, fmt.Errorf("run %d, commit to apps/%s: %w", i+1, app, err)
		}
		fmt.Fprintf(b.out, "run %d: commit to apps/%s/main.go: socle plan %s\n", i+1, app, f.oneApp)
		all = append(all, f)
	}

	pick := func(get func(figures) *measure) *measure {
		var ms []*measure
		for _, f := range all {
			if m := get(f); m != nil {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			return nil
		}
		slices.SortFunc(ms, func(a, b *measure) int { return int(a.wall - b.wall) })
		return ms[len(ms)/2]
	}
	every, one, loop := pick(func(f figures) *measure { return f.everything }), pick(func(f figures) *measure { return f.oneApp }), pick(func(f figures) *measure { return f.loop })
	fmt.Fprintf(b.out, "\nmedian of %d run(s), %d instances of %d resources:\n", b.runs, b.instances(), b.Resources)
	fmt.Fprintf(b.out, "  plan everything after a commit to the shared module\n")
	fmt.Fprintf(b.out, "    socle plan (parallel 2, stack.Runner's default)  %s\n", every)
	if loop != nil {
		fmt.Fprintf(b.out, "    shell loop, instance by instance               %s\n", loop)
		fmt.Fprintf(b.out, "    ratio socle/loop                               %.2f wall, %.2f CPU\n", ratio(every.wall, loop.wall), ratio(every.cpu, loop.cpu))
	}
	fmt.Fprintf(b.out, "  commit to one app only: socle plan %s wall, %d terraform runs (goal: 0), %d/%d instances shown from the cache\n", sec(one.wall), one.runs.total(), one.cached, b.instances())
	fmt.Fprintf(b.out, "  socle's peak memory (VmHWM, polled every %s) planning everything: %s (largest of the runs: %s)\n", b.poll, peak.Format(every.hwm), peak.Format(maxHWM(all)))
	fmt.Fprintf(b.out, "  the bench's own peak memory (VmHWM): %s\n", peak.String())
	return all, nil
}

// measure is one timed command.
type measure struct {
	wall, cpu time.Duration
	// own is socle's CPU time without terraform's (polled: a lower
	// bound), -1 unknown or not socle.
	own  time.Duration
	hwm  int64 // kB, socle only; -1 unknown
	runs runCount
	// socle's results
	planned, cached, failed int
	instances               int
	firstFailure            string
	// add and change sum the planned resource changes (the cached
	// instances' included): both sides must plan the same.
	add, change int
}

func (m *measure) String() string {
	s := fmt.Sprintf("%s wall, %s CPU", sec(m.wall), sec(m.cpu))
	if m.own >= 0 {
		s += fmt.Sprintf(" (socle's own %s)", sec(m.own))
	}
	s += fmt.Sprintf(", %d terraform runs (%s)", m.runs.total(), m.runs)
	s += fmt.Sprintf("; %d to add, %d to change", m.add, m.change)
	if m.instances > 0 {
		s += fmt.Sprintf("; %d instances: %d planned, %d cached, %d failed; peak %s", m.instances, m.planned, m.cached, m.failed, peak.Format(m.hwm))
	}
	return s
}

// expect checks that socle planned planned instances and showed cached
// from its cache, none failing, and that the terraform runs counted agree.
func (m *measure) expect(planned, cached int) error {
	switch {
	case m.failed > 0:
		return fmt.Errorf("%d instances failed to plan, the first: %s", m.failed, m.firstFailure)
	case m.planned != planned || m.cached != cached:
		return fmt.Errorf("socle planned %d and showed %d from its cache, want %d and %d", m.planned, m.cached, planned, cached)
	case planned == 0 && m.runs.total() != 0:
		return fmt.Errorf("every instance came from the cache, yet terraform ran %d times (%s)", m.runs.total(), m.runs)
	case planned > 0 && m.runs["plan"] != planned:
		return fmt.Errorf("%d instances planned, but terraform plan ran %d times", planned, m.runs["plan"])
	}
	return nil
}

// planOutput is the part of `socle plan -o json` the bench reads.
type planOutput struct {
	Stacks *struct {
		Planned bool          `json:"planned"`
		Message string        `json:"message"`
		Results []stackResult `json:"results"`
	} `json:"stacks"`
}

// stackResult is one instance's plan in it.
type stackResult struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	Status   string `json:"status"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
	Cached   bool   `json:"cached"`
	Summary  struct {
		Add, Change, Replace, Destroy int
	} `json:"summary"`
}

// plan runs `socle plan REPO --data DATA -o json` and measures it.
func (b *bench) plan(ctx context.Context) (*measure, error) {
	if err := os.WriteFile(b.countFile, nil, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, b.socle, "plan", b.repo, "--data", b.data, "-o", "json")
	cmd.Env = b.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	polled := make(chan [2]int64, 1)
	go func() {
		hwm, own := poll(cmd.Process.Pid, b.poll, done)
		polled <- [2]int64{hwm, int64(own)}
	}()
	err := cmd.Wait()
	wall := time.Since(t)
	close(done)
	p := <-polled
	m := &measure{wall: wall, hwm: p[0], own: time.Duration(p[1]), cpu: cpuOf(cmd.ProcessState)}
	var out planOutput
	if jerr := json.Unmarshal(stdout.Bytes(), &out); jerr != nil || out.Stacks == nil {
		return nil, fmt.Errorf("socle plan: %v (%v)\n%s", err, jerr, tail(stderr.String(), 4096))
	}
	if !out.Stacks.Planned {
		return nil, fmt.Errorf("socle plan did not plan the stacks: %s", out.Stacks.Message)
	}
	if err != nil && !hasFailed(out) {
		return nil, fmt.Errorf("socle plan: %v\n%s", err, tail(stderr.String(), 4096))
	}
	for _, r := range out.Stacks.Results {
		m.instances++
		switch {
		case r.Status == "Failed":
			m.failed++
			if m.firstFailure == "" {
				m.firstFailure = fmt.Sprintf("%s @ %s: %s (%s)", r.Stack, r.Instance, r.Message, r.Reason)
			}
		case r.Cached:
			m.cached++
		default:
			m.planned++
		}
		m.add += r.Summary.Add
		m.change += r.Summary.Change + r.Summary.Replace
	}
	if m.runs, err = b.readCount(); err != nil {
		return nil, err
	}
	return m, nil
}

func hasFailed(out planOutput) bool {
	return slices.ContainsFunc(out.Stacks.Results, func(r stackResult) bool { return r.Status == "Failed" })
}

// shellLoop is the reference: one bash loop over the same instances, each
// with a fresh TF_DATA_DIR, planning in the repository's stack directory.
func (b *bench) shellLoop(ctx context.Context) (*measure, error) {
	if err := os.WriteFile(b.countFile, nil, 0o644); err != nil {
		return nil, err
	}
	ref := filepath.Join(b.tmp, "loop")
	if err := os.RemoveAll(ref); err != nil {
		return nil, err
	}
	instances := b.instanceList()
	if b.applied {
		for _, i := range instances {
			if err := copyFile(filepath.Join(b.tmp, "applied", i, "terraform.tfstate"), filepath.Join(ref, i, "terraform.tfstate")); err != nil {
				return nil, err
			}
		}
	}
	show := ""
	if b.show {
		show = ` && terraform show -json -no-color "$w/plan.tfplan" >/dev/null`
	}
	t := time.Now()
	ps, err := b.forEach(ctx, ref, `terraform plan -input=false -no-color -state="$w/terraform.tfstate" -var "env=$e" -var "stack=$s" -out="$w/plan.tfplan" >"$w/plan.log"`+show)
	if err != nil {
		return nil, fmt.Errorf("shell loop: %w", err)
	}
	m := &measure{wall: time.Since(t), cpu: cpuOf(ps), hwm: -1, own: -1}
	if m.runs, err = b.readCount(); err != nil {
		return nil, err
	}
	if m.runs["plan"] != len(instances) {
		return nil, fmt.Errorf("shell loop: terraform plan ran %d times for %d instances", m.runs["plan"], len(instances))
	}
	for _, i := range instances {
		data, err := os.ReadFile(filepath.Join(ref, i, "plan.log"))
		if err != nil {
			return nil, err
		}
		var add, change, destroy int
		if at := planLine.FindSubmatch(data); at != nil {
			add, _ = strconv.Atoi(string(at[1]))
			change, _ = strconv.Atoi(string(at[2]))
			destroy, _ = strconv.Atoi(string(at[3]))
		} else if !bytes.Contains(data, []byte("No changes.")) {
			return nil, fmt.Errorf("shell loop: no plan summary in %s", filepath.Join(ref, i, "plan.log"))
		}
		// A replacement is one to add and one to destroy in terraform's
		// words, one to replace in socle's.
		m.add += add - min(add, destroy)
		m.change += change + min(add, destroy)
	}
	return m, nil
}

// forEach runs one bash loop over the instances, as people write it: for
// each, in the repository's stack directory, with a TF_DATA_DIR of its
// own under dir/<stack>/<environment> ($w; $s is the stack, $e the
// environment), terraform init and then cmd.
func (b *bench) forEach(ctx context.Context, dir, cmd string) (*os.ProcessState, error) {
	script := `set -eu
for i in ` + strings.Join(b.instanceList(), " ") + `; do
  s=${i%/*} e=${i#*/} w=` + shellQuote(dir) + `/$i
  mkdir -p "$w"
  cd ` + shellQuote(filepath.Join(b.repo, "stacks")) + `/"$s"
  export TF_DATA_DIR="$w/.terraform"
  terraform init -input=false -no-color >"$w/init.log" &&
    ` + cmd + ` ||
    exit 1 # set -e does not stop at a failure inside an && list
done
`
	c := exec.CommandContext(ctx, "bash", "-c", script)
	c.Env = b.env
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, tail(stderr.String(), 4096))
	}
	return c.ProcessState, nil
}

// instanceList names the instances as stack/environment, in the order
// socle plans them (stack.Targets: by stack, then environment).
func (b *bench) instanceList() []string {
	var out []string
	for i := range b.Stacks {
		for _, e := range envs {
			out = append(out, stackName(i)+"/"+e)
		}
	}
	return out
}

// applyAll stands in for socle's apply, which no command runs yet: it
// applies every instance with terraform, outside socle and outside the
// timings, and puts each state where socle keeps it
// (<data>/stacks/<stack>/<instance>/terraform.tfstate) and where the
// loop will find it, so that both plan against existing resources.
func (b *bench) applyAll(ctx context.Context) error {
	applied := filepath.Join(b.tmp, "applied")
	t := time.Now()
	if _, err := b.forEach(ctx, applied, `terraform apply -input=false -no-color -auto-approve -state="$w/terraform.tfstate" -var "env=$e" -var "stack=$s" >"$w/apply.log"`); err != nil {
		return fmt.Errorf("applying: %w", err)
	}
	for _, i := range b.instanceList() {
		if err := copyFile(filepath.Join(applied, i, "terraform.tfstate"), filepath.Join(b.data, "stacks", filepath.FromSlash(i), "terraform.tfstate")); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "applied every instance with terraform (outside socle: no socle command applies a stack yet) in %s\n", time.Since(t).Round(time.Millisecond))
	return nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

// planLine is terraform plan's summary.
var planLine = regexp.MustCompile(`Plan: (\d+) to add, (\d+) to change, (\d+) to destroy`)

// runCount counts terraform runs by subcommand.
type runCount map[string]int

func (c runCount) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func (c runCount) String() string {
	if len(c) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

func (b *bench) readCount() (runCount, error) {
	f, err := os.Open(b.countFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := runCount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c[sc.Text()]++
	}
	return c, sc.Err()
}

// poll reads socle's VmHWM and its own CPU time (without its children's)
// every interval until done, and returns the last values read (both only
// grow); -1 when none could be.
func poll(pid int, every time.Duration, done <-chan struct{}) (hwm int64, own time.Duration) {
	hwm, own = -1, -1
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		hwm = max(hwm, peak.OfPID(pid))
		own = max(own, ownCPU(pid))
		select {
		case <-done:
			return hwm, own
		case <-tick.C:
		}
	}
}

// ownCPU is utime + stime of /proc/<pid>/stat: the process's CPU time,
// its threads' and not its children's, in clock ticks of 1/100 s (Linux's
// USER_HZ on every architecture Go runs on).
func ownCPU(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted from after its closing parenthesis (field 3 is first).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	s, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}

func cpuOf(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

func maxHWM(all []figures) int64 {
	m := int64(-1)
	for _, f := range all {
		m = max(m, f.everything.hwm)
	}
	return m
}

func (b *bench) git(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=Ann", "-c", "user.email=ann@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = b.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (b *bench) commit(ctx context.Context, msg string) error {
	if err := b.git(ctx, "add", "-A"); err != nil {
		return err
	}
	return b.git(ctx, "commit", "-q", "-m", msg)
}

func (b *bench) printMachine(ctx context.Context, tf string) {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	load := ""
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = "; load average " + strings.Join(strings.Fields(string(data))[:3], " ")
	}
	ver := "unknown version"
	if out, err := exec.CommandContext(ctx, tf, "version").Output(); err == nil {
		ver, _, _ = strings.Cut(string(out), "\n")
	}
	fmt.Fprintf(b.out, "machine: %s, %d logical CPUs, %s/%s, %s%s\n", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), load)
	fmt.Fprintf(b.out, "terraform: %s (%s)\n", tf, ver)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func sec(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
