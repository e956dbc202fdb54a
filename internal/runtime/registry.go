package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/spec"
)

// Type is a runtime type: what an environment's runtime.type names, and
// everything socle knows of it. A runtime's package provides its Type
// (local.Runtime, kubernetes.Runtime) and the wiring registers it, so that
// adding a runtime is a package and one line there; nothing else in socle
// names a runtime type.
//
// # Lifecycle
//
//  1. Loading a revision, the loader validates each environment's block
//     against Schema; Decode turns a valid one into the type's config (a Go
//     type of its own) and says what a schema cannot; Check, when set, then
//     sees the type's environments together (two in one namespace). Every
//     problem is reported at socle.yaml's line and field.
//  2. When the engine needs the runtime of an environment in force, the
//     wiring opens the instance that serves it (InstanceOf its config) with
//     Open, once, and keeps it: Kubernetes opens one driver per kubeconfig
//     context, local one for every environment. Host.Config gives an
//     instance the config of each environment in force, as it changes.
//  3. What Open returns is the runtime as it is natively: a replica Driver,
//     whose replicas the engine starts one by one behind socle's proxy, or a
//     UnitDriver, to which it hands whole units; Capabilities say which, as
//     data. The wiring closes it (io.Closer) when socle stops.
type Type struct {
	// Name is the value of runtime.type: lowercase letters, digits and
	// dashes.
	Name string
	// Description says in a sentence what the runtime is; the published
	// schema shows it.
	Description string
	// Schema is the JSON Schema of the block's fields beside type (see
	// spec.RuntimeTypeSchema for its form). Each runtime keeps it generated
	// from its config's Go type and comments (runtimetest.CheckSchema).
	Schema []byte
	// Decode decodes one environment's block, valid by Schema, into the
	// type's config, and checks what the schema cannot; the fields of its
	// problems are relative to the block.
	Decode func(fields map[string]any) (config any, problems []FieldProblem)
	// Check, when set, checks the environments of the type together.
	Check func(envs []EnvConfig) []EnvProblem
	// InstanceOf names the instance that serves an environment of config:
	// environments whose configs give one name share it. nil: one instance
	// serves every environment of the type.
	InstanceOf func(config any) string
	// Open opens an instance.
	Open func(h Host, instance string) (Instance, error)
	// Render, when set, returns what the runtime applies for a unit of an
	// environment of config (nil: an environment of another runtime,
	// previewed as if it ran on this one), for people to read (socle
	// render).
	Render func(config any, us UnitSpec, o RenderOptions) (Rendered, error)
}

// Instance is an opened runtime: a Driver or a UnitDriver.
type Instance interface {
	Name() string
	Capabilities() Capabilities
}

// Host is what socle gives the runtimes it opens.
type Host struct {
	// Data is socle's data directory: a runtime keeps its state in a
	// directory of its own under it.
	Data string
	// Registry is the host (and port) of socle's image registry.
	Registry string
	// Secret derives the credentials of resources (ResourcePassword).
	Secret []byte
	// PullToken returns the token with which app's images are pulled from
	// socle's registry in env.
	PullToken func(ctx context.Context, app, env string) (string, error)
	// ProgressDeadline is how long a rollout may make no progress.
	ProgressDeadline time.Duration
	// Config returns the decoded runtime config of env in the revision in
	// force: nil when env is not in force, or not of the type asked.
	Config func(env string) any
	Logger *slog.Logger
	// Clock is socle's time: a runtime dates what socle measures against
	// it (when a replica started, for the progress deadline) by it. Nil is
	// the system's.
	Clock clock.Clock
	// Sandbox runs what a runtime of this machine starts (the local
	// runtime's replicas); nil is sandbox.Detect().
	Sandbox *sandbox.Sandbox
}

// FieldProblem is something wrong with a runtime block: Field is the path
// of the field inside it (empty: the block).
type FieldProblem struct {
	Field   []string
	Message string
	Warning bool
}

// EnvConfig is one environment's decoded runtime config.
type EnvConfig struct {
	Env    string
	Config any
}

// EnvProblem is a problem of one of the environments given to Check, by
// index.
type EnvProblem struct {
	Env int
	FieldProblem
}

// RenderOptions is what rendering needs besides the unit and the config.
type RenderOptions struct {
	// Registry, when set, is the registry the engine pulls socle's images
	// from, whatever the environment's runtime says (socle render
	// --registry).
	Registry string
	// DefaultRegistry is socle's own registry, for an environment that
	// names none.
	DefaultRegistry string
	// Redact writes REDACTED instead of every secret value.
	Redact bool
}

// Rendered is what a runtime applies for a unit, in the order it applies
// it, as objects and as a YAML stream.
type Rendered struct {
	Objects []map[string]any
	YAML    []byte
}

// DecodeFields decodes a block's fields into out, a pointer to the type's
// config, as encoding/json reads their JSON: their form was checked by the
// schema, which is generated from the same type.
func DecodeFields(fields map[string]any, out any) error {
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Registry is the set of runtime types socle is built with (the wiring's)
// or a test's. It gives spec's loader the types (spec.Runtimes) and the
// wiring their instances.
type Registry struct {
	mu    sync.RWMutex
	types map[string]Type
}

var _ spec.Runtimes = (*Registry)(nil)

// NewRegistry returns a registry of types.
func NewRegistry(types ...Type) (*Registry, error) {
	r := &Registry{types: map[string]Type{}}
	for _, t := range types {
		if err := r.Register(t); err != nil {
			return nil, err
		}
	}
	return r, nil
}

var typeName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ErrRegistered is returned, wrapped, for a second type of one name.
var ErrRegistered = errors.New("runtime type already registered")

// Register adds a type. It refuses a name already taken and a type that
// could not serve: a bad name or schema, no Decode or Open.
func (r *Registry) Register(t Type) error {
	switch {
	case !typeName.MatchString(t.Name):
		return fmt.Errorf("runtime type %q: the name is lowercase letters, digits and dashes", t.Name)
	case t.Decode == nil || t.Open == nil:
		return fmt.Errorf("runtime type %s: Decode and Open are required", t.Name)
	}
	if err := spec.CheckRuntimeSchema(t.Schema); err != nil {
		return fmt.Errorf("runtime type %s: its schema: %w", t.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.types[t.Name]; ok {
		return fmt.Errorf("%w: %s", ErrRegistered, t.Name)
	}
	r.types[t.Name] = t
	return nil
}

// Lookup returns the type of that name.
func (r *Registry) Lookup(name string) (Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[name]
	return t, ok
}

// Names lists the registered types, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.types))
}

// RuntimeTypes lists the types for spec's loader, sorted by name.
func (r *Registry) RuntimeTypes() []spec.RuntimeTypeSchema {
	names := r.Names()
	out := make([]spec.RuntimeTypeSchema, 0, len(names))
	for _, n := range names {
		t, _ := r.Lookup(n)
		out = append(out, spec.RuntimeTypeSchema{Name: spec.RuntimeType(n), Description: t.Description, Schema: t.Schema})
	}
	return out
}

// DecodeRuntimes decodes each block with its type, then gives each type
// that checks its environments together the ones that decoded.
func (r *Registry) DecodeRuntimes(blocks []spec.RuntimeBlock) ([]any, []spec.RuntimeProblem) {
	configs := make([]any, len(blocks))
	var problems []spec.RuntimeProblem
	add := func(block int, p FieldProblem) {
		problems = append(problems, spec.RuntimeProblem{Block: block, Field: p.Field, Message: p.Message, Warning: p.Warning})
	}
	byType := map[string][]int{} // the blocks that decoded
	for i, b := range blocks {
		t, ok := r.Lookup(string(b.Type))
		if !ok {
			continue // the loader reported it
		}
		cfg, ps := t.Decode(b.Fields)
		for _, p := range ps {
			add(i, p)
		}
		if cfg != nil && !hasError(ps) {
			configs[i] = cfg
			byType[t.Name] = append(byType[t.Name], i)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byType)) {
		t, _ := r.Lookup(name)
		if t.Check == nil {
			continue
		}
		idx := byType[name]
		envs := make([]EnvConfig, len(idx))
		for j, i := range idx {
			envs[j] = EnvConfig{Env: blocks[i].Env, Config: configs[i]}
		}
		for _, p := range t.Check(envs) {
			if p.Env < 0 || p.Env >= len(idx) {
				add(-1, p.FieldProblem) // the loader says it is a bug
				continue
			}
			add(idx[p.Env], p.FieldProblem)
		}
	}
	return configs, problems
}

func hasError(ps []FieldProblem) bool {
	return slices.ContainsFunc(ps, func(p FieldProblem) bool { return !p.Warning })
}
