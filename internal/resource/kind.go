package resource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/unit"
)

// The reasons a resource unit's status gives, besides the engine's.
const (
	// ReasonProvisioning: Progressing, the driver provisions the resource.
	ReasonProvisioning reconcile.Reason = "Provisioning"
	// ReasonProvisionFailed: Failed, the driver could not provision it;
	// tried again at RetryAt, or at once when its desired state changes.
	ReasonProvisionFailed reconcile.Reason = "ProvisionFailed"
	// ReasonCheckFailed: Degraded, what was provisioned no longer works
	// (a server died); it is provisioned again, after a backoff when the
	// check failed right after a provision (RetryAt).
	ReasonCheckFailed reconcile.Reason = "CheckFailed"
	// ReasonNoDriver: Failed, this socle has no driver of that name.
	ReasonNoDriver reconcile.Reason = "NoDriver"
	// ReasonRetained: Orphaned, a data-bearing resource removed from Git
	// in production, kept until an admin deletes it.
	ReasonRetained reconcile.Reason = "Retained"
	// ReasonDeprovisioning: Progressing, removed from Git, the driver
	// removes it.
	ReasonDeprovisioning reconcile.Reason = "Deprovisioning"
)

// RetainedMessage is the status of a data-bearing resource removed from
// Git in production, k: kept, and how an admin deletes it.
func RetainedMessage(k unit.Key) string {
	return fmt.Sprintf("Retained: data-bearing resource kept in production; an admin deletes it with socle resource delete %s --env %s", k.Name, k.Env)
}

// Config wires the kind.
type Config struct {
	// Dir keeps the units' outputs, sealed with Secret (the data
	// directory's): <data>/resource-outputs.
	Dir    string
	Secret []byte
	// Drivers are the provisioner drivers this socle has, by name.
	Drivers map[string]provision.Driver
	// Serves reports whether env's runtime reads provisioned outputs
	// (nil: every one does): resources of the others are not provisioned.
	Serves func(env string) bool
	// After returns the units a resource waits for before it is
	// provisioned (nil: none): a stack provisioner's resource waits for
	// the stack instance whose outputs it takes, so that it is
	// provisioned once that instance applies, and says why meanwhile.
	After func(repo *spec.Repo, d *Desired) []unit.Key
	// OnOutputs is told, before a unit's status says its resource is
	// provisioned, that outputs were kept: the redactor learns the secret
	// ones before any app reads them. It runs in the unit's pass, and may
	// read the kind's outputs (SecretValues).
	OnOutputs func()
	Logger    *slog.Logger
}

// Kind is the engine's kind of resource units. Observe checks what was
// provisioned; Plan provisions when it never was, when its desired state
// changed, or when the check failed (a PostgreSQL server killed is
// started again, on its data); Prune deprovisions, or keeps a data-bearing
// resource in production.
type Kind struct {
	cfg Config
	rec *records
	log *slog.Logger

	mu      sync.Mutex
	desired map[unit.Key]*Desired  // the units Units last returned, by key
	repo    *spec.Repo             // the revision Units last derived them from (nil before one)
	host    reconcile.Host         // Start's: Delete triggers the unit's pass
	deletes map[unit.Key]*deletion // asked for by Delete, not taken by Prune yet
}

var (
	_ reconcile.Kind      = (*Kind)(nil)
	_ reconcile.Describer = (*Kind)(nil)
)

// New returns the resource kind.
func New(cfg Config) (*Kind, error) {
	rec, err := newRecords(cfg.Dir, cfg.Secret)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Kind{cfg: cfg, rec: rec, log: cfg.Logger, desired: map[unit.Key]*Desired{}, deletes: map[unit.Key]*deletion{}}, nil
}

// ID is "resource".
func (k *Kind) ID() string { return KindID }

// Units returns the desired resource units of the desired app units and
// the app units depending on them (package function units, in the
// environments whose runtime reads provisioned outputs), and remembers
// which resources are desired, for Outputs and Resources.
//
// Before a revision is in force (repo nil: socle starting), the resources
// desired are those provisioned before, as they were: not knowing which
// resources the workloads ask for must neither deprovision one nor let an
// app read made-up outputs in place of its database's.
func (k *Kind) Units(repo *spec.Repo, apps []unit.Desired) (resources, out []unit.Desired) {
	var desired map[unit.Key]*Desired
	if repo == nil {
		resources, desired, out = k.kept(apps)
	} else {
		resources, desired, out = units(repo, apps, k.cfg.Serves, k.cfg.After)
	}
	k.mu.Lock()
	k.desired = desired
	if repo != nil {
		k.repo = repo
	}
	k.mu.Unlock()
	return resources, out
}

// retained reports whether d, removed from Git, is kept: it holds data in
// production, by its record or by the revision in force (an environment
// made production, or a provisioner made data-bearing, in the revision
// that removes it). A wrong keep is mended by an admin's delete; a wrong
// deprovision loses the data.
func (k *Kind) retained(d *Desired) bool {
	if d.Data && d.Production {
		return true
	}
	k.mu.Lock()
	repo := k.repo
	k.mu.Unlock()
	if repo == nil || !(d.Production || repo.Production(d.Env)) {
		return false
	}
	if d.Data {
		return true
	}
	for _, p := range repo.Provisioners {
		if p.Name == d.Provisioner {
			return p.Data
		}
	}
	for _, p := range spec.BuiltinProvisioners {
		if p.Name == d.Provisioner {
			return p.Data
		}
	}
	return false
}

// kept returns the units of the resources provisioned before, each as it
// was provisioned, and the app units depending on those of their
// resources that were.
func (k *Kind) kept(apps []unit.Desired) (resources []unit.Desired, desired map[unit.Key]*Desired, out []unit.Desired) {
	recs, err := k.rec.all()
	if err != nil {
		k.log.Warn("reading the provisioned resources", "err", err)
	}
	out = slices.Clone(apps)
	for i := range out {
		a := &out[i]
		var d App
		if json.Unmarshal(a.Spec, &d) != nil {
			continue
		}
		for _, res := range slices.Sorted(maps.Keys(d.Resources)) {
			if key := Key(NameOf(d.App, res, d.Resources[res]), d.Env); recs[key] != nil {
				a.DependsOn = append(slices.Clone(a.DependsOn), key)
			}
		}
	}
	desired = make(map[unit.Key]*Desired, len(recs))
	for _, key := range slices.SortedFunc(maps.Keys(recs), unit.Key.Compare) {
		if raw, err := json.Marshal(recs[key].Spec); err == nil {
			resources = append(resources, unit.Desired{Key: key, Spec: raw})
			desired[key] = &recs[key].Spec
		}
	}
	return resources, desired, out
}

// Start returns the units that have outputs kept: one removed from Git
// while socle was stopped is deprovisioned (or retained).
func (k *Kind) Start(_ context.Context, h reconcile.Host) ([]unit.Key, error) {
	k.mu.Lock()
	k.host = h
	k.mu.Unlock()
	keys, err := k.rec.keys()
	if err != nil {
		return nil, fmt.Errorf("listing the provisioned resources: %w", err)
	}
	return keys, nil
}

// Decode reads a Desired.
func (k *Kind) Decode(raw json.RawMessage) (any, error) {
	var d Desired
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("reading the desired state of a resource: %w", err)
	}
	if d.Name == "" || d.Env == "" || d.Type == "" || d.Driver == "" {
		return nil, fmt.Errorf("the desired state of a resource lacks its name, environment, type or driver")
	}
	return &d, nil
}

// memo is what the kind keeps of a unit between passes: the last failure
// to provision (or of the check right after a provision) and its backoff.
type memo struct {
	failedHash string
	err        error
	check      bool // err is the check that failed right after a provision
	fails      int  // failures in a row: the backoff doubles with each
	retryAt    time.Time
	// provisioned is the hash Apply just provisioned: the Observe that
	// follows it in the pass says whether what it made works.
	provisioned string
}

func memoOf(u *reconcile.Unit) *memo {
	m, ok := u.Memo.(*memo)
	if !ok {
		m = &memo{}
		u.Memo = m
	}
	return m
}

// failed reports whether provisioning hash failed last.
func (m *memo) failed(hash string) bool { return m.err != nil && m.failedHash == hash }

// fail keeps a failure to provision hash (check: of the check right
// after) and returns the backoff before the next attempt: 1 s, doubled
// with each failure in a row, at most 5 min.
func (m *memo) fail(hash string, err error, check bool, now time.Time) time.Duration {
	m.failedHash, m.err, m.check = hash, err, check
	m.fails++
	backoff := min(time.Second<<min(m.fails-1, 16), 5*time.Minute)
	m.retryAt = now.Add(backoff)
	return backoff
}

// observed is what a pass found of a unit.
type observed struct {
	hash     string
	rec      *record // nil: never provisioned
	checkErr error   // what Check found wrong with what rec says was provisioned
	// changed: the driver would return other outputs now (a stack
	// applied again).
	changed bool
	driver  provision.Driver
}

// stale reports whether the resource must be provisioned (again).
func (o *observed) stale() bool { return o.rec == nil || o.rec.Hash != o.hash }

// Observe reads the unit's record and, when it was provisioned for its
// desired state, has the driver check that what it made still works.
func (k *Kind) Observe(ctx context.Context, u *reconcile.Unit) (any, error) {
	d := u.Spec.(*Desired)
	o := &observed{hash: d.hash(), driver: k.cfg.Drivers[d.Driver]}
	rec, err := k.rec.get(u.Key)
	if err != nil {
		return nil, err
	}
	o.rec = rec
	// What decides whether a removal keeps the resource (it holds data,
	// in production) and which apps used it follow Git without a new
	// provision: an environment made production after its database was
	// provisioned keeps that database when it is removed.
	if rec != nil && (rec.Spec.Data != d.Data || rec.Spec.Production != d.Production || !slices.Equal(rec.Spec.Apps, d.Apps)) {
		up := *rec
		up.Spec.Data, up.Spec.Production, up.Spec.Apps = d.Data, d.Production, slices.Clone(d.Apps)
		if err := k.rec.put(u.Key, &up); err != nil {
			return nil, err
		}
		o.rec = &up
	}
	if o.driver != nil && !o.stale() {
		o.checkErr = o.driver.Check(ctx, d.Request)
		if ch, ok := o.driver.(provision.Changer); ok && o.checkErr == nil {
			if o.changed, err = ch.Changed(ctx, d.Request, o.rec.Outputs); err != nil {
				o.checkErr = err
			}
		}
	}
	m := memoOf(u)
	switch {
	case m.provisioned == o.hash && o.checkErr != nil:
		// What was just provisioned does not work: it is provisioned
		// again after a backoff, as when provisioning fails, not at
		// every pass.
		backoff := m.fail(o.hash, o.checkErr, true, u.Now)
		k.log.Warn("a resource fails its check right after it was provisioned", "resource", u.Key.Name, "env", u.Key.Env, "type", d.Type,
			"err", o.checkErr, "retry", backoff)
	case o.checkErr == nil && !o.stale() && (m.provisioned == o.hash || m.check):
		*m = memo{} // it works: no failure in a row any more
	}
	m.provisioned = ""
	if m.failed(o.hash) && u.Now.Before(m.retryAt) {
		u.RequeueAfter(m.retryAt.Sub(u.Now))
	}
	return o, nil
}

// provisionStep provisions the resource.
type provisionStep struct{ why string }

func (provisionStep) Starts() bool     { return true }
func (s provisionStep) String() string { return "provision (" + s.why + ")" }

// Plan provisions a resource never provisioned, whose desired state
// changed, or whose check failed; not before the backoff of a failure to
// provision the same desired state, or of its check right after.
func (k *Kind) Plan(u *reconcile.Unit, obs any) reconcile.Step {
	o := obs.(*observed)
	if o.driver == nil {
		return nil
	}
	if m := memoOf(u); m.failed(o.hash) && u.Now.Before(m.retryAt) {
		return nil
	}
	switch {
	case o.rec == nil:
		return provisionStep{"never provisioned"}
	case o.rec.Hash != o.hash:
		return provisionStep{"its provisioner or params changed"}
	case o.checkErr != nil:
		return provisionStep{"the check failed"}
	case o.changed:
		return provisionStep{"its outputs changed"}
	}
	return nil
}

// Apply has the driver provision the resource and keeps its outputs. A
// failure is the unit's status (Failed, tried again after a backoff that
// doubles), not an error of the pass.
func (k *Kind) Apply(ctx context.Context, u *reconcile.Unit, step reconcile.Step) error {
	d := u.Spec.(*Desired)
	hash, drv := d.hash(), k.cfg.Drivers[d.Driver]
	u.Progress(func(st *reconcile.UnitStatus) {
		st.Phase, st.Reason, st.Message = reconcile.Progressing, ReasonProvisioning, fmt.Sprintf("provisioning %s with %s", d.Type, d.Provisioner)
	})
	outs, err := drv.Provision(ctx, d.Request)
	if err == nil {
		err = missing(d, outs)
	}
	outs = declared(d, outs)
	m := memoOf(u)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // socle stops: not a failure of the resource
		}
		u.RequeueAfter(m.fail(hash, err, false, u.Now))
		k.log.Warn("provisioning a resource failed", "resource", u.Key.Name, "env", u.Key.Env, "type", d.Type, "step", step.String(), "err", err)
		return nil
	}
	if err := k.rec.put(u.Key, &record{Spec: *d, Hash: hash, Outputs: outs, ProvisionedAt: u.Now}); err != nil {
		return err
	}
	// The failures in a row end when the check that follows passes.
	m.failedHash, m.err, m.check, m.provisioned = "", nil, false, hash
	if k.cfg.OnOutputs != nil {
		k.cfg.OnOutputs()
	}
	k.log.Info("resource provisioned", "resource", u.Key.Name, "env", u.Key.Env, "type", d.Type, "provisioner", d.Provisioner, "step", step.String())
	return nil
}

// missing says which declared outputs a driver did not return.
func missing(d *Desired, outs map[string]string) error {
	var lack []string
	for _, o := range d.Outputs {
		if _, ok := outs[o.Name]; !ok {
			lack = append(lack, o.Name)
		}
	}
	if len(lack) > 0 {
		return fmt.Errorf("driver %s returned no output %s, which provisioner %s declares", d.Driver, strings.Join(lack, ", "), d.Provisioner)
	}
	return nil
}

// declared keeps the outputs the provisioner declares: no workload reads
// another (validate), and only those are known secret or not, so another
// is not kept where it could show in clear (a stack's sensitive output
// that the provisioner does not pass on).
func declared(d *Desired, outs map[string]string) map[string]string {
	keep := make(map[string]string, len(d.Outputs))
	for _, o := range d.Outputs {
		if v, ok := outs[o.Name]; ok {
			keep[o.Name] = v
		}
	}
	return keep
}

// Health says how the resource is, in words.
func (k *Kind) Health(u *reconcile.Unit, obs any) reconcile.UnitStatus {
	o := obs.(*observed)
	d := u.Spec.(*Desired)
	var st reconcile.UnitStatus
	set := func(p reconcile.Phase, r reconcile.Reason, msg string) reconcile.UnitStatus {
		st.Phase, st.Reason, st.Message = p, r, msg
		return st
	}
	m := memoOf(u)
	switch {
	case o.driver == nil:
		return set(reconcile.Failed, ReasonNoDriver, fmt.Sprintf("provisioner %s names driver %q, which this socle does not have", d.Provisioner, d.Driver))
	case m.failed(o.hash) && m.check:
		st.RetryAt = m.retryAt
		return set(reconcile.Degraded, ReasonCheckFailed, fmt.Sprintf("%v right after it was provisioned; it is provisioned again at %s",
			m.err, m.retryAt.UTC().Format(time.RFC3339)))
	case m.failed(o.hash):
		st.RetryAt = m.retryAt
		return set(reconcile.Failed, ReasonProvisionFailed, fmt.Sprintf("provisioning %s with %s failed: %v; tried again at %s, or when its provisioner changes",
			d.Type, d.Provisioner, m.err, m.retryAt.UTC().Format(time.RFC3339)))
	case o.stale():
		return set(reconcile.Progressing, ReasonProvisioning, fmt.Sprintf("provisioning %s with %s", d.Type, d.Provisioner))
	case o.checkErr != nil:
		return set(reconcile.Degraded, ReasonCheckFailed, fmt.Sprintf("%v; it is provisioned again", o.checkErr))
	case o.changed:
		return set(reconcile.Progressing, ReasonProvisioning, fmt.Sprintf("the outputs of %s changed: provisioning it again with %s", d.Type, d.Provisioner))
	}
	return set(reconcile.Synced, "", fmt.Sprintf("%s provisioned by %s (%s) for %s", d.Type, d.Provisioner, d.Driver, strings.Join(d.Apps, ", ")))
}

// Prune deprovisions a resource no workload uses any more, except a
// data-bearing one in production, which stays (Orphaned, Retained) until
// an admin deletes it (Delete): then this pass deprovisions it.
func (k *Kind) Prune(ctx context.Context, u *reconcile.Unit) (bool, error) {
	del := k.takeDeletion(u.Key)
	gone, err := k.prune(ctx, u, del != nil)
	if del != nil {
		del.err = err
		close(del.done)
	}
	return gone, err
}

func (k *Kind) prune(ctx context.Context, u *reconcile.Unit, deleting bool) (bool, error) {
	rec, err := k.rec.get(u.Key)
	if err != nil || rec == nil {
		return err == nil, err
	}
	d := &rec.Spec
	if !deleting && k.retained(d) {
		u.Progress(func(st *reconcile.UnitStatus) {
			st.Phase, st.Reason, st.Message = reconcile.Orphaned, ReasonRetained, RetainedMessage(u.Key)
		})
		return false, nil
	}
	drv := k.cfg.Drivers[d.Driver]
	if drv == nil {
		return false, reconcile.Errorf(reconcile.ReasonRuntimeError, "removed from Git, but not deprovisioned: this socle has no driver %q", d.Driver)
	}
	why := "removed from Git"
	if deleting {
		why = "deleted by an admin"
	}
	msg, left := why+": deprovisioning "+d.Type, ""
	if l, ok := drv.(provision.Leaver); ok {
		left = l.Leaves(d.Request)
		msg = why + ": forgetting its outputs; " + left
	}
	u.Progress(func(st *reconcile.UnitStatus) {
		st.Phase, st.Reason, st.Message = reconcile.Progressing, ReasonDeprovisioning, msg
	})
	if err := drv.Deprovision(ctx, d.Request); err != nil {
		return false, fmt.Errorf("deprovisioning %s: %w", d.Type, err)
	}
	if err := k.rec.remove(u.Key); err != nil {
		return false, err
	}
	if left != "" {
		k.log.Info("resource removed, its outputs forgotten", "resource", u.Key.Name, "env", u.Key.Env, "type", d.Type, "why", why, "left", left)
	} else {
		k.log.Info("resource deprovisioned", "resource", u.Key.Name, "env", u.Key.Env, "type", d.Type, "why", why)
	}
	return true, nil
}

// The errors of Delete.
var (
	// ErrNotFound: socle keeps no resource of that name in that
	// environment.
	ErrNotFound = errors.New("no such resource")
	// ErrDeclared: a workload in Git still uses the resource; removing it
	// from the workloads removes it (or retains it, in production).
	ErrDeclared = errors.New("the resource is still declared in Git")
	// ErrDeleting: another deletion of the resource is under way.
	ErrDeleting = errors.New("a deletion of the resource is already under way")
)

// deletion is a Delete waiting for the unit's pass.
type deletion struct {
	taken bool // by Prune, under Kind.mu: it ends, whatever the caller's context
	done  chan struct{}
	err   error // Prune's, set before done is closed
}

// Delete deprovisions a resource removed from Git that socle keeps (a
// data-bearing one in production, retained; or one whose deprovisioning
// failed), with its record and its sealed outputs, and returns it as it
// was. The unit's own pass does it (Prune, which Delete asks the engine
// for): the engine never runs two passes of a unit at once, so a deletion
// cannot overlap a provisioning of the same resource, and a resource
// declared in Git again before its pass is not deleted (ErrDeclared).
//
// Delete waits for the pass: until the pass takes the request, ctx ending
// withdraws it; once taken, it waits for the driver. A driver that fails
// leaves the record, and Delete can be called again.
func (k *Kind) Delete(ctx context.Context, key unit.Key) (Resource, error) {
	rec, err := k.rec.get(key)
	if err != nil {
		return Resource{}, err
	}
	del := &deletion{done: make(chan struct{})}
	k.mu.Lock()
	host := k.host
	switch {
	case k.desired[key] != nil:
		err = ErrDeclared
	case rec == nil:
		err = ErrNotFound
	case k.deletes[key] != nil:
		err = ErrDeleting
	case host == nil:
		err = errors.New("the engine has not started")
	default:
		k.deletes[key] = del
	}
	k.mu.Unlock()
	if err != nil {
		return Resource{}, fmt.Errorf("deleting resource %s in %s: %w", key.Name, key.Env, err)
	}
	host.Trigger(key)
	select {
	case <-del.done:
	case <-ctx.Done():
		k.mu.Lock()
		withdrawn := !del.taken && k.deletes[key] == del // else taken, or refused
		if withdrawn {
			delete(k.deletes, key)
		}
		k.mu.Unlock()
		if withdrawn {
			return Resource{}, fmt.Errorf("resource %s in %s was not deleted: its unit was not looked at in time: %w", key.Name, key.Env, ctx.Err())
		}
		<-del.done
	}
	if del.err != nil {
		return Resource{}, fmt.Errorf("deleting resource %s in %s: %w", key.Name, key.Env, del.err)
	}
	return Resource{Key: key, Spec: rec.Spec, Outputs: rec.Outputs, ProvisionedAt: rec.ProvisionedAt}, nil
}

// takeDeletion returns the deletion asked for key, now taken, if any; one
// whose resource is declared again is refused.
func (k *Kind) takeDeletion(key unit.Key) *deletion {
	k.mu.Lock()
	defer k.mu.Unlock()
	del := k.deletes[key]
	if del == nil {
		return nil
	}
	delete(k.deletes, key)
	if k.desired[key] != nil {
		del.err = ErrDeclared
		close(del.done)
		return nil
	}
	del.taken = true
	return del
}

// Describe names a resource unit another waits on, and says why it is not
// Synced: "resource db (postgres) provisioning".
func (k *Kind) Describe(key unit.Key, spec any, st reconcile.UnitStatus) string {
	what := "resource " + key.Name
	if d, ok := spec.(*Desired); ok {
		what += " (" + d.Type + ")"
	}
	switch {
	case st.Reason == reconcile.ReasonDependencyNotReady:
		// Waiting itself: the app says for what.
		return what + " waiting for " + strings.TrimPrefix(st.Message, "Waiting: ")
	case st.Phase == reconcile.Pending, st.Phase == reconcile.Progressing, st.Phase == reconcile.Synced:
		return what + " provisioning"
	}
	return what + " " + strings.ToLower(string(st.Phase)) + ": " + st.Message
}

// Outputs returns the outputs of u's resources that socle provisions, by
// the resource's name in u's workload; a resource it leaves out is not
// provisioned by socle (no provisioner serves it, or its environment's
// runtime reads no provisioned outputs). A resource desired and never
// provisioned yet is an error: an app that uses it waits for it.
func (k *Kind) Outputs(u *plan.Unit) (map[string]provision.Outputs, error) {
	out := map[string]provision.Outputs{}
	for _, res := range slices.Sorted(maps.Keys(u.Resources)) {
		r := u.Resources[res]
		key := Key(NameOf(u.App, res, r), u.Env)
		k.mu.Lock()
		served := k.desired[key] != nil
		k.mu.Unlock()
		if !served {
			continue
		}
		rec, err := k.rec.get(key)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return nil, fmt.Errorf("resource %s (%s) is not provisioned yet", key.Name, r.Type)
		}
		out[res] = provision.Outputs{Values: rec.Outputs, Secret: rec.Spec.secret()}
	}
	return out, nil
}

// OutputsHash identifies the outputs of u's provisioned resources ("" for
// none): an app's release compares it, so that new outputs (a password
// rotated, another server) roll its replicas.
func (k *Kind) OutputsHash(u *plan.Unit) string {
	outs, err := k.Outputs(u)
	if err != nil || len(outs) == 0 {
		return ""
	}
	vals := make(map[string]map[string]string, len(outs))
	for res, o := range outs {
		vals[res] = o.Values
	}
	b, _ := json.Marshal(vals) // maps marshal in key order
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// SecretValues returns the secret outputs of every resource provisioned
// here, used by an app or not: they stay redacted after a resource is
// removed.
func (k *Kind) SecretValues() []string {
	all, _ := k.rec.all() // what does not read is not shown either
	var out []string
	for _, rec := range all {
		out = append(out, provision.Outputs{Values: rec.Outputs, Secret: rec.Spec.secret()}.Secrets()...)
	}
	return out
}

// Resource is a resource unit as people see it: desired, or kept
// (retained, or not deprovisioned yet) from what was provisioned.
type Resource struct {
	Key  unit.Key
	Spec Desired
	// Outputs are what the driver returned, nil before it was
	// provisioned; secret ones are in clear: the caller redacts them
	// (Spec.Secret).
	Outputs       map[string]string
	ProvisionedAt time.Time
	// Desired is false for a resource no workload uses any more.
	Desired bool
}

// Secret reports whether output name is secret.
func (d *Desired) Secret(name string) bool { return d.secret()[name] }

// Resources returns every resource unit desired or kept, in key order.
func (k *Kind) Resources() ([]Resource, error) {
	recs, err := k.rec.all()
	k.mu.Lock()
	desired := maps.Clone(k.desired)
	k.mu.Unlock()
	keys := slices.Collect(maps.Keys(desired))
	for key := range recs {
		if desired[key] == nil {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, unit.Key.Compare)
	out := make([]Resource, 0, len(keys))
	for _, key := range keys {
		r := Resource{Key: key}
		if d := desired[key]; d != nil {
			r.Spec, r.Desired = *d, true
		}
		if rec := recs[key]; rec != nil {
			if !r.Desired {
				r.Spec = rec.Spec
			}
			r.Outputs, r.ProvisionedAt = rec.Outputs, rec.ProvisionedAt
		}
		out = append(out, r)
	}
	return out, err
}
