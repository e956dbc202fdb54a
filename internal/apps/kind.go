package apps

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/unit"
)

// ID is the kind's ID in unit keys.
const ID = "app"

// Key is the key of app's unit in env.
func Key(app, env string) unit.Key { return unit.Key{Kind: ID, Name: app, Env: env} }

// Desired turns the desired state the store records into the engine's.
func Desired(rows []store.Desired) []unit.Desired {
	out := make([]unit.Desired, len(rows))
	for i, r := range rows {
		out[i] = unit.Desired{Key: Key(r.App, r.Env), Spec: r.Spec}
	}
	return out
}

// Blocks turns the blocks of apps, by plan key, into the engine's.
func Blocks(b map[plan.Key]reconcile.Block) map[unit.Key]reconcile.Block {
	out := make(map[unit.Key]reconcile.Block, len(b))
	for k, why := range b {
		out[Key(k.App, k.Env)] = why
	}
	return out
}

// Runtimes gives each environment its unit runtime.
type Runtimes interface {
	// For returns env's runtime; nil and no error when env's runtime is
	// not available in this socle. It is called on every pass: it must be
	// cheap.
	For(env string) (runtime.UnitDriver, error)
	// All returns the runtimes open now, so that the units they run are
	// found (and those no longer desired pruned).
	All() []runtime.UnitDriver
}

// Proxied is a runtime whose requests cross socle's proxy (package
// replicas): a canary's analysis compares what the proxy measured of it
// with the thresholds, the unit's address is the proxy's, and an
// autoscaled unit is sized at each pass from its requests in flight, so
// it is looked at every second.
type Proxied interface {
	// Stats returns what the proxy counted of release's requests.
	Stats(app, env, release string) proxy.Snapshot
	// URL is where the proxy serves the unit, "" when it has no port.
	URL(u *plan.Unit) string
}

// recoverer is a runtime that takes back what an earlier socle left
// running, once, before it is used.
type recoverer interface {
	Recover(ctx context.Context) error
}

// watcher is a runtime that says which of its units changed.
type watcher interface {
	Watch(ctx context.Context) <-chan runtime.UnitKey
}

// Images builds the images units run.
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
}

// Config wires the kind.
type Config struct {
	Store    store.Store
	Runtimes Runtimes
	Images   Images
	Clock    clock.Clock
	Logger   *slog.Logger
	// ProgressDeadline bounds how long a rollout step may wait for the new
	// release: the runtime says a release is stuck after it (Kubernetes'
	// progressDeadlineSeconds is set from it); the kind gives up after
	// twice as long, for a runtime that says nothing.
	ProgressDeadline time.Duration
	// Notes returns the release notes of a release of app that moves from
	// one revision to another (a JSON document), nil if none.
	Notes func(ctx context.Context, app, from, to string) json.RawMessage
	// Author names who a release of a unit is for: the author of the
	// commit that set its desired state. Empty when unknown.
	Author func(ctx context.Context, app, env string) string
	// OnRelease is told when a rollout starts and when it ends.
	OnRelease func(ReleaseEvent)
	// SelfHeal reports whether drift in an environment is corrected (the
	// default) or only reported.
	SelfHeal func(env string) bool
	// OnDrift is told when what runs differs from what Git says, and
	// whether it was corrected.
	OnDrift func(app, env, what string, corrected bool)
	// ResourceHash, when set, identifies the outputs of the resources
	// socle provisioned for a unit ("" for none): it is part of what a
	// release runs, so that new outputs (a password rotated) roll the
	// unit's replicas.
	ResourceHash func(u *plan.Unit) string
}

// ReleaseEvent is a rollout starting or finishing.
type ReleaseEvent struct {
	Release store.Release
	Phase   string // "started" or "finished"
}

// Kind is the app kind.
type Kind struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock

	mu   sync.Mutex
	host reconcile.Host
	seen map[runtime.UnitDriver]bool // runtimes whose units were listed
	ctx  context.Context             // Start's: the watchers and listings it starts live as long
}

var _ reconcile.Kind = (*Kind)(nil)

// New returns the app kind.
func New(cfg Config) *Kind {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.ProgressDeadline = cmp.Or(cfg.ProgressDeadline, 2*time.Minute)
	return &Kind{cfg: cfg, log: cfg.Logger, clock: clock.Or(cfg.Clock), seen: map[runtime.UnitDriver]bool{}}
}

// ID is "app".
func (k *Kind) ID() string { return ID }

// Start takes back what the runtimes open now left running, and returns
// the units they run; it watches them for changes as long as ctx lives.
func (k *Kind) Start(ctx context.Context, h reconcile.Host) ([]unit.Key, error) {
	k.mu.Lock()
	k.host, k.ctx = h, ctx
	k.mu.Unlock()
	var keys []unit.Key
	var errs []error
	for _, rt := range k.cfg.Runtimes.All() {
		if r, ok := rt.(recoverer); ok {
			if err := r.Recover(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if w, ok := rt.(watcher); ok {
			go func() {
				for uk := range w.Watch(ctx) {
					h.Trigger(Key(uk.App, uk.Env))
				}
			}()
		}
		us, err := rt.Units(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the units of runtime %s: %w", rt.Name(), err))
			continue
		}
		k.mu.Lock()
		k.seen[rt] = true
		k.mu.Unlock()
		for _, u := range us {
			keys = append(keys, Key(u.App, u.Env))
		}
	}
	return keys, errors.Join(errs...)
}

// adopt lists, once, the units of a runtime opened after Start: the
// wiring opens a runtime when an environment of a revision first needs it,
// and a unit removed from Git while socle was stopped is found, and
// pruned, only so.
func (k *Kind) adopt(rt runtime.UnitDriver) {
	k.mu.Lock()
	done, h, ctx := k.seen[rt], k.host, k.ctx
	k.seen[rt] = true
	k.mu.Unlock()
	if done || h == nil {
		return
	}
	go func() {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		us, err := rt.Units(lctx)
		if err != nil {
			k.log.Warn("listing the units of a runtime", "runtime", rt.Name(), "err", err)
			k.mu.Lock()
			delete(k.seen, rt) // listed again at the next pass that meets it
			k.mu.Unlock()
			return
		}
		keys := make([]unit.Key, 0, len(us))
		for _, u := range us {
			keys = append(keys, Key(u.App, u.Env))
		}
		h.Adopt(keys...)
	}()
}

// Decode reads a plan.Unit.
func (k *Kind) Decode(raw json.RawMessage) (any, error) {
	var u plan.Unit
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, fmt.Errorf("reading the desired state of an app: %w", err)
	}
	return &u, nil
}

// memo is what the kind keeps of a unit in memory (reconcile.Unit.Memo).
type memo struct {
	source, digest string            // the artifact built from the app's files of source
	buildErr       *buildFailure     // the last build failed
	pins           map[string]pinned // by artifact: what each container runs
	failedRel      *store.Release    // the release u.Failed names, as recorded
	unreadable     time.Time         // since when a rollout could not read health
	spans          *rolloutSpans     // the trace of the rollout in progress
}

type pinned map[string]string

func memoOf(u *reconcile.Unit) *memo {
	if m, ok := u.Memo.(*memo); ok {
		return m
	}
	m := &memo{pins: map[string]pinned{}}
	u.Memo = m
	return m
}

// target is what a desired state deploys.
func targetOf(r store.Release) store.Target {
	return store.Target{Revision: r.Revision, Artifact: r.Artifact, ConfigHash: r.ConfigHash}
}

func releaseName(id int64) string { return "r" + strconv.FormatInt(id, 10) }

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func strategyOf(d *plan.Unit) spec.Strategy {
	if d.Rollout.Strategy == "" {
		return spec.StrategyRolling
	}
	return d.Rollout.Strategy
}

// workload is release rel of unit d, by the strategy it is deployed with:
// blue/green and canary releases get a workload of their own. Each
// container runs the image the release's artifact pins for it.
func (k *Kind) workload(ctx context.Context, m *memo, d *plan.Unit, rel, artifact string, strategy spec.Strategy) (runtime.Workload, error) {
	pins, ok := m.pins[artifact]
	if !ok {
		p, err := k.cfg.Images.Pins(ctx, *d, artifact)
		if err != nil {
			return runtime.Workload{}, reconcile.Errorf(reconcile.ReasonRuntimeError, "reading the images of %s: %w", short(artifact), err)
		}
		pins = p
		if len(m.pins) > 4 { // the artifacts of the releases in play: a few
			clear(m.pins)
		}
		m.pins[artifact] = pins
	}
	return runtime.Workload{Release: rel, Unit: d, Artifact: artifact, Images: pins, Dedicated: strategy != "" && strategy != spec.StrategyRolling}, nil
}

// serving is the release a unit's traffic goes to once w runs: its own,
// or every ready replica of the unit for a rolling workload.
func serving(w runtime.Workload) string {
	if w.Dedicated {
		return w.Release
	}
	return ""
}

// steadySpec is what a unit that runs release cur should hold.
func steadySpec(d *plan.Unit, wl runtime.Workload) runtime.UnitSpec {
	return runtime.UnitSpec{App: d.App, Env: d.Env, Workloads: []runtime.Workload{wl}, Serve: serving(wl)}
}
