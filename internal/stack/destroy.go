package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/spec"
)

// An instance removed from Git is destroyed only where its stack said so
// (onRemove: destroy) while the instance was in Git: the engine records
// it at each pass (RecordRemoval), since what is removed is no longer in
// the repository to ask. The destroy runs from what the instance's last
// plan left, its configuration (the working copy) and its inputs (sealed
// at rest, for this), so a stack whose directory was deleted is destroyed
// as it was last planned.
const (
	removalFile = "removal.json"
	// lastInputsFile holds the inputs of the instance's last plan and
	// which are secret (sealed, lastInputs).
	lastInputsFile = "last-inputs.json"
	// LogDestroy is the kind of a destroy's log.
	LogDestroy = "destroy"
)

// lastInputs are the inputs of an instance's last plan.
type lastInputs struct {
	Inputs  map[string]any `json:"inputs"`
	Secrets []string       `json:"secrets,omitempty"`
}

// ReasonDestroyDenied: a policy denies a change of the destroy plan; the
// instance is kept.
const ReasonDestroyDenied Reason = "DestroyDenied"

// Removal is what becomes of an instance removed from Git, as recorded
// while it was in Git.
type Removal struct {
	Destroy bool `json:"destroy"`
	// PerZone and Own are the stack's, for the policies (a zone's
	// instance) and the state (socle's or the stack's own backend).
	PerZone bool `json:"perZone,omitempty"`
	Own     bool `json:"own,omitempty"`
}

// RemovalOf is what s's instance asks for when it is removed from Git.
func RemovalOf(s *spec.Stack) Removal {
	return Removal{Destroy: s.Config.OnRemove == spec.StackDestroy, PerZone: s.PerZone(), Own: s.Config.Backend == spec.StackBackendOwn}
}

// RecordRemoval records rm for stack's instance, if it planned here
// (nothing of it exists to destroy otherwise) and rm is new.
func (r *Runner) RecordRemoval(stack, instance string, rm Removal) error {
	dir := instanceDir(r.Dir, stack, instance)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	if old, ok, err := r.RemovalOf(stack, instance); err == nil && ok && old == rm {
		return nil
	}
	return writeJSON(instanceDir(r.Dir, stack, instance)+"/"+removalFile, rm)
}

// RemovalOf reads what was recorded for stack's instance (ok false:
// nothing, as for an instance that never planned here: keep).
func (r *Runner) RemovalOf(stack, instance string) (rm Removal, ok bool, err error) {
	ok, err = readJSON(instanceDir(r.Dir, stack, instance)+"/"+removalFile, &rm)
	return rm, ok, err
}

// Destroy destroys what the state of stack's instance holds, the instance
// having been removed from Git: under its run lock, terraform plans the
// destroy from the instance's last configuration and inputs; judge (nil:
// none) may deny the plan (RunRefused, ReasonDestroyDenied: nothing is
// destroyed); the plan is applied at once, recorded as a run like an
// apply (Applying first, durably: a socle killed meanwhile leaves it
// Interrupted, and the next Destroy plans again). A state with no
// resources left is destroyed already: Applied, with nothing to change,
// and terraform does not run. The run's Destroy is set.
func (r *Runner) Destroy(ctx context.Context, stack, instance string, judge func(*Result) (bool, string)) (run Run) {
	run = Run{Stack: stack, Instance: instance, Destroy: true}
	rm, _, err := r.RemovalOf(stack, instance)
	f := &files{dir: instanceDir(r.Dir, stack, instance), stack: stack, instance: instance, key: r.sealKey(), own: rm.Own}
	var secrets []string
	fail := func(status RunStatus, reason Reason, err error) Run {
		run.Status, run.Reason, run.Message = status, reason, message(err, secrets)
		return run
	}
	if err != nil {
		return fail(RunRefused, ReasonWorkDir, err)
	}
	if f.key == nil {
		return fail(RunRefused, ReasonNoSecret, ErrNoSecret)
	}
	le, err := r.lock(ctx, stack, instance)
	if err != nil {
		if errors.Is(err, lease.ErrHeld) {
			return fail(RunRefused, ReasonLocked, err)
		}
		return fail(RunRefused, ReasonWorkDir, err)
	}
	defer le.Release()
	if err := r.recover(ctx, f); err != nil {
		return fail(RunRefused, reasonOf(err, ReasonWorkDir), err)
	}
	st, err := f.readState()
	if err != nil {
		return fail(RunRefused, reasonOf(err, ReasonWorkDir), err)
	}
	if !f.own && (!st.found || !hasResources(st.plain)) {
		run.Status, run.Reason, run.Message = RunApplied, ReasonApplied, "nothing to destroy: the state holds no resources"
		return run
	}
	var in lastInputs
	found, err := f.readSealed(lastInputsFile, &in)
	if err != nil {
		return fail(RunRefused, ReasonWorkDir, err)
	}
	secrets = in.Secrets
	if !exists(f.root()) {
		return fail(RunRefused, ReasonWorkDir, fmt.Errorf("%s @ %s has no configuration left to destroy from (%s): socle keeps it from the instance's last plan", stack, instance, f.root()))
	}
	lg := r.openLog(f, LogDestroy, secrets)
	defer func() { lg.end(run.ended()) }()
	defer func() {
		os.Remove(f.path(varsFile))
		os.Remove(f.path(planFile))
		if err := f.closeState(); err != nil && run.Status == RunApplied {
			run.Status, run.Reason, run.Message = RunFailed, ReasonWorkDir, fmt.Sprintf("destroyed, but sealing the state failed: %v", err)
		}
	}()
	if err := f.openState(st); err != nil {
		return fail(RunRefused, reasonOf(err, ReasonWorkDir), err)
	}
	if found {
		if err := writeJSON(f.path(varsFile), in.Inputs); err != nil {
			return fail(RunRefused, ReasonWorkDir, err)
		}
	}
	env, err := r.env()
	if err != nil {
		return fail(RunRefused, ReasonWorkDir, err)
	}
	tf, err := r.terraform(ctx, f.root(), env, lg)
	if err != nil {
		return fail(RunRefused, ReasonWorkDir, err)
	}
	if err := r.step(ctx, func(ctx context.Context) error { return tf.Init(ctx) }); err != nil {
		return fail(RunFailed, reasonOf(err, ReasonInitFailed), fmt.Errorf("terraform init: %w", err))
	}
	opts := []tfexec.PlanOption{tfexec.Destroy(true), tfexec.Out(f.path(planFile))}
	if found {
		opts = append(opts, tfexec.VarFile(f.path(varsFile)))
	}
	if err := r.step(ctx, func(ctx context.Context) error { _, err := tf.Plan(ctx, opts...); return err }); err != nil {
		return fail(RunFailed, reasonOf(err, ReasonPlanFailed), fmt.Errorf("terraform plan -destroy: %w", err))
	}
	p, err := r.show(ctx, f.root(), f.path(planFile), env)
	if err != nil {
		return fail(RunFailed, reasonOf(err, ReasonShowFailed), fmt.Errorf("terraform show: %w", err))
	}
	res := Result{Stack: stack, Instance: instance, Of: "environment", Status: StatusPlanned, Reason: ReasonChanges}
	if rm.PerZone {
		res.Of = "zone"
	}
	res.Changes, _, res.MoreChanges = Changes(p, secrets)
	for _, c := range res.Changes {
		if c.Action == ActionDelete {
			res.Summary.Destroy++
		}
	}
	run.Summary = res.Summary
	if judge != nil {
		if denied, why := judge(&res); denied {
			return fail(RunRefused, ReasonDestroyDenied, fmt.Errorf("the destroy of %s @ %s is denied: %s", stack, instance, why))
		}
	}
	if run.PlanID, err = newPlanID(f.path(planFile)); err != nil {
		return fail(RunRefused, ReasonWorkDir, err)
	}

	host, _ := os.Hostname()
	run.Holder, run.Started = lease.Holder{PID: os.Getpid(), Host: host, Since: r.now()}, r.now()
	run.Status = RunApplying
	if err := f.writeRun(run); err != nil {
		return fail(RunRefused, ReasonWorkDir, fmt.Errorf("recording the run: %w", err))
	}
	if err := f.backup(r.now(), r.keep()); err != nil {
		return fail(RunFailed, ReasonWorkDir, fmt.Errorf("backing up the state: %w", err))
	}
	// A lease lost (an admin's forced unlock) stops terraform.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-le.Lost():
			cancel()
		case <-tctx.Done():
		}
	}()
	if err := r.step(tctx, func(ctx context.Context) error { return tf.Apply(ctx, tfexec.DirOrPlan(f.path(planFile))) }); err != nil {
		if ctx.Err() != nil {
			return run // socle stops: the run stays Applying, recovered as Interrupted
		}
		fail(RunFailed, reasonOf(err, ReasonApplyFailed), fmt.Errorf("terraform apply of the destroy plan: %w", err))
	} else {
		run.Status, run.Reason = RunApplied, ReasonApplied
		// Dependents read no outputs of what is gone.
		if err := f.writeSealed(outputsFile, outputsRecord{PlanID: run.PlanID, Applied: r.now(), Outputs: map[string]recordedOutput{}}); err != nil {
			fail(RunFailed, ReasonWorkDir, fmt.Errorf("destroyed, but recording no outputs failed: %w", err))
		}
	}
	run.Finished = r.now()
	if err := f.writeRun(run); err != nil {
		r.logError("recording a destroy", err, run)
	}
	if err := f.archive(run, r.keep()); err != nil {
		r.logError("keeping the history of a destroy", err, run)
	}
	return run
}

// hasResources reports whether a terraform state (JSON) holds resources;
// a state it cannot read is taken to hold some.
func hasResources(state []byte) bool {
	var st struct {
		Resources []json.RawMessage `json:"resources"`
	}
	return json.Unmarshal(state, &st) != nil || len(st.Resources) > 0
}
