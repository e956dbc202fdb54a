package wiring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// DriversConfig wires Drivers to a registry and to the revision in force.
type DriversConfig struct {
	Registry *runtime.Registry
	// Host is what the runtimes are given; Drivers sets its Config.
	Host runtime.Host
	// Env returns an environment of the revision in force, nil if none;
	// Envs every one. The revision was loaded with Load and the same
	// registry, so that each runtime block is decoded.
	Env  func(name string) *spec.Environment
	Envs func() []spec.Environment
	// Clock times the retries of runtimes that failed to open.
	Clock clock.Clock
	// Replicas, when set, turns the replica driver of an instance (a
	// runtime whose replicas socle starts one by one behind its proxy)
	// into the unit driver the engine drives: the engine's replica runtime
	// over it (package replicas). It is called once per instance. nil:
	// For and All leave such runtimes out.
	Replicas func(runtime.Driver) runtime.UnitDriver
}

// Drivers opens the runtimes of the environments in force through the
// registry: the instance that serves an environment (one per kubeconfig
// context, one for every local environment) is opened when first needed,
// once, and kept, so that a slow or unreachable cluster holds up only its
// own environments; one that fails to open is tried again after a while,
// not on every pass of every unit.
//
// It gives the engine the unit driver of each environment (apps.Runtimes):
// a runtime that runs whole units as it is, one that runs replicas through
// DriversConfig.Replicas; and socle the replica driver itself (Replicas),
// to stop what it runs.
type Drivers struct {
	cfg  DriversConfig
	host runtime.Host

	mu     sync.Mutex
	open   map[instanceKey]runtime.Instance
	units  map[instanceKey]runtime.UnitDriver // the unit driver of each instance open, nil for none
	failed map[instanceKey]failure
	closed bool
}

// instanceKey names an opened runtime: its type and instance.
type instanceKey struct{ typ, instance string }

// failure is an instance that could not be opened.
type failure struct {
	err error
	at  time.Time
}

// openRetry is how long an instance that failed to open is not tried
// again.
const openRetry = 30 * time.Second

// NewDrivers returns the runtimes of cfg's registry, none opened yet.
func NewDrivers(cfg DriversConfig) *Drivers {
	cfg.Clock = clock.Or(cfg.Clock)
	d := &Drivers{cfg: cfg, open: map[instanceKey]runtime.Instance{}, units: map[instanceKey]runtime.UnitDriver{}, failed: map[instanceKey]failure{}}
	d.host = cfg.Host
	d.host.Config = func(env string) any {
		if e := cfg.Env(env); e != nil {
			return e.Runtime.Config
		}
		return nil
	}
	return d
}

// ErrNoRuntime is returned, wrapped, for an environment whose runtime
// cannot be known: its type is not registered, or its block was not
// decoded by it.
var ErrNoRuntime = errors.New("no runtime")

// For returns env's unit driver: nil and no error for an environment that
// is not in force, or whose runtime runs replicas when there is no
// DriversConfig.Replicas.
func (d *Drivers) For(env string) (runtime.UnitDriver, error) {
	e := d.cfg.Env(env)
	if e == nil {
		return nil, nil
	}
	_, k, err := d.instanceOf(e)
	if err != nil {
		return nil, err
	}
	return d.unitDriver(k), nil
}

// All opens the runtime of every environment in force and returns the
// unit drivers of every runtime open (those of environments no longer in
// force too), so that the engine finds the units they run.
func (d *Drivers) All() []runtime.UnitDriver {
	for _, e := range d.cfg.Envs() {
		_, _, _ = d.instanceOf(&e) // For says why one does not open, unit by unit
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []runtime.UnitDriver
	for _, ud := range d.units {
		if ud != nil {
			out = append(out, ud)
		}
	}
	return out
}

// unitDriver is the unit driver of the instance k, open.
func (d *Drivers) unitDriver(k instanceKey) runtime.UnitDriver {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.units[k]
}

// unitDriverOf is inst as the engine drives it: itself when it runs whole
// units, else its replicas through DriversConfig.Replicas (nil without).
func (d *Drivers) unitDriverOf(inst runtime.Instance) runtime.UnitDriver {
	if inst.Capabilities().Units {
		ud, _ := inst.(runtime.UnitDriver)
		return ud
	}
	if drv, ok := inst.(runtime.Driver); ok && d.cfg.Replicas != nil {
		return d.cfg.Replicas(drv)
	}
	return nil
}

// Replicas opens the replica driver of runtime type typ: the instance that
// serves every environment of it (a type without InstanceOf).
func (d *Drivers) Replicas(typ string) (runtime.Driver, error) {
	inst, _, err := d.only(typ)
	if err != nil {
		return nil, err
	}
	drv, ok := inst.(runtime.Driver)
	if !ok || inst.Capabilities().Units {
		return nil, fmt.Errorf("runtime %s runs whole units, not replicas", typ)
	}
	return drv, nil
}

// Units opens the unit driver of runtime type typ's one instance (a type
// without InstanceOf), whatever environment it serves: nil when it runs
// replicas and there is no DriversConfig.Replicas.
func (d *Drivers) Units(typ string) (runtime.UnitDriver, error) {
	_, k, err := d.only(typ)
	if err != nil {
		return nil, err
	}
	return d.unitDriver(k), nil
}

// only opens the instance that serves every environment of type typ.
func (d *Drivers) only(typ string) (runtime.Instance, instanceKey, error) {
	k := instanceKey{typ: typ}
	t, ok := d.cfg.Registry.Lookup(typ)
	if !ok {
		return nil, k, fmt.Errorf("%w: runtime type %q is not registered", ErrNoRuntime, typ)
	}
	if t.InstanceOf != nil {
		return nil, k, fmt.Errorf("runtime %s has an instance per environment's config, not one for all", typ)
	}
	k.typ = t.Name
	inst, err := d.instance(t, k)
	return inst, k, err
}

// instanceOf opens the instance that serves e, named by k.
func (d *Drivers) instanceOf(e *spec.Environment) (inst runtime.Instance, k instanceKey, err error) {
	t, ok := d.cfg.Registry.Lookup(string(e.Runtime.Type))
	if !ok {
		return nil, k, fmt.Errorf("%w: environment %s: runtime type %q is not registered", ErrNoRuntime, e.Name, e.Runtime.Type)
	}
	if e.Runtime.Config == nil {
		return nil, k, fmt.Errorf("%w: environment %s: its runtime block was not decoded", ErrNoRuntime, e.Name)
	}
	k.typ = t.Name
	if t.InstanceOf != nil {
		k.instance = t.InstanceOf(e.Runtime.Config)
	}
	inst, err = d.instance(t, k)
	return inst, k, err
}

func (d *Drivers) instance(t runtime.Type, k instanceKey) (runtime.Instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, runtime.ErrClosed
	}
	if inst := d.open[k]; inst != nil {
		return inst, nil
	}
	if f, ok := d.failed[k]; ok && clock.Since(d.cfg.Clock, f.at) < openRetry {
		return nil, f.err
	}
	// Opening asks nothing of a cluster (kubernetes.New reads a
	// kubeconfig): holding the lock is brief.
	inst, err := t.Open(d.host, k.instance)
	if err != nil {
		d.failed[k] = failure{err: err, at: d.cfg.Clock.Now()}
		return nil, err
	}
	delete(d.failed, k)
	d.open[k] = inst
	d.units[k] = d.unitDriverOf(inst)
	return inst, nil
}

// ReplicasOf opens the runtime of env, in force, and returns its replica
// driver: nil when it runs whole units.
func (d *Drivers) ReplicasOf(env string) (runtime.Driver, error) {
	e := d.cfg.Env(env)
	if e == nil {
		return nil, fmt.Errorf("%w: environment %s is not in force", ErrNoRuntime, env)
	}
	inst, _, err := d.instanceOf(e)
	if err != nil {
		return nil, err
	}
	if drv, ok := inst.(runtime.Driver); ok && !inst.Capabilities().Units {
		return drv, nil
	}
	return nil, nil
}

// StopReplicas stops every replica of every replica driver open (socle
// stopping without --keep-running), the drivers in parallel.
func (d *Drivers) StopReplicas(ctx context.Context) error {
	d.mu.Lock()
	var drivers []runtime.Driver
	for _, inst := range d.open {
		if drv, ok := inst.(runtime.Driver); ok && !inst.Capabilities().Units {
			drivers = append(drivers, drv)
		}
	}
	d.mu.Unlock()
	errs := make([]error, len(drivers))
	var wg sync.WaitGroup
	for i, drv := range drivers {
		wg.Go(func() { errs[i] = drv.StopAll(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes every runtime opened (a replica driver detaches from its
// replicas, which keep running) and opens none afterwards.
func (d *Drivers) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var errs []error
	for k, inst := range d.open {
		if c, ok := inst.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing runtime %s %q: %w", k.typ, k.instance, err))
			}
		}
	}
	clear(d.open)
	clear(d.units)
	return errors.Join(errs...)
}
