package wiring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store/sqlite"
	"github.com/socle-dev/socle/internal/unit"
)

// The toy runtime: a test's own runtime type, registered beside socle's,
// that neither spec, the wiring nor the engine knows of. Its environments
// put units on a shelf; each shelf is an instance of the runtime.
//
//	runtime: {type: toy, shelf: top}

const toyPlatform = `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: toys}
environments:
  - name: dev
    runtime: {type: local}
    sync: auto
  - name: play
    runtime:
      type: toy
      shelf: top
    sync: auto
`

const toyScore = `apiVersion: score.dev/v1b1
metadata: {name: web}
containers:
  main:
    image: nginx@sha256:0123456789012345678901234567890123456789012345678901234567890123
service:
  ports:
    http: {port: 80, targetPort: 8080}
`

const toySchema = `{"type": "object", "additionalProperties": false, "required": ["shelf"],
  "properties": {"shelf": {"type": "string", "pattern": "^[a-z]+$", "description": "Shelf the units go on."}}}`

type toyConfig struct {
	Shelf string `json:"shelf"`
}

// toyShelves is the toy runtime type and what the wiring opened of it.
type toyShelves struct {
	mu     sync.Mutex
	opened []string // shelves, in the order they were opened
	byName map[string]*toyDriver
}

func (s *toyShelves) typ() runtime.Type {
	return runtime.Type{
		Name:        "toy",
		Description: "Units on a shelf (a test's runtime).",
		Schema:      []byte(toySchema),
		Decode: func(fields map[string]any) (any, []runtime.FieldProblem) {
			var c toyConfig
			if err := runtime.DecodeFields(fields, &c); err != nil {
				return nil, []runtime.FieldProblem{{Message: err.Error()}}
			}
			if c.Shelf == "floor" {
				return nil, []runtime.FieldProblem{{Field: []string{"shelf"}, Message: "units never go on the floor"}}
			}
			return &c, nil
		},
		InstanceOf: func(c any) string { return c.(*toyConfig).Shelf },
		Open: func(h runtime.Host, shelf string) (runtime.Instance, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			d := &toyDriver{shelf: shelf, host: h, applied: map[runtime.UnitKey]runtime.UnitSpec{}}
			s.opened = append(s.opened, shelf)
			if s.byName == nil {
				s.byName = map[string]*toyDriver{}
			}
			s.byName[shelf] = d
			return d, nil
		},
	}
}

// toyDriver runs units on a shelf: what it applies is healthy at once.
type toyDriver struct {
	shelf string
	host  runtime.Host

	mu      sync.Mutex
	applied map[runtime.UnitKey]runtime.UnitSpec
	configs []string // the shelf each Apply found in its environment's config
}

var _ runtime.UnitDriver = (*toyDriver)(nil)

func (d *toyDriver) Name() string                       { return "toy" }
func (d *toyDriver) Capabilities() runtime.Capabilities { return runtime.Capabilities{Units: true} }

func (d *toyDriver) Apply(_ context.Context, us runtime.UnitSpec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied[runtime.UnitKey{App: us.App, Env: us.Env}] = us
	c, _ := d.host.Config(us.Env).(*toyConfig)
	if c == nil {
		return errors.New("no toy config for " + us.Env)
	}
	d.configs = append(d.configs, c.Shelf)
	return nil
}

func (d *toyDriver) Drift(_ context.Context, us runtime.UnitSpec) (runtime.Drift, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	last, ok := d.applied[runtime.UnitKey{App: us.App, Env: us.Env}]
	return runtime.Drift{Applied: ok && slices.Equal(releases(last), releases(us))}, nil
}

func releases(us runtime.UnitSpec) []string {
	var out []string
	for _, w := range us.Workloads {
		out = append(out, w.Release)
	}
	return append(out, us.Keep...)
}

func (d *toyDriver) Health(_ context.Context, app, env string) ([]runtime.WorkloadHealth, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	us, ok := d.applied[runtime.UnitKey{App: app, Env: env}]
	if !ok {
		return nil, nil
	}
	var out []runtime.WorkloadHealth
	for _, w := range us.Workloads {
		n := w.Replicas
		if n == 0 && w.Unit != nil {
			n = w.Unit.Replicas.Min
		}
		n = max(n, 1)
		out = append(out, runtime.WorkloadHealth{Name: app + "-" + w.Release, Release: w.Release, Desired: n, Updated: n, Ready: n, Available: n, State: runtime.WorkloadHealthy})
	}
	return out, nil
}

func (d *toyDriver) Restore(_ context.Context, app, env, release string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := runtime.UnitKey{App: app, Env: env}
	us := d.applied[k]
	us.Workloads = slices.DeleteFunc(us.Workloads, func(w runtime.Workload) bool { return w.Release != release })
	d.applied[k] = us
	return nil
}

func (d *toyDriver) Prune(_ context.Context, app, env string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := runtime.UnitKey{App: app, Env: env}
	_, ok := d.applied[k]
	delete(d.applied, k)
	if ok {
		return 1, nil
	}
	return 0, nil
}

func (d *toyDriver) Units(context.Context) ([]runtime.UnitKey, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []runtime.UnitKey
	for k := range d.applied {
		out = append(out, k)
	}
	return out, nil
}

// toyRegistry is socle's runtime types and the toy, registered by the test.
func toyRegistry(t *testing.T) (*runtime.Registry, *toyShelves) {
	t.Helper()
	reg := Runtimes(RuntimeOptions{})
	shelves := &toyShelves{}
	if err := reg.Register(shelves.typ()); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(shelves.typ()); !errors.Is(err, runtime.ErrRegistered) {
		t.Errorf("a second toy type: %v, want ErrRegistered", err)
	}
	return reg, shelves
}

// TestToyRuntimeValidates: the toy's blocks are checked by its schema and
// its Decode, every problem at socle.yaml's line and column, with its field.
func TestToyRuntimeValidates(t *testing.T) {
	t.Parallel()
	reg, _ := toyRegistry(t)
	for _, tc := range []struct{ name, shelf, want string }{
		{"good", "shelf: top", ""},
		{"form", "shelf: Top", `socle.yaml:11:14: environments[1].runtime.shelf: "Top" does not have the expected form (pattern ^[a-z]+$)`},
		{"misspelt", "shelve: top", `socle.yaml:10:7: environments[1].runtime.shelf: missing required field "shelf"` + "\n" +
			`socle.yaml:11:7: environments[1].runtime.shelve: unknown field "shelve"; did you mean "shelf"?`},
		{"decoded, refused", "shelf: floor", `socle.yaml:11:14: environments[1].runtime.shelf: units never go on the floor`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeRepo(t, map[string]string{"socle.yaml": strings.Replace(toyPlatform, "shelf: top", tc.shelf, 1)})
			repo, ps := Load(os.DirFS(dir), reg)
			if got := ps.String(); got != tc.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, tc.want)
			}
			c, _ := repo.Environment("play").Runtime.Config.(*toyConfig)
			if (tc.want == "") != (c != nil) || c != nil && c.Shelf != "top" {
				t.Errorf("play's config = %+v", c)
			}
		})
	}
	// Without the toy, socle knows no such runtime.
	dir := writeRepo(t, nil)
	if _, ps := Load(os.DirFS(dir), Runtimes(RuntimeOptions{})); ps.Errors() != 1 || !strings.Contains(ps[0].String(), `socle.yaml:10:13: environments[1].runtime.type: unknown runtime type "toy" (runtime types: container, kubernetes, local)`) {
		t.Errorf("without the toy type: %v", ps)
	}
}

// builtImages stands in for socle's image builder, which this test is not
// about: an app's artifact is a digest of its source, and each of its
// containers runs it.
type builtImages struct{}

func (builtImages) Build(_ context.Context, u plan.Unit, _ func(string)) (string, error) {
	sum := sha256.Sum256([]byte(u.Source))
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (builtImages) Pins(_ context.Context, u plan.Unit, digest string) (map[string]string, error) {
	out := map[string]string{}
	for name := range u.Containers {
		out[name] = digest
	}
	return out, nil
}

// TestToyRuntimeRunsUnits: an environment on the toy runtime gets its
// driver through the wiring (For), opened once for its shelf with the
// environment's decoded config, and the engine, as it is, converges the
// environment's unit on it: applied, healthy, recorded as a release.
func TestToyRuntimeRunsUnits(t *testing.T) {
	reg, shelves := toyRegistry(t)
	repo, ps := Load(os.DirFS(writeRepo(t, nil)), reg)
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	drivers := NewDrivers(DriversConfig{
		Registry: reg,
		Host:     runtime.Host{Data: data},
		Env:      repo.Environment,
		Envs:     func() []spec.Environment { return repo.Platform.Environments },
	})
	t.Cleanup(func() {
		if err := drivers.Close(); err != nil {
			t.Error(err)
		}
	})

	for _, env := range []string{"dev", "gone"} {
		if ud, err := drivers.For(env); ud != nil || err != nil {
			t.Errorf("For(%s) = %v, %v: want none (replicas, or no such environment)", env, ud, err)
		}
	}
	ud, err := drivers.For("play")
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := ud.(*toyDriver); !ok || d.shelf != "top" {
		t.Fatalf("For(play) = %#v, want the toy on shelf top", ud)
	}
	if all := drivers.All(); len(all) != 1 || all[0] != ud {
		t.Errorf("All() = %v, want the toy alone", all)
	}

	local, err := drivers.Replicas(string(spec.RuntimeLocal))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drivers.Replicas("toy"); err == nil {
		t.Error("the toy runs units, yet Replicas gave it as a replica driver")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(data, "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if local.Name() != string(spec.RuntimeLocal) {
		t.Fatalf("Replicas(local) = %s's driver", local.Name())
	}
	// The app kind, as socle wires it, drives the toy through the wiring.
	kind := apps.New(apps.Config{Store: st, Runtimes: drivers, Images: builtImages{}, Logger: slog.New(slog.DiscardHandler)})
	engine, err := reconcile.New(reconcile.Config{Store: st, Kinds: []reconcile.Kind{kind}, Resync: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var units []unit.Desired
	for _, u := range plan.Desired(repo, "r1", nil) {
		if u.Env == "play" { // dev's unit would need socle's real builder
			b, err := json.Marshal(u)
			if err != nil {
				t.Fatal(err)
			}
			units = append(units, unit.Desired{Key: apps.Key(u.App, u.Env), Spec: b})
		}
	}
	engine.Apply(units)

	var status reconcile.UnitStatus
	for status.Phase != reconcile.Synced {
		if ctx.Err() != nil {
			t.Fatalf("web in play never synced: %+v", status)
		}
		for _, s := range engine.Status() {
			if s.App == "web" && s.Env == "play" {
				status = s
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	rel, err := st.CurrentRelease(ctx, "web", "play")
	if err != nil || rel.ID != status.Release || rel.Artifact == "" {
		t.Errorf("release of web in play = %+v, %v; status %+v", rel, err, status)
	}

	toy := ud.(*toyDriver)
	toy.mu.Lock()
	us, ok := toy.applied[runtime.UnitKey{App: "web", Env: "play"}]
	configs := slices.Clone(toy.configs)
	toy.mu.Unlock()
	if !ok || len(us.Workloads) != 1 || us.Workloads[0].Unit.App != "web" || us.Workloads[0].Artifact != rel.Artifact {
		t.Errorf("the toy was given %+v", us)
	}
	if len(configs) == 0 || slices.ContainsFunc(configs, func(s string) bool { return s != "top" }) {
		t.Errorf("the configs the toy read of play: %v, want shelf top", configs)
	}
	shelves.mu.Lock()
	defer shelves.mu.Unlock()
	if !slices.Equal(shelves.opened, []string{"top"}) {
		t.Errorf("shelves opened: %v, want top, once", shelves.opened)
	}
}
