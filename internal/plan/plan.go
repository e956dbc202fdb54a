package plan

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
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
	p := Plan{Revision: revision, Changes: []Change{}}
	old := make(map[Key]*Unit, len(applied))
	for i := range applied {
		old[applied[i].Key()] = &applied[i]
	}
	seen := make(map[Key]bool, len(desired))
	for i := range desired {
		d := &desired[i]
		seen[d.Key()] = true
		o, ok := old[d.Key()]
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
	for i := range applied {
		if k := applied[i].Key(); !seen[k] {
			gone = append(gone, Change{Action: Delete, App: k.App, Env: k.Env})
		}
	}
	slices.SortFunc(gone, func(a, b Change) int { return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.App, b.App)) })
	p.Changes = append(p.Changes, gone...)
	p.Summary.Delete = len(gone)
	return p
}

// HasChanges reports whether applying the plan would change anything.
func (p *Plan) HasChanges() bool {
	return p.Summary.Create+p.Summary.Update+p.Summary.Delete > 0
}

// same compares two units but for their revision, without the cost of
// flattening them: most units of most plans do not change.
func same(a, b *Unit) bool {
	x, y := *a, *b
	x.Revision, y.Revision = "", ""
	return reflect.DeepEqual(x, y)
}

func diffFields(old, new *Unit) []Field {
	a, b := flatten(old), flatten(new)
	var out []Field
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if k == "revision" {
			continue
		}
		if v, ok := b[k]; !ok {
			out = append(out, Field{Path: k, Old: a[k]})
		} else if !reflect.DeepEqual(a[k], v) {
			out = append(out, Field{Path: k, Old: a[k], New: v})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok && k != "revision" {
			out = append(out, Field{Path: k, New: b[k]})
		}
	}
	slices.SortStableFunc(out, func(x, y Field) int { return cmp.Compare(x.Path, y.Path) })
	return out
}

// flatten turns a unit into path → scalar, through its JSON form, so that
// every field socle or Score adds later is compared without code here.
func flatten(u *Unit) map[string]any {
	b, err := json.Marshal(u)
	if err != nil {
		panic(fmt.Sprintf("plan: unit does not marshal: %v", err))
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
