package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/spec"
)

// RunStatus says where an apply stands.
type RunStatus string

// The statuses of an apply.
const (
	// RunApplying is recorded, durably, before terraform starts: found
	// by the next run, it means socle stopped during the apply.
	RunApplying    RunStatus = "Applying"
	RunApplied     RunStatus = "Applied"
	RunFailed      RunStatus = "Failed"
	RunInterrupted RunStatus = "Interrupted"
	// RunRefused: nothing was applied (a stale or unapproved plan, a
	// held lock); the caller plans again or waits.
	RunRefused RunStatus = "Refused"
)

// The reasons of an apply's status.
const (
	ReasonApplied Reason = "Applied"
	// ReasonStale: the state changed since the plan (socle's check, or
	// terraform's "Saved plan is stale"). The saved plan is discarded:
	// plan again, and have the new plan approved.
	ReasonStale Reason = "Stale"
	// ReasonNotApproved: the saved plan is not the one approved (a newer
	// plan replaced it).
	ReasonNotApproved Reason = "PlanNotApproved"
	// ReasonNoPlan: no saved plan to apply (never planned, no changes,
	// or already applied or discarded).
	ReasonNoPlan         Reason = "NoSavedPlan"
	ReasonAlreadyApplied Reason = "AlreadyApplied"
	ReasonApplyFailed    Reason = "ApplyFailed"
	ReasonOutputFailed   Reason = "OutputFailed"
	// ReasonInterrupted: socle stopped during the apply. terraform's
	// state is the truth: the next step is a fresh plan, never the old
	// plan again.
	ReasonInterrupted Reason = "Interrupted"
	// ReasonUnlocked: an admin's forced unlock took the run's lock; its
	// terraform was stopped.
	ReasonUnlocked Reason = "Unlocked"
)

// Approved is the plan a caller approved: the PlanID and Hash of the
// Result it was shown.
type Approved struct {
	PlanID string `json:"planId"`
	Hash   string `json:"hash"`
}

// Run is one apply of an instance, as people and the API see it: outputs
// are shown, sensitive ones redacted.
type Run struct {
	Stack    string       `json:"stack"`
	Instance string       `json:"instance"`
	PlanID   string       `json:"planId"`
	Hash     string       `json:"hash"`
	Status   RunStatus    `json:"status"`
	Reason   Reason       `json:"reason"`
	Message  string       `json:"message,omitempty"`
	Holder   lease.Holder `json:"holder"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	// Summary counts what the plan applied changes.
	Summary Summary `json:"summary,omitzero"`
	// Outputs after the apply, for people: sensitive ones redacted.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Destroy: the run destroyed the instance, removed from Git (its
	// stack's onRemove: destroy).
	Destroy bool `json:"destroy,omitempty"`
}

// outputsRecord is what an apply leaves for dependents, sealed whole at
// rest: outputs not marked sensitive may still carry a secret input.
type outputsRecord struct {
	PlanID  string                    `json:"planId"`
	Applied time.Time                 `json:"applied"`
	Outputs map[string]recordedOutput `json:"outputs"`
	// Secrets are the instance's secret inputs as the plan had them: an
	// output that holds one is redacted for people though terraform does
	// not mark it sensitive (terraform_data loses the mark).
	Secrets []string `json:"secrets,omitempty"`
}

type recordedOutput struct {
	Sensitive bool            `json:"sensitive,omitempty"`
	Value     json.RawMessage `json:"value"`
}

// Apply applies the saved plan of s's instance, as planned, if it is the
// one approved: under the instance's run lock, the same as Plan's. It
// refuses (RunRefused) a plan that is not the saved one
// (ReasonNotApproved), a saved plan whose state changed since it was
// planned (ReasonStale: the saved plan is discarded, the caller plans
// again and has the new plan approved), and a plan already applied. The
// run is recorded before terraform starts and when it ends; a run found
// Applying by the next one (socle stopped meanwhile: killed, or ctx
// cancelled, which returns the run still Applying) is marked Interrupted
// and its plan discarded: it is never applied twice. After
// the apply, the outputs are recorded for dependents (AppliedOutputs)
// and people (ShowOutputs), and the state before it kept as a sealed
// backup.
func (r *Runner) Apply(ctx context.Context, s *spec.Stack, name string, ok Approved) Run {
	run := Run{Stack: s.Name, Instance: name, PlanID: ok.PlanID, Hash: ok.Hash}
	refuse := func(reason Reason, err error) Run {
		run.Status, run.Reason, run.Message = RunRefused, reason, message(err, nil)
		return run
	}
	f := r.files(s, name)
	if f.key == nil {
		return refuse(ReasonNoSecret, ErrNoSecret)
	}
	le, err := r.lock(ctx, s.Name, name)
	if err != nil {
		if errors.Is(err, lease.ErrHeld) {
			return refuse(ReasonLocked, err)
		}
		return refuse(ReasonWorkDir, err)
	}
	defer le.Release()
	if err := r.recover(ctx, f); err != nil {
		return refuse(reasonOf(err, ReasonWorkDir), err)
	}
	if last, found, err := f.lastRun(); err != nil {
		return refuse(ReasonWorkDir, err)
	} else if found && last.PlanID == ok.PlanID && last.Status != RunRefused {
		return refuse(ReasonAlreadyApplied, fmt.Errorf("plan %s of %s @ %s was applied already (%s at %s): plan again", ok.PlanID, s.Name, name, last.Status, last.Finished.Format(time.RFC3339)))
	}
	c, found := readCache(f.dir)
	if !found || c.Result.PlanID == "" || !exists(f.path(planFile+sealedExt)) {
		return refuse(ReasonNoPlan, fmt.Errorf("%s @ %s has no saved plan to apply: plan it", s.Name, name))
	}
	if c.Result.PlanID != ok.PlanID || c.Result.Hash != ok.Hash {
		return refuse(ReasonNotApproved, fmt.Errorf("the saved plan of %s @ %s is %s, not the approved %s: have it approved, or plan again", s.Name, name, c.Result.PlanID, ok.PlanID))
	}
	st, err := f.readState()
	if err != nil {
		return refuse(reasonOf(err, ReasonWorkDir), err)
	}
	if key := r.key(c.Key.Hash, st); key != c.Key {
		err := fmt.Errorf("the state of %s @ %s changed since plan %s was made: plan again", s.Name, name, ok.PlanID)
		if key.Terraform != c.Key.Terraform {
			err = fmt.Errorf("terraform changed since plan %s of %s @ %s was made: plan again", ok.PlanID, s.Name, name)
		}
		return refuse(ReasonStale, errors.Join(err, f.discardPlan()))
	}

	// From here on the run is recorded: Applying first, durably.
	host, _ := os.Hostname()
	run.Holder, run.Started = lease.Holder{PID: os.Getpid(), Host: host, Since: r.now()}, r.now()
	run.Status, run.Summary = RunApplying, c.Result.Summary
	if err := f.writeRun(run); err != nil {
		return refuse(ReasonWorkDir, fmt.Errorf("recording the run: %w", err))
	}
	applying := run
	r.apply(ctx, le, f, st, &run)
	run.Finished = r.now()
	// The plan is consumed, applied or not: terraform's state is the
	// truth, and the next step a fresh plan.
	errs := []error{f.discardPlan(), f.closeState()}
	os.Remove(f.path(planFile))
	if ctx.Err() != nil && run.Status != RunApplied && run.Reason != ReasonUnlocked {
		// socle stops: the run stays recorded Applying, as after a kill,
		// and the next run of the instance recovers it the same way
		// (Interrupted, the outputs recorded from the state).
		if err := errors.Join(errs...); err != nil {
			r.logError("closing an apply that socle stopped", err, run)
		}
		return applying
	}
	errs = append(errs, f.writeRun(run))
	if err := errors.Join(errs...); err != nil && run.Status == RunApplied {
		run.Status, run.Reason, run.Message = RunFailed, ReasonWorkDir, fmt.Sprintf("applied, but recording it failed: %v", err)
		f.writeRun(run)
	}
	if err := f.archive(run, r.keep()); err != nil {
		r.logError("keeping the history of an apply", err, run)
	}
	return run
}

// apply runs terraform apply on the saved plan, from the state st read
// for the staleness check, and records the outputs; run says how it ended.
func (r *Runner) apply(ctx context.Context, le lease.Lease, f *files, st state, run *Run) {
	var secrets []string
	failed := func(reason Reason, err error) {
		run.Status, run.Reason, run.Message = RunFailed, reason, message(err, secrets)
	}
	if _, err := f.readSealed(secretsFile, &secrets); err != nil {
		failed(ReasonWorkDir, err)
		return
	}
	// A lease lost (an admin's forced unlock) stops terraform.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-le.Lost():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := f.backup(r.now(), r.keep()); err != nil {
		failed(ReasonWorkDir, fmt.Errorf("backing up the state: %w", err))
		return
	}
	if err := f.openState(st); err != nil {
		failed(reasonOf(err, ReasonWorkDir), err)
		return
	}
	if _, err := f.unseal(planFile); err != nil {
		failed(reasonOf(err, ReasonWorkDir), err)
		return
	}
	env, err := r.env()
	if err != nil {
		failed(ReasonWorkDir, err)
		return
	}
	lg := r.openLog(f, LogApply, secrets)
	defer func() { lg.end(run.ended()) }()
	tf, err := r.terraform(ctx, f.root(), env, lg)
	if err != nil {
		failed(ReasonWorkDir, err)
		return
	}
	if err := r.step(ctx, func(ctx context.Context) error {
		return tf.Apply(ctx, tfexec.DirOrPlan(f.path(planFile)))
	}); err != nil {
		if strings.Contains(err.Error(), "Saved plan is stale") {
			run.Status, run.Reason, run.Message = RunRefused, ReasonStale, "terraform refused the saved plan: the state changed since it was made; plan again"
			return
		}
		select {
		case <-le.Lost():
			failed(ReasonUnlocked, fmt.Errorf("the run's lock was taken by a forced unlock; terraform was stopped: %w", err))
		default:
			failed(reasonOf(err, ReasonApplyFailed), fmt.Errorf("terraform apply: %w", err))
		}
		return
	}
	rec, err := r.recordOutputs(ctx, tf, f, run.PlanID, secrets)
	if err != nil {
		failed(reasonOf(err, ReasonOutputFailed), fmt.Errorf("applied, but recording the outputs failed: %w", err))
		return
	}
	run.Status, run.Reason, run.Outputs = RunApplied, ReasonApplied, rec.show()
}

// recordOutputs records the outputs of the state as it is now (terraform
// output), for dependents and people.
func (r *Runner) recordOutputs(ctx context.Context, tf *tfexec.Terraform, f *files, planID string, secrets []string) (outputsRecord, error) {
	// The outputs, sensitive ones included, come as JSON on stdout:
	// never into the run's log.
	tf.SetStdout(nil)
	tf.SetStderr(nil)
	var outs map[string]tfexec.OutputMeta
	if err := r.step(ctx, func(ctx context.Context) (err error) {
		outs, err = tf.Output(ctx)
		return err
	}); err != nil {
		return outputsRecord{}, fmt.Errorf("terraform output: %w", err)
	}
	rec := outputsRecord{PlanID: planID, Applied: r.now(), Outputs: map[string]recordedOutput{}, Secrets: secrets}
	for k, o := range outs {
		rec.Outputs[k] = recordedOutput{Sensitive: o.Sensitive, Value: o.Value}
	}
	return rec, f.writeSealed(outputsFile, rec)
}

// recover is files.recover and, after an interrupted apply, the outputs
// recorded again from the state: socle may have stopped after terraform
// applied and before it recorded them, and the next plan, with nothing to
// do, would apply nothing that records them.
func (r *Runner) recover(ctx context.Context, f *files) error {
	run, interrupted, err := f.recover(r.now())
	if err != nil || !interrupted || f.key == nil {
		return err
	}
	err = func() error {
		defer f.closeState()
		st, err := f.readState()
		if err != nil {
			return err
		}
		if err := f.openState(st); err != nil {
			return err
		}
		env, err := r.env()
		if err != nil {
			return err
		}
		tf, err := r.terraform(ctx, f.root(), env, nil)
		if err != nil {
			return err
		}
		// The secrets of the interrupted plan are gone with it; those
		// of the last outputs stand (the inputs rarely change).
		var last outputsRecord
		if _, err := f.readSealed(outputsFile, &last); err != nil {
			return err
		}
		_, err = r.recordOutputs(ctx, tf, f, run.PlanID, last.Secrets)
		return err
	}()
	if err != nil {
		// Not the run's failure: the next apply records them.
		r.logError("recording the outputs after an interrupted apply", err, run)
	}
	return nil
}

func (r *Runner) logError(msg string, err error, run Run) {
	if r.Log != nil {
		r.Log.Error(msg, "stack", run.Stack, "instance", run.Instance, "plan", run.PlanID, "err", err)
	}
}

// recover makes the instance's directory whole after a run that stopped
// (socle killed): the state terraform left in clear is sealed (it is
// newer than the sealed one), the other files in clear removed, and an
// apply recorded as Applying marked Interrupted, its plan discarded. It
// runs under the instance's lock, so no run is in progress.
func (f *files) recover(now time.Time) (last Run, interrupted bool, err error) {
	if f.key != nil && !f.own && exists(f.path(stateFile)) {
		if err := f.seal(stateFile); err != nil {
			return last, false, fmt.Errorf("sealing the state left in clear: %w", err)
		}
	}
	for _, n := range []string{planFile, varsFile, stateBackup} {
		os.Remove(f.path(n))
	}
	last, found, err := f.lastRun()
	if err != nil || !found || last.Status != RunApplying {
		return last, false, err
	}
	last.Status, last.Reason, last.Finished = RunInterrupted, ReasonInterrupted, now
	last.Message = "socle stopped during this apply; terraform's state is the truth: the plan is discarded, plan again"
	if err := f.writeRun(last); err != nil {
		return last, false, err
	}
	if err := f.archive(last, 0); err != nil {
		return last, false, err
	}
	return last, true, f.discardPlan()
}

// root is the stack's root module in the instance's working directory.
func (f *files) root() string { return filepath.Join(f.dir, "work", spec.StacksDir, f.stack) }

func (f *files) lastRun() (Run, bool, error) {
	var run Run
	ok, err := readJSON(f.path(runFile), &run)
	if err != nil {
		return run, false, fmt.Errorf("reading the last run of %s @ %s: %w", f.stack, f.instance, err)
	}
	return run, ok, nil
}

func (f *files) writeRun(run Run) error { return writeJSON(f.path(runFile), run) }

// archive keeps a finished run in the instance's history, the last keep
// (0: rotate nothing).
func (f *files) archive(run Run, keep int) error {
	dir := f.path(historyDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, stamp(run.Started)+".json"), run); err != nil {
		return err
	}
	if keep == 0 {
		return nil
	}
	return rotate(dir, keep)
}

// backup keeps the sealed state as it is before an apply, the last keep.
// The sealed bytes are copied: the backup opens with the state's kind and
// instance, as the state does.
func (f *files) backup(now time.Time, keep int) error {
	if f.own {
		return nil
	}
	b, err := readBounded(f.path(stateFile + sealedExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the first apply: nothing before it
	}
	if err != nil {
		return err
	}
	dir := f.path(backupsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(dir, stamp(now)+sealedExt), b); err != nil {
		return err
	}
	return rotate(dir, keep)
}

// stamp names a file after a time, so that names sort by it.
func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

const stampLayout = "20060102T150405.000000000Z"

// readOutputs reads the outputs of the last apply; ok is false when
// there was none.
func (f *files) readOutputs() (rec outputsRecord, ok bool, err error) {
	ok, err = f.readSealed(outputsFile, &rec)
	return rec, ok, err
}

// show renders the outputs for people, sensitive ones redacted.
func (rec outputsRecord) show() map[string]string {
	out := make(map[string]string, len(rec.Outputs))
	for _, k := range slices.Sorted(maps.Keys(rec.Outputs)) {
		o := rec.Outputs[k]
		v, err := decodeValue(o.Value)
		if err != nil {
			out[k] = fmt.Sprintf("(%v)", err)
			continue
		}
		out[k] = show(v, o.Sensitive, nil, false, rec.Secrets)
	}
	return out
}

func decodeValue(raw json.RawMessage) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // as inputs read them: 10 stays 10, not 1e+01
	return v, dec.Decode(&v)
}

// ShowOutputs returns the outputs of the last apply of stack's instance, for
// people: sensitive ones redacted. ok is false when it was never applied.
func (r *Runner) ShowOutputs(stack, instance string) (outs map[string]string, ok bool, err error) {
	f := &files{dir: instanceDir(r.Dir, stack, instance), stack: stack, instance: instance, key: r.sealKey()}
	rec, ok, err := f.readOutputs()
	if !ok || err != nil {
		return nil, ok, err
	}
	return rec.show(), true, nil
}

// LastRun returns the last apply of stack's instance (an interrupted one
// is marked so by the next run of the instance); ok is false when there
// was none.
func (r *Runner) LastRun(stack, instance string) (Run, bool, error) {
	return (&files{dir: instanceDir(r.Dir, stack, instance), stack: stack, instance: instance}).lastRun()
}

// History returns the applies of stack's instance that the runner keeps
// (the last Keep, each as it ended), newest first; none when it was never
// applied. A record that does not read is an error naming it.
func (r *Runner) History(stack, instance string) ([]Run, error) {
	dir := filepath.Join(instanceDir(r.Dir, stack, instance), historyDir)
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s @ %s: %w", stack, instance, err)
	}
	var runs []Run
	// Names sort by the run's start (stamp): read from the end.
	for _, e := range slices.Backward(es) {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var run Run
		if _, err := readJSON(filepath.Join(dir, e.Name()), &run); err != nil {
			return nil, fmt.Errorf("reading the history of %s @ %s: %s: %w", stack, instance, e.Name(), err)
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// AppliedOutputs reads the outputs recorded by the last apply of each
// instance under Dir (socle's runs, whatever the stack's backend), opened
// with the data directory's Secret. Reading the record rather than asking
// terraform keeps a commit that changes no stack at zero terraform runs.
type AppliedOutputs struct {
	Dir    string
	Secret []byte
}

// Outputs implements Outputs.
func (a AppliedOutputs) Outputs(stack, instance string) (map[string]Output, bool, error) {
	f := &files{dir: instanceDir(a.Dir, stack, instance), stack: stack, instance: instance}
	if len(a.Secret) > 0 {
		var err error
		if f.key, err = seal.New(a.Secret); err != nil {
			return nil, false, err
		}
	}
	rec, ok, err := f.readOutputs()
	if !ok || err != nil {
		return nil, false, err
	}
	out := make(map[string]Output, len(rec.Outputs))
	for k, o := range rec.Outputs {
		v, err := decodeValue(o.Value)
		if err != nil {
			return nil, false, fmt.Errorf("outputs of %s @ %s: %s: %w", stack, instance, k, err)
		}
		out[k] = Output{Value: v, Sensitive: o.Sensitive}
	}
	return out, true, nil
}

func (r *Runner) locks() (*lease.File, error) {
	dir := filepath.Join(r.Dir, ".locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &lease.File{Dir: dir}, nil
}

func lockScope(stack, instance string) string { return stack + "." + instance }

// Holder says who runs stack's instance now, and since when; ok is false
// when no one does. A socle that died holding it does not: the lock is
// the kernel's, dropped with its process.
func (r *Runner) Holder(stack, instance string) (h lease.Holder, ok bool, err error) {
	locks, err := r.locks()
	if err != nil {
		return h, false, err
	}
	return locks.Holder(lockScope(stack, instance))
}

// ErrLiveHolder is an Unlock refused because a live process holds the
// lock.
var ErrLiveHolder = errors.New("a live socle holds the lock")

// Unlock is the admin's `socle stack unlock`: it removes the run lock of
// stack's instance. A lock a live process holds is refused without force;
// with force, its holder loses its lease and stops its terraform (the
// lease notices within its poll, a second by default), while terraform's
// own state lock still keeps a second apply off the state until it has.
// It returns the holder it removed, if any.
func (r *Runner) Unlock(stack, instance string, force bool) (lease.Holder, bool, error) {
	h, held, err := r.Holder(stack, instance)
	if err != nil {
		return h, false, err
	}
	if held && !force {
		return h, true, fmt.Errorf("stack %s @ %s: %w (%s): unlock with force to stop it", stack, instance, ErrLiveHolder, h)
	}
	locks, err := r.locks()
	if err != nil {
		return h, held, err
	}
	p := filepath.Join(locks.Dir, lockScope(stack, instance)+".lease")
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return h, held, err
	}
	return h, held, nil
}
