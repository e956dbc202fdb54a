package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
)

// oversized returns values of type t that each hold exactly one part out of
// the bounds of bounds.go, with the path of that part.
func oversized(t reflect.Type, path string) (paths []string, values []reflect.Value) {
	long := strings.Repeat("x", boundFile+1)
	add := func(p string, v reflect.Value) {
		paths, values = append(paths, p), append(values, v)
	}
	switch t.Kind() {
	case reflect.String:
		add(path, reflect.ValueOf(long).Convert(t))
	case reflect.Slice:
		add(path+"[too many]", reflect.MakeSlice(t, boundItems+1, boundItems+1))
		ps, vs := oversized(t.Elem(), path+"[0]")
		for i, v := range vs {
			s := reflect.MakeSlice(t, 1, 1)
			s.Index(0).Set(v)
			add(ps[i], s)
		}
	case reflect.Map:
		many := reflect.MakeMap(t)
		for i := range boundItems + 1 {
			many.SetMapIndex(reflect.ValueOf(fmt.Sprint(i)).Convert(t.Key()), reflect.Zero(t.Elem()))
		}
		add(path+"{too many}", many)
		longKey := reflect.MakeMap(t)
		longKey.SetMapIndex(reflect.ValueOf(long).Convert(t.Key()), reflect.Zero(t.Elem()))
		add(path+"{long key}", longKey)
		ps, vs := oversized(t.Elem(), path+".k")
		for i, v := range vs {
			m := reflect.MakeMap(t)
			m.SetMapIndex(reflect.ValueOf("k").Convert(t.Key()), v)
			add(ps[i], m)
		}
	case reflect.Pointer:
		ps, vs := oversized(t.Elem(), path)
		for i, v := range vs {
			p := reflect.New(t.Elem())
			p.Elem().Set(v)
			add(ps[i], p)
		}
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			ps, vs := oversized(f.Type, path+"."+f.Name)
			for j, v := range vs {
				s := reflect.New(t).Elem()
				s.Field(i).Set(v)
				add(ps[j], s)
			}
		}
	case reflect.Interface:
		many := make([]any, boundItems+1)
		manyMap := map[string]any{}
		for i := range boundItems + 1 {
			manyMap[fmt.Sprint(i)] = 1
		}
		for p, v := range map[string]any{
			"string": long, "list": many, "map": manyMap, "key": map[string]any{long: 1},
			"nested": map[string]any{"k": []any{long}},
		} {
			add(path+"("+p+")", reflect.ValueOf(&v).Elem())
		}
	}
	return paths, values
}

// TestUnitFitsSeesEveryField sets every string, list and map that a unit
// can hold out of bounds, one at a time: unitFits must notice each, or a
// policy would run without cost tracking on an input its estimate did not
// cover. A field added to plan.Unit or to Score is covered by this test.
func TestUnitFitsSeesEveryField(t *testing.T) {
	t.Parallel()
	base := webUnit("prod")
	if !unitFits(base) {
		t.Fatal("a small unit must fit")
	}
	paths, values := oversized(reflect.TypeFor[plan.Unit](), "unit")
	if len(paths) < 60 {
		t.Fatalf("only %d cases: the generator is broken", len(paths))
	}
	for i, v := range values {
		u := v.Interface().(plan.Unit)
		if unitFits(&u) {
			t.Errorf("%s is out of bounds, but unitFits says it fits", paths[i])
		}
	}
	c := &change{App: "web", Env: "prod", Changed: []string{"replicas.min"}}
	if !changeFits(c, "marco", []string{"sofia"}, base, base) {
		t.Error("a small change must fit")
	}
	for name, fits := range map[string]bool{
		"author":    changeFits(c, strings.Repeat("a", boundChars+1), nil, base, base),
		"approvers": changeFits(c, "", make([]string, boundItems+1), base, base),
		"changed":   changeFits(&change{Changed: make([]string, boundItems+1)}, "", nil, base, base),
		"artifact":  changeFits(&change{Artifact: strings.Repeat("a", boundChars+1)}, "", nil, base, base),
	} {
		if fits {
			t.Errorf("a change with too long or many %s fits", name)
		}
	}
}

// TestFastPath checks which expressions get a program without cost
// tracking, that both programs agree, and that a change out of bounds is
// still held to the cost limit.
func TestFastPath(t *testing.T) {
	t.Parallel()
	set, problems := compile(t, policies(
		`  - {name: simple, severity: deny, message: m, expression: "change.new.containers.all(c, change.new.containers[c].variables.all(v, v.size() < 40))"}
`, `  - {name: search, severity: deny, message: m, expression: "change.new.containers.all(c, !change.new.containers[c].image.contains('zz'))"}
`, `  - {name: nested, severity: deny, message: m, expression: "change.new.containers.all(c, change.new.containers[c].variables.all(a, change.new.containers[c].variables.all(b, a == b || a.size() + b.size() > 0)))"}
`))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	simple, search, nested := set.policies[len(set.policies)-3], set.policies[len(set.policies)-2], set.policies[len(set.policies)-1]
	if simple.fast == nil || search.fast == nil || nested.fast != nil {
		t.Fatalf("fast programs: simple %v, search %v, nested %v", simple.fast != nil, search.fast != nil, nested.fast != nil)
	}
	withVars := func(n int) Input {
		u := webUnit("dev")
		c := u.Containers["web"]
		c.Variables = types.ContainerVariables{}
		for i := range n {
			c.Variables[fmt.Sprintf("VARIABLE_%05d", i)] = "x"
		}
		u.Containers["web"] = c
		return create(u)
	}
	// Within bounds: the fast program runs, and agrees with the tracked one.
	in := withVars(10)
	ev := set.newEvaluation(&in)
	act := ev.activation()
	if !ev.fits {
		t.Fatal("ten variables fit")
	}
	a, _, errA := simple.fast.Eval(act)
	b, _, errB := simple.prg.Eval(act)
	if errA != nil || errB != nil || a != b {
		t.Errorf("fast %v (%v), tracked %v (%v)", a, errA, b, errB)
	}
	if v := verdict(set.Evaluate(in), "simple"); v == nil || !v.Allowed {
		t.Errorf("simple: %+v", v)
	}
	// Out of bounds: tracked, so a change large enough goes over the limit
	// even for an expression whose estimate is under it.
	if v := verdict(set.Evaluate(withVars(100)), "simple"); v == nil || !v.Allowed {
		t.Errorf("100 variables are within the cost limit: %+v", v)
	}
	in = create(webUnit("dev"))
	c := in.Change.Desired.Containers["web"]
	c.Image = strings.Repeat("a", 8<<20)
	in.Change.Desired.Containers["web"] = c
	if v := verdict(set.Evaluate(in), "search"); v == nil || v.Allowed || !strings.Contains(v.Message, "cost limit") {
		t.Errorf("searching an 8 MB image name is over the cost limit: %+v", v)
	}
	// The nested loop is always tracked: 300² iterations are over the limit.
	if v := verdict(set.Evaluate(withVars(300)), "nested"); v == nil || v.Allowed || !strings.Contains(v.Message, "cost limit") {
		t.Errorf("nested: %+v", v)
	}
}
