package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/store"
)

// Router is the part of the proxy the engine drives.
type Router interface {
	SetRoute(ctx context.Context, r proxy.Route) error
	DeleteRoute(ctx context.Context, name string) error
	Stats(route, version string) proxy.Snapshot
	Routes() []proxy.RouteStatus
}

// Images builds and unpacks the images units run.
type Images interface {
	// Build returns the artifact of a unit's app at the unit's revision,
	// the digest its release records, building the app's image only if it
	// was never built. progress, when not nil, is told the build log's
	// last line while a build command runs (never for an image built
	// before); it must not block.
	Build(ctx context.Context, u plan.Unit, progress func(line string)) (digest string, err error)
	// Pins returns the image digest each container of u runs in the
	// release whose artifact is digest (what Build returned): a release is
	// one digest, and its containers may run different images. A container
	// it leaves out runs its image as the Score file writes it.
	Pins(ctx context.Context, u plan.Unit, digest string) (map[string]string, error)
	// Unpack returns the unpacked filesystem and configuration of the
	// image of a container whose Score image is image ("." for socle's
	// build), pinned to digest ("" for the image as written).
	Unpack(ctx context.Context, image, digest string) (Image, error)
}

// Image is an unpacked image, ready for a runtime that runs host executables.
type Image struct {
	Root       string
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=value
	WorkingDir string
}

// Config wires an Engine.
type Config struct {
	Store  store.Store
	Driver runtime.Driver
	Router Router
	Images Images
	Logger *slog.Logger
	// Resync is how often every unit is observed again without a trigger.
	Resync time.Duration
	// ProgressDeadline bounds how long new replicas may take to be ready.
	ProgressDeadline time.Duration
	// Secret derives the credentials of locally provided resources.
	Secret []byte
	// Scale says how the autoscaler sizes units; zero values mean defaults.
	Scale ScalePolicy
	// Keep reports whether an environment keeps apps removed from Git
	// running (prune: false); nil means every environment prunes.
	Keep func(env string) bool
	// Notes returns the release notes of a release of app that moves from
	// one revision to another (a JSON document), nil if none.
	Notes func(ctx context.Context, app, from, to string) json.RawMessage
	// OnRelease is told when a rollout starts and when it ends.
	OnRelease func(ReleaseEvent)
	// SelfHeal reports whether drift in an environment is corrected (the
	// default) or only reported.
	SelfHeal func(env string) bool
	// OnDrift is told when what runs differs from what Git says, and
	// whether it was corrected.
	OnDrift func(app, env, what string, corrected bool)
	// Units, when set, gives the environments whose runtime runs whole
	// units (Kubernetes) their driver; the others run on Driver.
	Units UnitRuntimes
	// OnPhase is told when a unit's phase changes (a unit that becomes
	// Synced may open a promotion gate); it must not block.
	OnPhase func(UnitStatus)
	// Author names who a release of a unit is for: the author of the
	// commit that set its desired state (a promotion's, a rollback's, or
	// the one that changed the app). Empty when unknown.
	Author func(ctx context.Context, app, env string) string
	// Clock is the engine's time; the system's when nil. Tests move it to
	// see backoffs end.
	Clock clock.Clock
}

// ReleaseEvent is a rollout starting or finishing.
type ReleaseEvent struct {
	Release store.Release
	Phase   string // "started" or "finished"
}

func (e *Engine) now() time.Time { return clock.Or(e.cfg.Clock).Now() }

func (e *Engine) emit(ev ReleaseEvent) {
	if e.cfg.OnRelease != nil {
		e.cfg.OnRelease(ev)
	}
}

// Engine reconciles every unit.
type Engine struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	units   map[plan.Key]*worker
	blocked map[plan.Key]Block
	adopted map[runtime.UnitDriver]bool // unit drivers whose units were looked for
	ctx     context.Context
	wg      sync.WaitGroup
	stopped bool
}

// New returns an engine; Run starts it.
func New(cfg Config) *Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.ProgressDeadline <= 0 {
		cfg.ProgressDeadline = 2 * time.Minute
	}
	cfg.Scale = cfg.Scale.withDefaults()
	return &Engine{cfg: cfg, log: cfg.Logger, units: map[plan.Key]*worker{}, adopted: map[runtime.UnitDriver]bool{}}
}

// Recover takes back the replicas an earlier socle left running, so that
// nothing healthy is restarted and nothing is started twice. Call it before
// Run.
func (e *Engine) Recover(ctx context.Context) error {
	sts, err := e.cfg.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("listing replicas: %w", err)
	}
	var errs []error
	for _, st := range sts {
		if st.State == runtime.Detached || st.State == runtime.Lost {
			if err := e.cfg.Driver.Recover(ctx, st.Handle); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				errs = append(errs, fmt.Errorf("recovering %s: %w", st.Ref, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Run keeps the units converged until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	e.mu.Lock()
	e.ctx = ctx
	for _, w := range e.units {
		e.startLocked(w)
	}
	e.mu.Unlock()
	events := e.cfg.Driver.Watch(ctx)
	// Units that autoscale are looked at every second, so that the scaler
	// reacts to load within its cool-down rather than at the next resync.
	scale := time.NewTicker(time.Second)
	defer scale.Stop()
	for {
		select {
		case <-scale.C:
			e.mu.Lock()
			ws := make([]*worker, 0, len(e.units))
			for _, w := range e.units {
				ws = append(ws, w)
			}
			e.mu.Unlock()
			// runsUnits asks the wiring, which has locks of its own:
			// never under e.mu.
			for _, w := range ws {
				w.mu.Lock()
				d := w.desired
				w.mu.Unlock()
				// Units on a unit driver have the engine's autoscaler
				// (Kubernetes' HorizontalPodAutoscaler) instead.
				if d != nil && d.Replicas.Max > d.Replicas.Min && !e.runsUnits(d.Env) {
					w.kick()
				}
			}
		case <-ctx.Done():
			e.mu.Lock()
			e.stopped = true
			e.mu.Unlock()
			e.wg.Wait()
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// A replica that exits or stops being ready is a reason to look
			// at its unit now rather than at the next resync.
			e.Trigger(ev.Status.Ref.App, ev.Status.Ref.Env)
		}
	}
}

// Apply makes units the desired state: new and changed units converge to
// it, units no longer there are pruned.
func (e *Engine) Apply(units []plan.Unit) {
	// After the unlock below: adoption asks the wiring, which has locks of
	// its own.
	defer e.adoptUnits()
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := make(map[plan.Key]bool, len(units))
	for _, u := range units {
		k := u.Key()
		seen[k] = true
		w := e.units[k]
		if w == nil {
			w = newWorker(e, k)
			e.units[k] = w
			if e.ctx != nil {
				e.startLocked(w)
			}
		}
		w.setDesired(&u)
	}
	for k, w := range e.units {
		if !seen[k] {
			w.setDesired(nil)
		}
	}
}

// Adopt makes the engine watch units that are no longer desired but may
// still run (found in the runtimes at start: replicas of the driver,
// inventories of the unit drivers), so that they are pruned.
func (e *Engine) Adopt(ctx context.Context) error {
	sts, err := e.cfg.Driver.List(ctx)
	if err != nil {
		return err
	}
	keys := make([]plan.Key, 0, len(sts))
	for _, st := range sts {
		keys = append(keys, plan.Key{App: st.Ref.App, Env: st.Ref.Env})
	}
	var errs []error
	if e.cfg.Units != nil {
		for _, ud := range e.cfg.Units.All() {
			us, err := ud.Units(ctx)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e.mu.Lock()
			e.adopted[ud] = true
			e.mu.Unlock()
			for _, u := range us {
				keys = append(keys, plan.Key{App: u.App, Env: u.Env})
			}
		}
	}
	e.adoptKeys(keys)
	return errors.Join(errs...)
}

// adoptKeys makes the engine watch the units of keys it does not know, as
// units removed from Git.
func (e *Engine) adoptKeys(keys []plan.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range keys {
		if e.units[k] == nil {
			w := newWorker(e, k)
			w.setDesired(nil)
			e.units[k] = w
			if e.ctx != nil {
				e.startLocked(w)
			}
		}
	}
}

// adoptUnits adopts the units of unit drivers not looked at yet. The
// wiring opens unit drivers for the environments of a revision, which
// socle reads after Adopt ran at start: without this, a unit removed from
// Git while socle was stopped would never be found, nor pruned.
func (e *Engine) adoptUnits() {
	if e.cfg.Units == nil {
		return
	}
	for _, ud := range e.cfg.Units.All() {
		e.mu.Lock()
		done := e.adopted[ud]
		e.adopted[ud] = true
		e.mu.Unlock()
		if done {
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			us, err := ud.Units(ctx)
			if err != nil {
				e.log.Warn("listing the units of a runtime", "runtime", ud.Name(), "err", err)
				e.mu.Lock()
				delete(e.adopted, ud) // looked for again at the next desired state
				e.mu.Unlock()
				return
			}
			keys := make([]plan.Key, 0, len(us))
			for _, u := range us {
				keys = append(keys, plan.Key{App: u.App, Env: u.Env})
			}
			e.adoptKeys(keys)
		}()
	}
}

// runsUnits reports whether env's units run on a unit driver.
func (e *Engine) runsUnits(env string) bool {
	ud, err := e.unitDriver(env)
	return ud != nil && err == nil
}

func (e *Engine) startLocked(w *worker) {
	if e.stopped || w.running {
		return
	}
	w.running = true
	e.wg.Go(func() { w.run(e.ctx) })
}

// SetBlocked says which units a policy or gate blocks, and why; the others
// are not blocked. A blocked unit keeps running what it ran and reports
// Blocked with the reason.
func (e *Engine) SetBlocked(blocked map[plan.Key]Block) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.blocked = blocked
	for _, w := range e.units {
		w.kick()
	}
}

func (e *Engine) blockedReason(k plan.Key) (Block, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.blocked[k]
	return b, ok
}

// forget drops a pruned unit.
func (e *Engine) forget(k plan.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w := e.units[k]; w != nil {
		w.mu.Lock()
		gone := w.desired == nil
		w.mu.Unlock()
		if gone {
			delete(e.units, k)
		}
	}
}

// Trigger asks a unit to converge now.
func (e *Engine) Trigger(app, env string) {
	e.mu.Lock()
	w := e.units[plan.Key{App: app, Env: env}]
	e.mu.Unlock()
	if w != nil {
		w.kick()
	}
}

// Status reports every unit, ordered by environment then app.
func (e *Engine) Status() []UnitStatus {
	e.mu.Lock()
	ws := make([]*worker, 0, len(e.units))
	for _, w := range e.units {
		ws = append(ws, w)
	}
	e.mu.Unlock()
	out := make([]UnitStatus, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.snapshot())
	}
	slices.SortFunc(out, func(a, b UnitStatus) int {
		if a.Env != b.Env {
			return compare(a.Env, b.Env)
		}
		return compare(a.App, b.App)
	})
	return out
}

// Wait blocks until every unit has converged (no rollout in progress and the
// last pass succeeded or failed for good), or ctx ends.
func (e *Engine) Wait(ctx context.Context) error {
	for {
		busy := false
		for _, s := range e.Status() {
			if s.Phase == Progressing || s.Phase == Pending || s.Phase == Building {
				busy = true
				break
			}
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
