package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/spec"
)

// DriftStatus says what a drift check found.
type DriftStatus string

// The statuses of a drift check.
const (
	DriftInSync  DriftStatus = "InSync"  // the infrastructure is as the state says
	DriftDrifted DriftStatus = "Drifted" // something changed outside socle
	// DriftNotApplied: the instance has no state yet, nothing to check.
	DriftNotApplied DriftStatus = "NotApplied"
	DriftWaiting    DriftStatus = "Waiting" // an input waits for an upstream to apply
	DriftFailed     DriftStatus = "Failed"
)

// The reasons of a drift check's status (besides those of a plan's
// failures).
const (
	ReasonChangedOutside Reason = "ChangedOutside"
	ReasonNotApplied     Reason = "NotApplied"
	// ReasonStateWritten: terraform wrote the state during the
	// refresh-only plan, which it should not; what it wrote is kept,
	// sealed, as after any run (terraform's state is the truth).
	ReasonStateWritten Reason = "StateWritten"
)

// DriftResult is a drift check of one instance, as people and the API see
// it: nothing in it is secret.
type DriftResult struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	// Hash is the instance's content hash the check ran with.
	Hash    string      `json:"hash,omitempty"`
	Checked time.Time   `json:"checked"`
	Status  DriftStatus `json:"status"`
	Reason  Reason      `json:"reason"`
	Message string      `json:"message,omitempty"`
	// Summary is one line for people, e.g. "Drifted: 2 resources changed
	// outside socle: a.x, b.y (deleted)".
	Summary string    `json:"summary"`
	Pending []Pending `json:"pending,omitempty"`
	// Drifted are the resources changed outside socle, as terraform's
	// refresh found them: update (the object differs from the state, the
	// attributes that differ with their value in the state as before and
	// the one found as after) or delete (the object is gone). Sensitive
	// values are redacted, as in a plan's changes.
	Drifted     []ResourceChange `json:"drifted,omitempty"`
	MoreDrifted int              `json:"moreDrifted,omitempty"`
}

// Files of a drift check: its result, beside the instance's, and the
// working directory it runs terraform in while it runs (not the plan's:
// a saved plan awaiting approval is applied from that one).
const (
	driftFile = "drift.json"
	driftWork = "work-drift"
)

// Drift checks an applied instance of s for changes made outside socle:
// under the instance's run lock, it runs terraform plan -refresh-only
// with the instance's inputs and reads the plan's resource drift. It
// writes no state (the sealed state is left as it is, byte for byte) and
// leaves the saved plan and the plan's result alone; it runs terraform
// each time (no cache: drift is what the repository does not say). The
// result is recorded beside the instance (LastDrift), unless the check
// could not take the instance's lock or was refused before it.
//
// The drift is read from the plan, not from terraform's exit code:
// -detailed-exitcode says 2 now and then for a refresh-only plan that
// finds nothing (hashicorp/terraform#36403).
func (r *Runner) Drift(ctx context.Context, repo *spec.Repo, fsys fs.FS, s *spec.Stack, name string) DriftResult {
	res := DriftResult{Stack: s.Name, Instance: name}
	refuse := func(reason Reason, err error) DriftResult {
		res.Status, res.Reason, res.Message = DriftFailed, reason, message(err, nil)
		res.Drifted, res.MoreDrifted = nil, 0
		res.finish(r.now())
		return res
	}
	if !slices.Contains(s.Instances(), name) {
		return refuse(ReasonInputs, fmt.Errorf("stack %s has no instance %q (it has %s)", s.Name, name, strings.Join(s.Instances(), ", ")))
	}
	f := r.files(s, name)
	if f.key == nil {
		return refuse(ReasonNoSecret, fmt.Errorf("checking %s @ %s for drift: %w", s.Name, name, ErrNoSecret))
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return refuse(ReasonWorkDir, err)
	}
	le, err := r.lock(ctx, s.Name, name)
	if err != nil {
		if errors.Is(err, lease.ErrHeld) {
			return refuse(ReasonLocked, err)
		}
		return refuse(ReasonWorkDir, err)
	}
	defer le.Release()
	res = r.drift(ctx, repo, fsys, s, f, res)
	res.finish(r.now())
	if err := writeJSON(f.path(driftFile), res); err != nil {
		return refuse(ReasonWorkDir, fmt.Errorf("recording the drift check of %s @ %s: %w", s.Name, name, err))
	}
	return res
}

// drift is Drift under the instance's lock.
// Its result is named: the deferred put-back may turn it into a failure.
func (r *Runner) drift(ctx context.Context, repo *spec.Repo, fsys fs.FS, s *spec.Stack, f *files, base DriftResult) (res DriftResult) {
	res = base
	var secrets []string
	fail := func(reason Reason, err error) DriftResult {
		res.Status, res.Reason, res.Message = DriftFailed, reason, message(err, secrets)
		res.Drifted, res.MoreDrifted = nil, 0
		return res
	}
	if err := r.recover(ctx, f); err != nil {
		return fail(reasonOf(err, ReasonWorkDir), err)
	}
	st, err := f.readState()
	if err != nil {
		return fail(reasonOf(err, ReasonWorkDir), err)
	}
	if !f.own && !st.found {
		return res.notApplied()
	}
	in, err := Resolve(repo, r.outputs(), s, f.instance)
	if err != nil {
		return fail(ReasonInputs, err)
	}
	secrets = in.secrets()
	res.Hash = in.Hash
	if len(in.Pending) > 0 {
		res.Pending = in.Pending
		res.Status, res.Reason = DriftWaiting, ReasonUpstreamNotApplied
		res.Message = "not checked: inputs are known only after their upstream applies"
		return res
	}
	// Registered before the state is put back, it runs after: the log
	// ends with how the check did.
	lg := r.openLog(f, LogDrift, secrets)
	defer func() { lg.end(res.ended()) }()
	defer os.RemoveAll(f.path(driftWork))
	root, err := prepareIn(fsys, in, f.dir, driftWork)
	if err != nil {
		return fail(ReasonWorkDir, err)
	}
	// The clear files are those of a plan (varsFile, planFile), which
	// the next run removes if socle stops meanwhile: a run holds the
	// lock, so no plan's are there now.
	varFile, planPath := f.path(varsFile), f.path(planFile)
	defer func() {
		os.Remove(varFile)
		os.Remove(planPath)
		written, err := f.putBack(st)
		switch {
		case err != nil && res.Status != DriftFailed:
			res = fail(ReasonWorkDir, fmt.Errorf("putting the state back: %w", err))
		case written:
			res = fail(ReasonStateWritten, fmt.Errorf("terraform wrote the state of %s @ %s during a refresh-only plan: what it wrote is kept, sealed; plan the instance to see what changed", f.stack, f.instance))
		}
	}()
	if err := f.openState(st); err != nil {
		return fail(reasonOf(err, ReasonWorkDir), err)
	}
	if err := writeJSON(varFile, in.Inputs); err != nil {
		return fail(ReasonWorkDir, err)
	}
	env, err := r.env()
	if err != nil {
		return fail(ReasonWorkDir, err)
	}
	tf, err := r.terraform(ctx, root, env, lg)
	if err != nil {
		return fail(ReasonWorkDir, err)
	}
	if err := r.step(ctx, func(ctx context.Context) error { return tf.Init(ctx) }); err != nil {
		return fail(reasonOf(err, ReasonInitFailed), fmt.Errorf("terraform init: %w", err))
	}
	// The exit code (-detailed-exitcode, which tf.Plan passes) is not
	// read: see Drift.
	if err := r.step(ctx, func(ctx context.Context) error {
		_, err := tf.Plan(ctx, tfexec.RefreshOnly(true), tfexec.Out(planPath), tfexec.VarFile(varFile))
		return err
	}); err != nil {
		return fail(reasonOf(err, ReasonPlanFailed), fmt.Errorf("terraform plan -refresh-only: %w", err))
	}
	p, err := r.show(ctx, root, planPath, env)
	if err != nil {
		return fail(reasonOf(err, ReasonShowFailed), fmt.Errorf("terraform show: %w", err))
	}
	if f.own && noResources(p.PriorState) {
		return res.notApplied()
	}
	res.Drifted, res.MoreDrifted = resourceChanges(managed(p.ResourceDrift), secrets)
	if len(res.Drifted) > 0 || res.MoreDrifted > 0 {
		res.Status, res.Reason = DriftDrifted, ReasonChangedOutside
	} else {
		res.Status, res.Reason = DriftInSync, ReasonUpToDate
	}
	return res
}

func (d DriftResult) notApplied() DriftResult {
	d.Status, d.Reason, d.Message = DriftNotApplied, ReasonNotApplied, "never applied: there is no state to check"
	return d
}

// putBack ends a run that must not write the state: the state in clear
// is removed if it is as it was opened, the sealed one left as it is (to
// seal it again would change its bytes, a fresh nonce, for nothing).
// Otherwise terraform wrote it (written): it is sealed, as after a plan,
// so that nothing it wrote is lost.
func (f *files) putBack(st state) (written bool, err error) {
	os.Remove(f.path(stateBackup))
	if f.own {
		return false, nil
	}
	plain, err := readBounded(f.path(stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if bytes.Equal(plain, st.plain) {
		return false, os.Remove(f.path(stateFile))
	}
	return true, f.closeState()
}

// managed leaves out data sources: reading one again is no drift.
func managed(rcs []*tfjson.ResourceChange) []*tfjson.ResourceChange {
	return slices.DeleteFunc(slices.Clone(rcs), func(rc *tfjson.ResourceChange) bool {
		return rc == nil || rc.Mode == tfjson.DataResourceMode
	})
}

// noResources reports whether a state holds no resource (none yet).
func noResources(st *tfjson.State) bool {
	if st == nil || st.Values == nil {
		return true
	}
	var has func(m *tfjson.StateModule) bool
	has = func(m *tfjson.StateModule) bool {
		return m != nil && (len(m.Resources) > 0 || slices.ContainsFunc(m.ChildModules, has))
	}
	return !has(st.Values.RootModule)
}

// finish stamps the check and writes its summary.
func (d *DriftResult) finish(at time.Time) {
	d.Checked = at
	d.Summary = d.summary()
}

// maxSummary is how many addresses a summary names.
const maxSummary = 5

func (d *DriftResult) summary() string {
	switch d.Status {
	case DriftDrifted:
		n := len(d.Drifted) + d.MoreDrifted
		noun := "resources"
		if n == 1 {
			noun = "resource"
		}
		var names []string
		for _, c := range d.Drifted[:min(len(d.Drifted), maxSummary)] {
			if c.Action == ActionDelete {
				names = append(names, c.Address+" (deleted)")
			} else {
				names = append(names, c.Address)
			}
		}
		line := fmt.Sprintf("Drifted: %d %s changed outside socle: %s", n, noun, strings.Join(names, ", "))
		if n > len(names) {
			line += fmt.Sprintf(" and %d more", n-len(names))
		}
		return line
	case DriftInSync:
		return "InSync: nothing changed outside socle"
	case DriftNotApplied:
		return "NotApplied: never applied, nothing to check"
	}
	first, _, _ := strings.Cut(d.Message, "\n")
	return spec.Truncate(fmt.Sprintf("%s (%s): %s", d.Status, d.Reason, first), 300)
}

// LastDrift returns the last drift check of stack's instance, as recorded
// beside it (without running terraform); ok is false when it was never
// checked here. It may be stale: the infrastructure may have changed
// since, which is what the next check is for.
func (r *Runner) LastDrift(stack, instance string) (DriftResult, bool, error) {
	var d DriftResult
	ok, err := readJSON(filepath.Join(instanceDir(r.Dir, stack, instance), driftFile), &d)
	if err != nil {
		return DriftResult{}, false, fmt.Errorf("reading the last drift check of %s @ %s: %w", stack, instance, err)
	}
	return d, ok, nil
}
