package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/spec"
)

// Status says where the plan of an instance stands.
type Status string

// The statuses of an instance's plan.
const (
	StatusPlanned   Status = "Planned"   // the plan changes something
	StatusNoChanges Status = "NoChanges" // the infrastructure matches the configuration
	StatusWaiting   Status = "Waiting"   // an input waits for an upstream to apply
	StatusFailed    Status = "Failed"
)

// Reason is the machine-readable cause beside a status.
type Reason string

// The reasons of a plan's status.
const (
	ReasonChanges            Reason = "Changes"
	ReasonUpToDate           Reason = "UpToDate"
	ReasonUpstreamNotApplied Reason = "UpstreamNotApplied"
	ReasonInputs             Reason = "InputsInvalid"
	ReasonLocked             Reason = "Locked"
	ReasonWorkDir            Reason = "WorkDirFailed"
	ReasonInitFailed         Reason = "InitFailed"
	ReasonPlanFailed         Reason = "PlanFailed"
	ReasonShowFailed         Reason = "ShowFailed"
	ReasonTimeout            Reason = "Timeout"
	ReasonTooLarge           Reason = "PlanTooLarge"
	ReasonNoSecret           Reason = "NoSecret"
)

// Result is the plan of one instance, as people and the API see it:
// nothing in it is secret.
type Result struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	// Of is "zone" or "environment": what the instance is named after.
	Of      string `json:"of"`
	Hash    string `json:"hash"`
	Status  Status `json:"status"`
	Reason  Reason `json:"reason"`
	Message string `json:"message,omitempty"`
	// Cached: the instance's hash and state are those of the last plan,
	// which is shown again without running terraform.
	Cached bool `json:"cached,omitempty"`
	// PlanID names the saved plan (the hash of terraform's plan file
	// and of a random salt: terraform stamps a plan to the second, and
	// two plans alike made within a second are two plans, the first of
	// which may have been applied, or interrupted, already):
	// what a person approves, with Hash, and what Apply is given back so
	// that it applies that plan and no other. Empty when no plan is
	// saved (no changes, or a Runner without Secret).
	PlanID string `json:"planId,omitempty"`
	// Inputs as passed, for people: secret ones redacted, pending ones
	// said to be known after their upstream applies.
	Inputs      map[string]string `json:"inputs,omitempty"`
	Pending     []Pending         `json:"pending,omitempty"`
	Summary     Summary           `json:"summary"`
	Changes     []ResourceChange  `json:"changes,omitempty"`
	MoreChanges int               `json:"moreChanges,omitempty"`
	Outputs     []OutputChange    `json:"outputs,omitempty"`
}

// Summary counts a plan's resource changes by action.
type Summary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Replace int `json:"replace"`
	Destroy int `json:"destroy"`
}

func (s Summary) String() string {
	return fmt.Sprintf("%d to add, %d to change, %d to replace, %d to destroy", s.Add, s.Change, s.Replace, s.Destroy)
}

// Runner plans stack instances with terraform, each in a working
// directory of its own under Dir, never in the repository: the stack's
// files and the local modules they call are copied there, with the state
// beside them (unless the stack keeps its state in its own backend).
//
//	<Dir>/<stack>/<instance>/work/…                    the repository's files of the stack
//	<Dir>/<stack>/<instance>/terraform.tfstate.sealed
//	<Dir>/<stack>/<instance>/plan.tfplan.sealed         the saved plan (terraform plan -out)
//	<Dir>/<stack>/<instance>/plan.json                  the result, with what it was planned from
//	<Dir>/<stack>/<instance>/run.json                   the last apply: who, when, how it ended
//	<Dir>/<stack>/<instance>/outputs.json.sealed        the outputs of the last apply
//	<Dir>/<stack>/<instance>/backups/<time>.sealed      the state before each apply, the last Keep
//	<Dir>/<stack>/<instance>/history/<time>.json        each apply's run, the last Keep
//	<Dir>/<stack>/<instance>/drift.json                 the last drift check (Drift)
//	<Dir>/<stack>/<instance>/work-drift/…               the stack's files while a drift check runs
//	<Dir>/.plugin-cache/                                TF_PLUGIN_CACHE_DIR, unless the user sets one
//	<Dir>/.locks/                                       one run per instance at a time
//	<Dir>/.validate/<stack>/                            a scratch copy while terraform validates it
//
// socle's own directories start with a dot, which no stack's name does.
//
// The state, the saved plan, the inputs (inputs.tfvars.json) and the
// outputs hold secrets: they are in clear only while terraform runs, and
// sealed at rest (AES-256-GCM, package seal) with the data directory's
// secret. A stack with its own backend keeps its state there: socle
// neither seals nor backs it up. A run stopped by a crash leaves files in
// clear; the next run of the instance seals them first.
//
// The user's terraform settings that concern where providers come from
// (TF_CLI_CONFIG_FILE, its mirrors and credentials) are honoured; those
// that would make a plan depend on the shell it was started from rather
// than on the repository (TF_VAR_*, TF_CLI_ARGS*, TF_DATA_DIR,
// TF_WORKSPACE) are not passed.
type Runner struct {
	// Dir is absolute: <data directory>/stacks.
	Dir string
	// Terraform is the terraform or tofu binary, absolute.
	Terraform string
	// Timeout bounds each terraform command (default 10m).
	Timeout time.Duration
	// MaxShow bounds the JSON plan read back (default 256 MiB).
	MaxShow int64
	// Parallel is how many instances are planned, or stacks validated,
	// at once (default 2).
	Parallel int
	// Outputs reads upstream outputs (default: the state files under Dir).
	Outputs Outputs
	// Log receives what terraform-exec logs (default: nothing).
	Log *slog.Logger
	// Secret is the data directory's secret, which seals what holds
	// secrets at rest. Without it the Runner plans for show only: it
	// keeps no saved plan, cannot apply, and cannot plan an instance
	// whose state is sealed (ErrNoSecret).
	Secret []byte
	// Keep is how many state backups and apply records each instance
	// keeps (default 10).
	Keep int
	// Clock stamps runs (default: the system's).
	Clock clock.Clock

	runs    atomic.Int64
	keyOnce sync.Once
	sealing *seal.Key
}

// sealKey is the key files are sealed with, nil without Secret.
func (r *Runner) sealKey() *seal.Key {
	r.keyOnce.Do(func() {
		if len(r.Secret) > 0 {
			r.sealing, _ = seal.New(r.Secret) // fails only without a secret
		}
	})
	return r.sealing
}

func (r *Runner) keep() int {
	if r.Keep > 0 {
		return r.Keep
	}
	return 10
}

// Runs is how many terraform processes the runner started.
func (r *Runner) Runs() int64 { return r.runs.Load() }

func (r *Runner) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 10 * time.Minute
}

func (r *Runner) maxShow() int64 {
	if r.MaxShow > 0 {
		return r.MaxShow
	}
	return 256 << 20
}

func (r *Runner) outputs() Outputs {
	if r.Outputs != nil {
		return r.Outputs
	}
	return AppliedOutputs{Dir: r.Dir, Secret: r.Secret}
}

// Target is one instance to plan.
type Target struct {
	Stack    *spec.Stack
	Instance string
}

// Targets lists the instances of repo's stacks, upstream stacks first
// (dependsOn), each stack's instances in the order it lists them; keep
// filters them (nil: all). The repository must be valid (no cycle).
func Targets(repo *spec.Repo, keep func(s *spec.Stack, instance string) bool) []Target {
	var order []*spec.Stack
	done := map[string]bool{}
	var visit func(s *spec.Stack)
	visit = func(s *spec.Stack) {
		if done[s.Name] {
			return
		}
		done[s.Name] = true
		for _, d := range s.Config.DependsOn {
			if up := repo.Stack(d); up != nil {
				visit(up)
			}
		}
		order = append(order, s)
	}
	for _, s := range repo.Stacks {
		visit(s)
	}
	var out []Target
	for _, s := range order {
		for _, i := range s.Instances() {
			if keep == nil || keep(s, i) {
				out = append(out, Target{s, i})
			}
		}
	}
	return out
}

// PlanAll plans the targets, Parallel at a time, and returns their
// results in the targets' order. Upstream plans do not feed their
// dependents (outputs come from applies), so the order is only that of
// the report.
func (r *Runner) PlanAll(ctx context.Context, repo *spec.Repo, fsys fs.FS, targets []Target) []Result {
	out := make([]Result, len(targets))
	outs := once(r.outputs())
	r.each(len(targets), func(i int) {
		out[i] = r.plan(ctx, repo, fsys, targets[i].Stack, targets[i].Instance, outs)
	})
	return out
}

// each calls fn(i) for each i below n, Parallel at a time (default 2),
// and returns when all have returned.
func (r *Runner) each(n int, fn func(i int)) {
	p := r.Parallel
	if p < 1 {
		p = 2
	}
	sem := make(chan struct{}, p)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// cacheKey is what a plan was computed from: the instance's content, its
// state and the binary that planned it.
type cacheKey struct {
	Hash      string `json:"hash"`
	State     string `json:"state"`
	Terraform string `json:"terraform"`
	// Format is resultFormat when the result was recorded: a result of an
	// older socle lacks what this one shows and judges (the masked before
	// and after that policies read), so it is planned again.
	Format int `json:"format,omitempty"`
}

// resultFormat numbers what a recorded Result holds; raise it whenever a
// field is added that a cached result would lack.
const resultFormat = 1

type cached struct {
	Key    cacheKey `json:"key"`
	Result Result   `json:"result"`
}

// Plan plans one instance of s. Failures are results, with their reason:
// one instance that does not plan does not stop the others.
func (r *Runner) Plan(ctx context.Context, repo *spec.Repo, fsys fs.FS, s *spec.Stack, name string) Result {
	return r.plan(ctx, repo, fsys, s, name, r.outputs())
}

func (r *Runner) plan(ctx context.Context, repo *spec.Repo, fsys fs.FS, s *spec.Stack, name string, outs Outputs) (res Result) {
	res = Result{Stack: s.Name, Instance: name, Of: "environment"}
	if s.PerZone() {
		res.Of = "zone"
	}
	var secrets []string
	fail := func(reason Reason, err error) Result {
		res.Status, res.Reason, res.Message = StatusFailed, reason, message(err, secrets)
		return res
	}
	in, err := Resolve(repo, outs, s, name)
	if err != nil {
		return fail(ReasonInputs, err)
	}
	secrets = in.secrets()
	res.Hash = in.Hash
	res.Inputs = showInputs(in)
	if len(in.Pending) > 0 {
		res.Pending = in.Pending
		res.Status, res.Reason = StatusWaiting, ReasonUpstreamNotApplied
		res.Message = "not planned: inputs are known only after their upstream applies"
		return res
	}
	dir := instanceDir(r.Dir, s.Name, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(ReasonWorkDir, err)
	}
	le, err := r.lock(ctx, s.Name, name)
	if err != nil {
		if errors.Is(err, lease.ErrHeld) {
			return fail(ReasonLocked, err)
		}
		return fail(ReasonWorkDir, err)
	}
	defer le.Release()
	f := r.files(s, name)
	if err := r.recover(ctx, f); err != nil {
		return fail(reasonOf(err, ReasonWorkDir), err)
	}

	st, err := f.readState()
	if err != nil {
		return fail(reasonOf(err, ReasonWorkDir), err)
	}
	key := r.key(in.Hash, st)
	if c, ok := readCache(dir); ok && c.Key == key {
		// With a key, the saved plan must be there to be applied;
		// without, none is kept and the result alone is shown again.
		if f.key == nil || c.Result.PlanID == "" || exists(f.path(planFile+sealedExt)) {
			c.Result.Cached = true
			return c.Result
		}
	}
	// A failed plan must not leave the last one to apply.
	if err := f.discardPlan(); err != nil {
		return fail(ReasonWorkDir, err)
	}
	lg := r.openLog(f, LogPlan, secrets)
	// Registered before the state is sealed again, it runs after: the
	// log ends with how the plan did.
	defer func() { lg.end(res.ended()) }()
	work, err := prepare(fsys, in, dir)
	if err != nil {
		return fail(ReasonWorkDir, err)
	}
	// Whatever happens, nothing stays in clear: the state is sealed
	// again, the inputs and the plan in clear removed.
	defer func() {
		os.Remove(f.path(varsFile))
		os.Remove(f.path(planFile))
		if err := f.closeState(); err != nil && res.Status != StatusFailed {
			res = fail(ReasonWorkDir, fmt.Errorf("sealing the state: %w", err))
		}
	}()
	if err := f.openState(st); err != nil {
		return fail(reasonOf(err, ReasonWorkDir), err)
	}
	varFile, planPath := f.path(varsFile), f.path(planFile)
	if err := writeJSON(varFile, in.Inputs); err != nil {
		return fail(ReasonWorkDir, err)
	}
	// Kept, sealed: a destroy after the instance is removed from Git
	// runs with them.
	if f.key != nil {
		if err := f.writeSealed(lastInputsFile, lastInputs{Inputs: in.Inputs, Secrets: secrets}); err != nil {
			return fail(ReasonWorkDir, err)
		}
	}
	env, err := r.env()
	if err != nil {
		return fail(ReasonWorkDir, err)
	}
	tf, err := r.terraform(ctx, work, env, lg)
	if err != nil {
		return fail(ReasonWorkDir, err)
	}
	if err := r.step(ctx, func(ctx context.Context) error { return tf.Init(ctx) }); err != nil {
		return fail(reasonOf(err, ReasonInitFailed), fmt.Errorf("terraform init: %w", err))
	}
	if err := r.step(ctx, func(ctx context.Context) error {
		_, err := tf.Plan(ctx, tfexec.Out(planPath), tfexec.VarFile(varFile))
		return err
	}); err != nil {
		return fail(reasonOf(err, ReasonPlanFailed), fmt.Errorf("terraform plan: %w", err))
	}
	p, err := r.show(ctx, work, planPath, env)
	if err != nil {
		return fail(reasonOf(err, ReasonShowFailed), fmt.Errorf("terraform show: %w", err))
	}
	res.Changes, res.Outputs, res.MoreChanges = Changes(p, in.secrets())
	for _, c := range res.Changes {
		switch c.Action {
		case ActionCreate:
			res.Summary.Add++
		case ActionUpdate:
			res.Summary.Change++
		case ActionReplace:
			res.Summary.Replace++
		case ActionDelete:
			res.Summary.Destroy++
		}
	}
	if len(res.Changes) > 0 || len(res.Outputs) > 0 || res.MoreChanges > 0 {
		res.Status, res.Reason = StatusPlanned, ReasonChanges
	} else {
		res.Status, res.Reason = StatusNoChanges, ReasonUpToDate
	}
	if res.Status == StatusPlanned && f.key != nil {
		if res.PlanID, err = newPlanID(planPath); err == nil {
			err = f.seal(planFile)
		}
		if err == nil {
			err = f.writeSealed(secretsFile, in.secrets())
		}
		if err != nil {
			return fail(ReasonWorkDir, fmt.Errorf("sealing the saved plan: %w", err))
		}
	}
	// The state may have been created by init (a new one); the key of
	// the cache is the state as the next run will find it.
	if st, err = f.readState(); err == nil {
		err = writeJSON(f.path(cacheFile), cached{Key: r.key(in.Hash, st), Result: res})
	}
	if err != nil {
		return fail(ReasonWorkDir, err)
	}
	return res
}

func (r *Runner) now() time.Time { return clock.Or(r.Clock).Now() }

// newPlanID names the plan file at p, once: by its content and a salt.
func newPlanID(p string) (string, error) {
	b, err := readBounded(p)
	if err != nil {
		return "", err
	}
	return contentHash(append(b, rand.Text()...)), nil
}

// contentHash names content by its sha256, as a saved plan and a state
// are named.
func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// errTooLarge is a plan whose JSON is over MaxShow.
var errTooLarge = errors.New("the plan's JSON is larger than socle reads")

func reasonOf(err error, otherwise Reason) Reason {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, errTooLarge):
		return ReasonTooLarge
	case errors.Is(err, ErrNoSecret):
		return ReasonNoSecret
	}
	return otherwise
}

// step runs one terraform command within the timeout of one.
func (r *Runner) step(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	err := fn(ctx)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("stopped after %s: %w", r.timeout(), ctx.Err())
	}
	return err
}

// lock takes the instance's run lock: one plan or apply of an instance at
// a time. It is a lease.File, a flock the kernel drops when its process
// dies: a socle killed mid-run never blocks the next one.
func (r *Runner) lock(ctx context.Context, stack, instance string) (lease.Lease, error) {
	locks, err := r.locks()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	l, err := locks.TryAcquire(ctx, lockScope(stack, instance), lease.Holder{PID: os.Getpid(), Host: host, Since: r.now()})
	if err != nil {
		return nil, fmt.Errorf("stack %s @ %s is being run: %w", stack, instance, err)
	}
	return l, nil
}

// key is the instance's cache key now, for the instance's content hash
// and its state.
func (r *Runner) key(hash string, st state) cacheKey {
	k := cacheKey{Hash: hash, Terraform: r.Terraform, State: st.hash(), Format: resultFormat}
	if fi, err := os.Stat(r.Terraform); err == nil {
		k.Terraform = fmt.Sprintf("%s %d %d", r.Terraform, fi.Size(), fi.ModTime().UnixNano())
	}
	return k
}

// LastPlan returns the result of the last plan of stack's instance, as
// recorded beside it (without running terraform), and when it was
// recorded; ok is false when it was never planned here. It may be stale:
// the repository or the state may have changed since.
func (r *Runner) LastPlan(stack, instance string) (res Result, at time.Time, ok bool) {
	dir := instanceDir(r.Dir, stack, instance)
	c, ok := readCache(dir)
	if !ok {
		return Result{}, time.Time{}, false
	}
	if fi, err := os.Stat(filepath.Join(dir, "plan.json")); err == nil {
		at = fi.ModTime()
	}
	return c.Result, at, true
}

func readCache(dir string) (cached, bool) {
	var c cached
	if ok, err := readJSON(filepath.Join(dir, "plan.json"), &c); !ok || err != nil {
		return cached{}, false
	}
	return c, true
}

// readJSON reads the JSON record at path into v; ok is false, with no
// error, when there is none.
func readJSON(path string, v any) (ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	return err == nil, err
}

// writeJSON writes v to a new file, synced, and renames it into place,
// readable by socle's user only.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileSync(path, b)
}

// backendFile is the file socle adds to a stack whose state it keeps.
const backendFile = "socle_backend.tf.json"

// prepare copies the stack's files into a fresh working directory under
// dir, checking that they are those the stack's hash was computed from,
// and returns the directory of the stack's root module there.
func prepare(fsys fs.FS, in *Instance, dir string) (string, error) {
	return prepareIn(fsys, in, dir, "work")
}

// prepareIn is prepare into the working directory dir/name; the backend
// is the instance's state (dir/terraform.tfstate) whatever the name.
func prepareIn(fsys fs.FS, in *Instance, dir, name string) (string, error) {
	s := in.Stack
	work := filepath.Join(dir, name)
	if err := os.RemoveAll(work); err != nil {
		return "", err
	}
	h := spec.NewSourceHash()
	for _, f := range s.Files {
		data, err := spec.ReadFile(fsys, f)
		if err != nil {
			return "", fmt.Errorf("copying %s: %w", f, err)
		}
		h.Add(f, data)
		dst := filepath.Join(work, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return "", err
		}
	}
	if got := h.Sum(); got != s.Source {
		return "", fmt.Errorf("the files of stack %s changed while it was planned (%s, loaded as %s): plan again", s.Name, got, s.Source)
	}
	root := filepath.Join(work, spec.StacksDir, s.Name)
	if s.Config.Backend == spec.StackBackendOwn {
		return root, nil
	}
	if slices.Contains(s.Files, spec.StacksDir+"/"+s.Name+"/"+backendFile) {
		return "", fmt.Errorf("stack %s has a file named %s, the name socle gives the backend it adds", s.Name, backendFile)
	}
	backend := map[string]any{"terraform": map[string]any{"backend": map[string]any{"local": map[string]any{"path": filepath.Join(dir, "terraform.tfstate")}}}}
	return root, writeJSON(filepath.Join(root, backendFile), backend)
}

// env is the environment of terraform's processes.
func (r *Runner) env() (map[string]string, error) {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	// terraform-exec's list: what it sets itself, and TF_VAR_*,
	// TF_CLI_ARGS* and TF_WORKSPACE. The data directory is socle's.
	tfexec.CleanEnv(env)
	delete(env, "TF_DATA_DIR")
	if env["TF_PLUGIN_CACHE_DIR"] == "" {
		cache := filepath.Join(r.Dir, ".plugin-cache")
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return nil, err
		}
		env["TF_PLUGIN_CACHE_DIR"] = cache
	}
	env["CHECKPOINT_DISABLE"] = "1" // no call to HashiCorp's version check
	return env, nil
}

// terraform is a terraform-exec handle on dir; with lg, what its commands
// print goes to the run's log.
func (r *Runner) terraform(ctx context.Context, dir string, env map[string]string, lg *runLog) (*tfexec.Terraform, error) {
	tf, err := tfexec.NewTerraform(dir, r.Terraform)
	if err != nil {
		return nil, err
	}
	if err := tf.SetEnv(env); err != nil {
		return nil, err
	}
	tf.SetWaitDelay(10 * time.Second)
	// terraform-exec logs every command it starts: counted, and passed on.
	rl := &runLogger{r: r}
	tf.SetLogger(rl)
	if lg != nil {
		logTo(ctx, tf, lg)
		rl.lg = lg // after the version check, which is not the run's
	}
	return tf, nil
}

// runLogger counts the terraform processes terraform-exec starts (the
// version check it makes included) from its log, and announces each in
// the run's log.
type runLogger struct {
	r  *Runner
	lg *runLog
}

func (l *runLogger) Printf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "running Terraform command") {
		l.r.runs.Add(1)
		l.lg.command(msg)
	}
	if l.r.Log != nil {
		l.r.Log.Debug("terraform-exec", "msg", msg)
	}
}

// show reads the saved plan back as JSON. It runs terraform show itself
// rather than through terraform-exec, which reads the command's one line
// of JSON whole, whatever its size: here it is cut at MaxShow, and the
// command stopped there.
func (r *Runner) show(ctx context.Context, dir, planFile string, env map[string]string) (*tfjson.Plan, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, r.Terraform, "show", "-json", "-no-color", planFile)
	cmd.Dir = dir
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.Env = append(cmd.Env, "TF_IN_AUTOMATION=1", "TF_INPUT=0")
	cmd.WaitDelay = 10 * time.Second
	out := &capped{max: r.maxShow(), cancel: cancel}
	errOut := &capped{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	r.runs.Add(1)
	err := cmd.Run()
	switch {
	case out.over:
		return nil, fmt.Errorf("%w (%d bytes)", errTooLarge, r.maxShow())
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("stopped after %s: %w", r.timeout(), ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(errOut.buf.String()))
	}
	var p tfjson.Plan
	p.UseJSONNumber(true)
	if err := p.UnmarshalJSON(out.buf.Bytes()); err != nil {
		return nil, err
	}
	return &p, nil
}

// capped keeps at most max bytes. Past them, with cancel set, it stops
// the command (an error, and the command's context cancelled, so that it
// does not block on a pipe nobody reads); without, it drops the rest.
type capped struct {
	max    int64
	buf    bytes.Buffer
	over   bool
	cancel func()
}

func (c *capped) Write(p []byte) (int, error) {
	if int64(c.buf.Len()+len(p)) > c.max {
		c.over = true
		if c.cancel != nil {
			c.cancel()
			return 0, errTooLarge
		}
		c.buf.Write(p[:max(0, c.max-int64(c.buf.Len()))])
		return len(p), nil // dropped, not refused: the command goes on
	}
	return c.buf.Write(p)
}

// showInputs renders an instance's inputs for people.
func showInputs(in *Instance) map[string]string {
	out := map[string]string{}
	for k, v := range in.Inputs {
		if in.Sensitive[k] {
			out[k] = Redacted
			continue
		}
		out[k] = show(v, nil, nil, false, nil)
	}
	for _, p := range in.Pending {
		out[p.Input] = fmt.Sprintf("(known after %s @ %s applies)", p.Stack, p.Instance)
	}
	return out
}

// message is the message of a failed or refused run: err's, each of
// secrets in it redacted (terraform's errors may quote the values of
// secret inputs: a precondition's message, a value that lost its
// sensitive mark), cut at 4096 bytes.
func message(err error, secrets []string) string {
	msg := err.Error()
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, Redacted)
	}
	return spec.Truncate(msg, 4096)
}

// secrets are the strings of the instance's secret inputs, as they could
// appear in a plan's values (JSON-escaped) and in terraform's messages (as
// they are); too short ones would redact everything and protect nothing.
func (in *Instance) secrets() []string {
	var out []string
	for k := range in.Sensitive {
		spec.WalkInputs(in.Inputs[k], nil, func(s string, _ []string) {
			if len(s) >= 4 {
				b, _ := json.Marshal(s)
				out = append(out, string(b[1:len(b)-1]))
				if esc := string(b[1 : len(b)-1]); esc != s {
					out = append(out, s) // as terraform's messages quote it
				}
			}
		})
	}
	return out
}

// Binary is the absolute path of terraform, or of tofu where terraform is
// not on PATH; "" when neither is.
func Binary() (string, error) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		if bin, err = exec.LookPath("tofu"); err != nil {
			return "", nil
		}
	}
	return filepath.Abs(bin)
}
