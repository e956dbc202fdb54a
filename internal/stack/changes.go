package stack

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// Action is what a plan does to a resource.
type Action string

// The actions of a resource change, with the signs terraform plan prints.
const (
	ActionCreate  Action = "create"  // +
	ActionUpdate  Action = "update"  // ~ in place
	ActionReplace Action = "replace" // -/+ (or +/- when created before destroyed)
	ActionDelete  Action = "delete"  // -
	ActionRead    Action = "read"    // <= a data source read during apply
	ActionForget  Action = "forget"  // . removed from the state only
)

// Sign is the symbol terraform plan prints for the action.
func (c *ResourceChange) Sign() string {
	switch c.Action {
	case ActionCreate:
		return "+"
	case ActionUpdate:
		return "~"
	case ActionReplace:
		if c.CreateFirst {
			return "+/-"
		}
		return "-/+"
	case ActionDelete:
		return "-"
	case ActionRead:
		return "<="
	}
	return "."
}

// ResourceChange is one resource a plan changes.
type ResourceChange struct {
	Address string `json:"address"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Action  Action `json:"action"`
	// CreateFirst: a replacement creates the new object before it
	// destroys the old one (create_before_destroy).
	CreateFirst bool `json:"createFirst,omitempty"`
	// Reason is terraform's reason for the action, e.g. replace_because_cannot_update.
	Reason string `json:"reason,omitempty"`
	// Attributes that change, sensitive values redacted.
	Attributes []AttributeChange `json:"attributes,omitempty"`
	// MoreAttributes counts the changed attributes left out over the cap.
	MoreAttributes int `json:"moreAttributes,omitempty"`
	// Before and After are the whole object before and after the change,
	// nil where there is none (a create has no before, a delete no after),
	// for the policies (see Masked): sensitive values are Redacted,
	// unknown ones Unknown, numbers float64.
	Before map[string]any `json:"before,omitempty"`
	After  map[string]any `json:"after,omitempty"`
}

// AttributeChange is one attribute's value before and after. Values are
// JSON text, cut at maxValue; Redacted and Unknown stand for values that are
// not shown.
type AttributeChange struct {
	Path   string `json:"path"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	// ForcesReplacement: changing it replaces the resource.
	ForcesReplacement bool `json:"forcesReplacement,omitempty"`
}

// OutputChange is one root output a plan changes.
type OutputChange struct {
	Name   string `json:"name"`
	Action Action `json:"action"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// What a value is shown as when it is not shown.
const (
	Redacted = "(sensitive value)"
	Unknown  = "(known after apply)"
)

// Bounds of what a plan's change list keeps.
const (
	maxChanges    = 10000
	maxAttributes = 200
	maxValue      = 256
)

// Changes turns terraform's JSON plan into resource-level changes and
// output changes, sensitive values redacted, unchanged resources left out.
// more counts the changes left out over the cap.
//
// Values terraform marks sensitive are redacted, and so is any value
// whose text holds one of secrets (the instance's secret inputs):
// terraform loses the mark on the way through some attributes (the
// output of a terraform_data whose input holds a sensitive variable is
// shown in clear by terraform plan itself).
func Changes(p *tfjson.Plan, secrets []string) (res []ResourceChange, outs []OutputChange, more int) {
	res, more = resourceChanges(p.ResourceChanges, secrets)
	for _, name := range slices.Sorted(maps.Keys(p.OutputChanges)) {
		ch := p.OutputChanges[name]
		if ch == nil || ch.Actions.NoOp() {
			continue
		}
		o := OutputChange{Name: name}
		switch {
		case ch.Actions.Create():
			o.Action = ActionCreate
		case ch.Actions.Delete():
			o.Action = ActionDelete
		default:
			o.Action = ActionUpdate
		}
		o.Before = show(ch.Before, ch.BeforeSensitive, nil, ch.Actions.Create(), secrets)
		o.After = show(ch.After, ch.AfterSensitive, ch.AfterUnknown, ch.Actions.Delete(), secrets)
		outs = append(outs, o)
	}
	return res, outs, more
}

// resourceChanges is Changes for a list of terraform's resource changes:
// those a plan makes, or those it found made outside terraform (its
// resource drift).
func resourceChanges(rcs []*tfjson.ResourceChange, secrets []string) (res []ResourceChange, more int) {
	for _, rc := range rcs {
		if rc == nil || rc.Change == nil {
			continue
		}
		c := ResourceChange{Address: rc.Address, Type: rc.Type, Name: rc.Name, Reason: string(rc.ActionReason)}
		a := rc.Change.Actions
		switch {
		case a.NoOp():
			continue
		case a.Create():
			c.Action = ActionCreate
		case a.Update():
			c.Action = ActionUpdate
		case a.DestroyBeforeCreate():
			c.Action = ActionReplace
		case a.CreateBeforeDestroy():
			c.Action, c.CreateFirst = ActionReplace, true
		case a.Delete():
			c.Action = ActionDelete
		case a.Read():
			c.Action = ActionRead
		case a.Forget():
			c.Action = ActionForget
		default:
			continue
		}
		if len(res) >= maxChanges {
			more++
			continue
		}
		if c.Action != ActionDelete && c.Action != ActionForget {
			d := &differ{replace: replacePaths(rc.Change.ReplacePaths), secrets: secrets}
			d.diff("", rc.Change.Before, rc.Change.After, rc.Change.AfterUnknown, rc.Change.BeforeSensitive, rc.Change.AfterSensitive)
			c.Attributes, c.MoreAttributes = d.out, d.more
		}
		c.Before = maskedObject(rc.Change.Before, rc.Change.BeforeSensitive, nil, secrets)
		c.After = maskedObject(rc.Change.After, rc.Change.AfterSensitive, rc.Change.AfterUnknown, secrets)
		res = append(res, c)
	}
	return res, more
}

type differ struct {
	replace map[string]bool
	secrets []string
	out     []AttributeChange
	more    int
}

// diff records the attributes under path that differ. Objects are
// followed key by key; anything else (lists, sets, scalars) is one value.
// unknown, bsens and asens are terraform's structures that mirror the
// values with true where a value is unknown or sensitive.
func (d *differ) diff(path string, before, after, unknown, bsens, asens any) {
	bm, bok := before.(map[string]any)
	am, aok := after.(map[string]any)
	if (bok || before == nil) && (aok || after == nil) && (bok || aok) && unknown != true && bsens != true && asens != true {
		keys := map[string]bool{}
		for k := range bm {
			keys[k] = true
		}
		for k := range am {
			keys[k] = true
		}
		if um, ok := unknown.(map[string]any); ok {
			for k, u := range um {
				if u == true || isStructure(u) {
					keys[k] = true
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			d.diff(joinPath(path, k), bm[k], am[k], at(unknown, k), at(bsens, k), at(asens, k))
		}
		return
	}
	unk := anyTrue(unknown)
	if !unk && reflect.DeepEqual(before, after) && anyTrue(bsens) == anyTrue(asens) {
		return
	}
	if before == nil && after == nil && !unk {
		return
	}
	if len(d.out) >= maxAttributes {
		d.more++
		return
	}
	d.out = append(d.out, AttributeChange{
		Path:              path,
		Before:            show(before, bsens, nil, before == nil, d.secrets),
		After:             show(after, asens, unknown, after == nil && !unk, d.secrets),
		ForcesReplacement: d.forces(path),
	})
}

// forces reports whether a change at path, or inside it, forces the
// resource's replacement.
func (d *differ) forces(path string) bool {
	for p := range d.replace {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// show renders a value for people: redacted when any part of it is
// sensitive, unknown when any part is not known yet, "" when absent.
func show(v, sens, unknown any, absent bool, secrets []string) string {
	switch {
	case absent:
		return ""
	case anyTrue(sens):
		return Redacted
	case anyTrue(unknown):
		return Unknown
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	s := string(b)
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			return Redacted
		}
	}
	if len(s) > maxValue {
		s = s[:maxValue] + "…"
	}
	return s
}

// anyTrue reports whether a sensitivity or unknown structure holds true
// anywhere (false and empty structures mean none).
func anyTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case map[string]any:
		for _, e := range v {
			if anyTrue(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if anyTrue(e) {
				return true
			}
		}
	}
	return false
}

func isStructure(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return anyTrue(v)
	}
	return false
}

func at(v any, k string) any {
	if m, ok := v.(map[string]any); ok {
		return m[k]
	}
	return v // true or false holds for the parts too
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func joinPath(path, k string) string {
	if !identifier.MatchString(k) {
		k = fmt.Sprintf("[%q]", k)
		return path + k
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// replacePaths renders terraform's replace_paths (lists of steps) as
// attribute paths.
func replacePaths(paths []any) map[string]bool {
	out := map[string]bool{}
	for _, p := range paths {
		steps, ok := p.([]any)
		if !ok {
			continue
		}
		var b strings.Builder
		for _, s := range steps {
			switch s := s.(type) {
			case string:
				b.WriteString(joinPath(b.String(), s)[b.Len():])
			default:
				fmt.Fprintf(&b, "[%v]", s)
			}
		}
		out[b.String()] = true
	}
	return out
}

// maskedObject is Masked for a resource's object, nil when it has none.
func maskedObject(v, sens, unknown any, secrets []string) map[string]any {
	m, _ := Masked(v, sens, unknown, secrets).(map[string]any)
	return m
}

// Masked is a value of a plan as policies may see it: every part that
// terraform marks sensitive, and every string that holds one of secrets
// (as show redacts them), is Redacted; every unknown part is Unknown;
// numbers (json.Number, the plan being read with UseJSONNumber) are
// float64, as CEL and structpb take them. The value is a new one: the
// plan's is not changed.
func Masked(v, sens, unknown any, secrets []string) any {
	switch {
	case sens == true:
		return Redacted
	case unknown == true:
		return Unknown
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = Masked(e, at(sens, k), at(unknown, k), secrets)
		}
		// An attribute known only after apply may be absent from the value.
		if um, ok := unknown.(map[string]any); ok {
			for k, u := range um {
				if _, ok := out[k]; !ok && anyTrue(u) {
					out[k] = Unknown
				}
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = Masked(e, index(sens, i), index(unknown, i), secrets)
		}
		return out
	case string:
		b, _ := json.Marshal(v)
		for _, secret := range secrets {
			if strings.Contains(string(b), secret) {
				return Redacted
			}
		}
		return v
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return f
		}
		return v.String()
	}
	return v
}

// index is at for lists: the part of a sensitivity or unknown structure
// that mirrors element i.
func index(v any, i int) any {
	if l, ok := v.([]any); ok {
		if i < len(l) {
			return l[i]
		}
		return nil
	}
	if _, ok := v.(map[string]any); ok {
		return nil
	}
	return v
}
