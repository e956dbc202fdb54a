package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/socle-dev/socle/internal/spec"
)

// Instance is one (stack, zone or environment) with its inputs resolved:
// what a plan of it runs with, and the content hash that says whether it
// must be planned again.
type Instance struct {
	Stack *spec.Stack
	// Name is the zone or the environment.
	Name string
	// Inputs are the variables the plan passes, resolved; those that wait
	// for an upstream are not among them (Pending).
	Inputs map[string]any
	// Pending are the inputs that read an upstream output not applied yet.
	Pending []Pending
	// Sensitive names the inputs whose value is secret (a sensitive
	// variable, or a sensitive upstream output read into it).
	Sensitive map[string]bool
	// Hash covers the stack's files, the resolved inputs (with the
	// upstream outputs they read) and which inputs are pending: it
	// changes exactly when a plan of the instance could.
	Hash string
}

// Pending is an input that is known only after an upstream applies.
type Pending struct {
	Input    string `json:"input"`
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	Output   string `json:"output"`
}

func (p Pending) String() string {
	return fmt.Sprintf("%s: known after %s @ %s applies (output %s)", p.Input, p.Stack, p.Instance, p.Output)
}

// Output is one output of an applied instance.
type Output struct {
	Value     any
	Sensitive bool
}

// Outputs reads the outputs of applied instances.
type Outputs interface {
	// Outputs returns the outputs of stack's instance; ok is false when
	// it was never applied.
	Outputs(stack, instance string) (outs map[string]Output, ok bool, err error)
}

func instanceDir(dir, stack, instance string) string { return filepath.Join(dir, stack, instance) }

// readOnce reads each instance's outputs at most once: for one instance's
// inputs, and for all the instances PlanAll plans (a plan applies nothing,
// so the states it reads do not change meanwhile), where every dependent
// of an upstream would otherwise read and decode its state again.
type readOnce struct {
	outs Outputs
	mu   sync.Mutex
	read map[[2]string]*outputsRead
}

type outputsRead struct {
	once sync.Once
	outs map[string]Output
	ok   bool
	err  error
}

// ReadOnce returns outs reading each instance's outputs at most once:
// for callers that resolve many instances at one time (a list of them),
// where the dependents of an upstream read the same outputs.
func ReadOnce(outs Outputs) Outputs { return once(outs) }

// once returns outs reading each instance's outputs once.
func once(outs Outputs) *readOnce {
	if o, ok := outs.(*readOnce); ok {
		return o
	}
	return &readOnce{outs: outs, read: map[[2]string]*outputsRead{}}
}

// Outputs implements Outputs.
func (o *readOnce) Outputs(stack, instance string) (map[string]Output, bool, error) {
	o.mu.Lock()
	e := o.read[[2]string{stack, instance}]
	if e == nil {
		e = &outputsRead{}
		o.read[[2]string{stack, instance}] = e
	}
	o.mu.Unlock()
	e.once.Do(func() { e.outs, e.ok, e.err = o.outs.Outputs(stack, instance) })
	return e.outs, e.ok, e.err
}

// Resolve resolves the inputs of one instance of s.
func Resolve(repo *spec.Repo, outs Outputs, s *spec.Stack, name string) (*Instance, error) {
	in := &Instance{Stack: s, Name: name, Inputs: map[string]any{}, Sensitive: map[string]bool{}}
	r := &resolver{repo: repo, outs: once(outs), s: s, name: name}
	if s.PerZone() {
		r.zone = repo.Zone(name)
	} else {
		r.env = repo.Environment(name)
		if r.env != nil && r.env.Zone != "" {
			r.zone = repo.Zone(r.env.Zone)
		}
	}
	raw := s.InstanceInputs(name)
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		r.pending, r.sensitive = nil, s.Variables[k].Sensitive
		v, err := r.value(raw[k])
		if err != nil {
			return nil, fmt.Errorf("stack %s @ %s: input %s: %w", s.Name, name, k, err)
		}
		for _, p := range r.pending {
			p.Input = k
			in.Pending = append(in.Pending, p)
		}
		if len(r.pending) == 0 {
			in.Inputs[k] = v
		}
		if r.sensitive {
			in.Sensitive[k] = true
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "socle stack instance v1\x00%s\x00%s\x00%v\x00%s\x00", s.Source, name, s.PerZone(), s.Config.Backend)
	for _, part := range []any{in.Inputs, in.Pending} {
		b, err := json.Marshal(part) // maps marshal with sorted keys
		if err != nil {
			return nil, fmt.Errorf("stack %s @ %s: %w", s.Name, name, err)
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	in.Hash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return in, nil
}

type resolver struct {
	repo      *spec.Repo
	outs      *readOnce
	s         *spec.Stack
	name      string
	env       *spec.Environment
	zone      *spec.Zone
	pending   []Pending
	sensitive bool
}

func (r *resolver) value(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return r.str(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			x, err := r.value(e)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := r.value(e)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	return v, nil
}

func (r *resolver) str(s string) (any, error) {
	parts, err := spec.ParseInput(s)
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 && parts[0].Ref != nil {
		return r.ref(*parts[0].Ref) // the value with its type
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Ref == nil {
			b.WriteString(p.Text)
			continue
		}
		v, err := r.ref(*p.Ref)
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case nil:
			// pending: the input is not passed
		case string:
			b.WriteString(v)
		case json.Number, bool, float64:
			fmt.Fprint(&b, v)
		default:
			return nil, fmt.Errorf("%s is a list or a map, which cannot be written inside a string", p.Ref)
		}
	}
	return b.String(), nil
}

func (r *resolver) ref(ref spec.InputRef) (any, error) {
	switch ref.Scope {
	case spec.RefEnvironment:
		if r.env == nil {
			return nil, fmt.Errorf("%s: the instance has no environment", ref)
		}
		return spec.EnvironmentField(r.env, ref.Key), nil
	case spec.RefZone:
		if r.zone == nil {
			return nil, fmt.Errorf("%s: the instance belongs to no zone", ref)
		}
		return spec.ZoneField(r.zone, ref.Key), nil
	}
	up := r.repo.Stack(ref.Stack)
	if up == nil {
		return nil, fmt.Errorf("%s: no stack %q", ref, ref.Stack)
	}
	inst, ok := r.repo.UpstreamInstance(r.s, r.name, up)
	if !ok {
		return nil, fmt.Errorf("%s: which instance of %s to read is not clear", ref, up.Name)
	}
	outs, applied, err := r.outs.Outputs(up.Name, inst)
	if err != nil {
		return nil, err
	}
	if !applied {
		outs = nil
	}
	o, ok := outs[ref.Key]
	if !ok {
		r.pending = append(r.pending, Pending{Stack: up.Name, Instance: inst, Output: ref.Key})
		return nil, nil
	}
	if o.Sensitive {
		r.sensitive = true
	}
	return o.Value, nil
}
