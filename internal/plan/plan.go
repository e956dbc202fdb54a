package plan

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/spec"
)

// Action is what a plan does to a unit.
type Action string

// The actions, in the order a plan lists them.
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
	NoOp   Action = "no-op"
)

// Plan takes the last-applied state of every unit to the desired one.
type Plan struct {
	// Revision the desired state comes from.
	Revision string   `json:"revision,omitempty"`
	Changes  []Change `json:"changes"`
	Summary  Summary  `json:"summary"`
	// Resources are the changes to the resources the units use
	// (DiffResources), in environment then name order; absent when none
	// changes.
	Resources []ResourceChange `json:"resources,omitempty"`
}

// Summary counts a plan's changes.
type Summary struct {
	Create    int `json:"create"`
	Update    int `json:"update"`
	Delete    int `json:"delete"`
	Unchanged int `json:"unchanged"`
}

// Change is what happens to one unit.
type Change struct {
	Action Action `json:"action"`
	App    string `json:"app"`
	Env    string `json:"env"`
	// Fields that change, for an update.
	Fields []Field `json:"fields,omitempty"`
	// Desired is the unit after the change (nil for a delete).
	Desired *Unit `json:"desired,omitempty"`
}

// Field is one changed value, addressed by its path in the unit
// (containers.web.variables.LOG_LEVEL). Old is absent for an added field, New
// for a removed one.
type Field struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// Diff compares the desired units with the last-applied ones. It is a pure
// function: same inputs, same plan, ordered by environment order of desired
// units (deleted units last) then app.
func Diff(revision string, desired, applied []Unit) Plan {
	p := Plan{Revision: revision, Changes: make([]Change, 0, len(desired))}
	// Usually the applied units are the desired ones, in the same order (a
	// plan against what the last one applied, no app or environment added or
	// removed): then they pair up by position, without the two maps below,
	// which were most of a plan's allocations with 30,000 units.
	aligned := len(applied) == len(desired) && uniqueInOrder(desired)
	for i := 0; aligned && i < len(desired); i++ {
		aligned = desired[i].App == applied[i].App && desired[i].Env == applied[i].Env
	}
	var old map[Key]*Unit
	var seen map[Key]bool
	if !aligned {
		old = make(map[Key]*Unit, len(applied))
		for i := range applied {
			old[applied[i].Key()] = &applied[i]
		}
		seen = make(map[Key]bool, len(desired))
	}
	for i := range desired {
		d := &desired[i]
		var o *Unit
		ok := aligned
		if aligned {
			o = &applied[i]
		} else {
			seen[d.Key()] = true
			o, ok = old[d.Key()]
		}
		if !ok {
			p.Changes = append(p.Changes, Change{Action: Create, App: d.App, Env: d.Env, Desired: d})
			p.Summary.Create++
			continue
		}
		if same(o, d) {
			p.Changes = append(p.Changes, Change{Action: NoOp, App: d.App, Env: d.Env, Desired: d})
			p.Summary.Unchanged++
			continue
		}
		if fields := diffFields(o, d); len(fields) > 0 {
			p.Changes = append(p.Changes, Change{Action: Update, App: d.App, Env: d.Env, Fields: fields, Desired: d})
			p.Summary.Update++
			continue
		}
		p.Changes = append(p.Changes, Change{Action: NoOp, App: d.App, Env: d.Env, Desired: d})
		p.Summary.Unchanged++
	}
	var gone []Change
	for i := 0; !aligned && i < len(applied); i++ {
		if k := applied[i].Key(); !seen[k] {
			gone = append(gone, Change{Action: Delete, App: k.App, Env: k.Env})
		}
	}
	slices.SortFunc(gone, func(a, b Change) int { return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.App, b.App)) })
	p.Changes = append(p.Changes, gone...)
	p.Summary.Delete = len(gone)
	return p
}

// uniqueInOrder reports whether units come as Desired lists them, each key
// once: environment by environment, each once, and apps in increasing order
// within one.
func uniqueInOrder(units []Unit) bool {
	done := map[string]bool{}
	for i := range units {
		if i > 0 && units[i].Env == units[i-1].Env {
			if units[i].App <= units[i-1].App {
				return false
			}
			continue
		}
		if done[units[i].Env] {
			return false
		}
		done[units[i].Env] = true
	}
	return true
}

// HasChanges reports whether applying the plan would change anything: a
// unit or a resource.
func (p *Plan) HasChanges() bool {
	return p.Summary.Create+p.Summary.Update+p.Summary.Delete > 0 || len(p.Resources) > 0
}

// same compares two units but for their revision and emergency, without the cost of
// flattening them: most units of most plans do not change. It is
// reflect.DeepEqual on every field but Revision, written out for the types a
// unit holds: DeepEqual itself (its reflection, its visited map, the copies
// of both units) was two thirds of a plan's time with 30,000 unchanged units.
// When a type has changed shape since (a field added to Unit, a Score
// release), unitShapesKnown is false and same falls back to DeepEqual.
func same(a, b *Unit) bool {
	if !unitShapesKnown() {
		x, y := *a, *b
		x.Revision, y.Revision = "", ""
		x.Emergency, y.Emergency = "", ""
		return reflect.DeepEqual(x, y)
	}
	return a.App == b.App && a.Env == b.Env && a.Team == b.Team && a.Zone == b.Zone &&
		a.Source == b.Source && a.Artifact == b.Artifact && a.Rollback == b.Rollback && a.Runtime == b.Runtime &&
		a.Replicas == b.Replicas && sameRollout(&a.Rollout, &b.Rollout) &&
		sameMap(a.Containers, b.Containers, sameContainer) &&
		samePtr(a.Service, b.Service, func(x, y *types.WorkloadService) bool {
			return sameMap(x.Ports, y.Ports, func(p, q *types.ServicePort) bool {
				return p.Port == q.Port && sameValue(p.Protocol, q.Protocol) && sameValue(p.TargetPort, q.TargetPort)
			})
		}) &&
		sameMap(a.Resources, b.Resources, func(x, y *types.Resource) bool {
			return x.Type == y.Type && sameValue(x.Class, y.Class) && sameValue(x.Id, y.Id) &&
				sameMap(x.Metadata, y.Metadata, sameAny) && sameMap(x.Params, y.Params, sameAny)
		}) &&
		sameMap(a.Metadata, b.Metadata, sameAny) && sameSlice(a.Secrets, b.Secrets) && sameSlice(a.Routes, b.Routes)
}

// sameAny is reflect.DeepEqual for the values of free-form maps (metadata,
// resource parameters): JSON-like trees, which cannot hold cycles; other
// types go to DeepEqual.
func sameAny(a, b *any) bool {
	switch x := (*a).(type) {
	case nil:
		return *b == nil
	case string, bool, int, int64, uint64, float64:
		return *a == *b // same dynamic type and value
	case map[string]any:
		y, ok := (*b).(map[string]any)
		return ok && sameMap(x, y, sameAny)
	case []any:
		y, ok := (*b).([]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		if len(x) > 0 && &x[0] == &y[0] {
			return true
		}
		for i := range x {
			if !sameAny(&x[i], &y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(*a, *b)
}

func sameRollout(a, b *spec.Rollout) bool {
	return a.Strategy == b.Strategy && sameValue(a.MaxSurge, b.MaxSurge) && sameValue(a.MaxUnavailable, b.MaxUnavailable) &&
		sameSlice(a.Steps, b.Steps) && samePtr(a.Analysis, b.Analysis, func(x, y *spec.Analysis) bool {
		return sameValue(x.MaxErrorRate, y.MaxErrorRate) && x.MaxP95 == y.MaxP95 && x.MinRequests == y.MinRequests
	})
}

func sameContainer(a, b *types.Container) bool {
	return a.Image == b.Image && sameSlice(a.Args, b.Args) && sameSlice(a.Command, b.Command) &&
		sameMap(a.Variables, b.Variables, func(x, y *string) bool { return *x == *y }) &&
		sameMap(a.Before, b.Before, func(x, y *types.ContainerBeforeEntry) bool { return *x == *y }) &&
		sameMap(a.Files, b.Files, func(x, y *types.ContainerFile) bool {
			return sameValue(x.BinaryContent, y.BinaryContent) && sameValue(x.Content, y.Content) &&
				sameValue(x.Mode, y.Mode) && sameValue(x.NoExpand, y.NoExpand) && sameValue(x.Source, y.Source)
		}) &&
		sameMap(a.Volumes, b.Volumes, func(x, y *types.ContainerVolume) bool {
			return x.Source == y.Source && sameValue(x.Path, y.Path) && sameValue(x.ReadOnly, y.ReadOnly)
		}) &&
		samePtr(a.LivenessProbe, b.LivenessProbe, sameProbe) && samePtr(a.ReadinessProbe, b.ReadinessProbe, sameProbe) &&
		samePtr(a.Resources, b.Resources, func(x, y *types.ContainerResources) bool {
			return samePtr(x.Limits, y.Limits, sameLimits) && samePtr(x.Requests, y.Requests, sameLimits)
		})
}

func sameProbe(a, b *types.ContainerProbe) bool {
	return samePtr(a.Exec, b.Exec, func(x, y *types.ExecProbe) bool { return sameSlice(x.Command, y.Command) }) &&
		samePtr(a.HttpGet, b.HttpGet, func(x, y *types.HttpProbe) bool {
			return x.Path == y.Path && x.Port == y.Port && sameValue(x.Host, y.Host) && sameValue(x.Scheme, y.Scheme) &&
				sameSlice(x.HttpHeaders, y.HttpHeaders)
		})
}

func sameLimits(a, b *types.ResourcesLimits) bool {
	return sameValue(a.Cpu, b.Cpu) && sameValue(a.Memory, b.Memory)
}

// The helpers keep DeepEqual's rules: nil differs from empty, a pointer or a
// map equals itself.

func samePtr[T any](a, b *T, eq func(x, y *T) bool) bool {
	return a == b || (a != nil && b != nil && eq(a, b))
}

func sameValue[T comparable](a, b *T) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

func sameSlice[S ~[]E, E comparable](a, b S) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

func sameMap[M ~map[K]V, K comparable, V any](a, b M, eq func(x, y *V) bool) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	if reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() {
		return true
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || !eq(&x, &y) {
			return false
		}
	}
	return true
}

// unitShapesKnown reports whether the types same compares field by field
// have exactly the fields it knows (a struct converts to another only when
// their fields match in name, type and order).
var unitShapesKnown = sync.OnceValue(func() bool {
	for _, pair := range [][2]any{
		{Unit{}, struct {
			App, Env, Team, Zone, Revision, Source, Artifact string
			Rollback                                         bool
			Emergency                                        string
			Runtime                                          spec.RuntimeType
			Metadata                                         types.WorkloadMetadata
			Replicas                                         spec.Replicas
			Rollout                                          spec.Rollout
			Containers                                       map[string]types.Container
			Service                                          *types.WorkloadService
			Resources                                        types.WorkloadResources
			Secrets                                          []string
			Routes                                           []spec.Route
		}{}},
		{spec.Route{}, struct {
			Host, Path string
			Strip      bool
			Port       string
		}{}},
		{spec.Replicas{}, struct{ Min, Max int }{}},
		{spec.Rollout{}, struct {
			Strategy                 spec.Strategy
			MaxSurge, MaxUnavailable *int
			Steps                    []spec.CanaryStep
			Analysis                 *spec.Analysis
		}{}},
		{spec.CanaryStep{}, struct {
			Weight int
			Pause  spec.Duration
		}{}},
		{spec.Analysis{}, struct {
			MaxErrorRate *float64
			MaxP95       spec.Duration
			MinRequests  int
		}{}},
		{types.WorkloadService{}, struct{ Ports types.WorkloadServicePorts }{}},
		{types.ServicePort{}, struct {
			Port       int
			Protocol   *types.ServicePortProtocol
			TargetPort *int
		}{}},
		{types.Resource{}, struct {
			Class, Id *string
			Metadata  types.ResourceMetadata
			Params    types.ResourceParams
			Type      string
		}{}},
		{types.Container{}, struct {
			Args                          []string
			Before                        types.ContainerBefore
			Command                       []string
			Files                         types.ContainerFiles
			Image                         string
			LivenessProbe, ReadinessProbe *types.ContainerProbe
			Resources                     *types.ContainerResources
			Variables                     types.ContainerVariables
			Volumes                       types.ContainerVolumes
		}{}},
		{types.ContainerBeforeEntry{}, struct{ Ready types.ContainerBeforeReady }{}},
		{types.ContainerFile{}, struct {
			BinaryContent, Content, Mode *string
			NoExpand                     *bool
			Source                       *string
		}{}},
		{types.ContainerVolume{}, struct {
			Path     *string
			ReadOnly *bool
			Source   string
		}{}},
		{types.ContainerProbe{}, struct {
			Exec    *types.ExecProbe
			HttpGet *types.HttpProbe
		}{}},
		{types.ExecProbe{}, struct{ Command []string }{}},
		{types.HttpProbe{}, struct {
			Host        *string
			HttpHeaders []types.HttpProbeHttpHeadersElem
			Path        string
			Port        int
			Scheme      *types.HttpProbeScheme
		}{}},
		{types.HttpProbeHttpHeadersElem{}, struct{ Name, Value string }{}},
		{types.ContainerResources{}, struct{ Limits, Requests *types.ResourcesLimits }{}},
		{types.ResourcesLimits{}, struct{ Cpu, Memory *string }{}},
	} {
		if !reflect.TypeOf(pair[0]).ConvertibleTo(reflect.TypeOf(pair[1])) {
			return false
		}
	}
	return true
})

func diffFields(old, new *Unit) []Field {
	a, b := flatten(old), flatten(new)
	delete(a, "revision")
	delete(b, "revision")
	return diffFlat(a, b)
}

// diffFlat lists the paths whose values differ between two flattened
// documents, in path order.
func diffFlat(a, b map[string]any) []Field {
	var out []Field
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if v, ok := b[k]; !ok {
			out = append(out, Field{Path: k, Old: a[k]})
		} else if !reflect.DeepEqual(a[k], v) {
			out = append(out, Field{Path: k, Old: a[k], New: v})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			out = append(out, Field{Path: k, New: b[k]})
		}
	}
	slices.SortStableFunc(out, func(x, y Field) int { return cmp.Compare(x.Path, y.Path) })
	return out
}

// flatten turns a unit (or a resource) into path → scalar, through its
// JSON form, so that every field socle or Score adds later is compared
// without code here.
func flatten(u any) map[string]any {
	b, err := json.Marshal(u)
	if err != nil {
		panic(fmt.Sprintf("plan: %T does not marshal: %v", u, err))
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		panic(err)
	}
	out := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			if len(t) == 0 && prefix != "" {
				out[prefix] = map[string]any{}
			}
			for k, c := range t {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, c)
			}
		case []any:
			if len(t) == 0 {
				out[prefix] = []any{}
			}
			for i, c := range t {
				walk(prefix+"["+strconv.Itoa(i)+"]", c)
			}
		default:
			out[prefix] = v
		}
	}
	walk("", v)
	return out
}

// Only keeps the changes of one environment, with the summary recounted.
func (p Plan) Only(env string) Plan {
	out := Plan{Revision: p.Revision, Changes: []Change{}}
	for _, c := range p.Resources {
		if c.Env == env {
			out.Resources = append(out.Resources, c)
		}
	}
	for _, c := range p.Changes {
		if c.Env != env {
			continue
		}
		out.Changes = append(out.Changes, c)
		switch c.Action {
		case Create:
			out.Summary.Create++
		case Update:
			out.Summary.Update++
		case Delete:
			out.Summary.Delete++
		default:
			out.Summary.Unchanged++
		}
	}
	return out
}
