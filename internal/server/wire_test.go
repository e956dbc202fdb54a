package server

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// filler sets every field reachable from a value to a value that is not
// zero and that no other field holds (one element per slice and map), so
// that a field the conversion forgets, or takes from its neighbour of the
// same type, shows as a difference in the JSON.
type filler struct{ n int }

// next is a number no earlier field was given.
func (f *filler) next() int { f.n++; return f.n }

func (f *filler) fill(v reflect.Value, depth int) {
	if depth > 12 {
		return
	}
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 3, 10, 9, 30, f.next(), 0, time.UTC)))
		return
	case reflect.TypeFor[money.Amount](): // its fields are unexported: reflection cannot reach them
		v.Set(reflect.ValueOf(money.FromPico(int64(f.next()))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strconv.Itoa(f.next()))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(f.next()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.next()))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.next()) + 0.5)
	case reflect.Interface:
		v.Set(reflect.ValueOf("any" + strconv.Itoa(f.next())))
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		f.fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		f.fill(k, depth+1)
		f.fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				f.fill(v.Field(i), depth+1)
			}
		}
	}
}

func filled[T any]() T {
	var v T
	new(filler).fill(reflect.ValueOf(&v).Elem(), 0)
	return v
}

// TestWireSameJSON checks that each conversion to a wire type writes the
// JSON the internal type wrote when the API served it as it was: the
// move to the API's own types changed no answer. An internal type that
// gains a field fails it too: then decide whether the API shows it (add it
// to the wire type) or not (leave it out here, saying why).
func TestWireSameJSON(t *testing.T) {
	u := filled[plan.Unit]()
	c := filled[plan.Change]()
	body := filled[pipeline.PlanBody]()
	g := filled[gate.Result]()
	vs := filled[policy.Verdicts]()
	st := filled[reconcile.UnitStatus]()
	rev := filled[source.Revision]()
	ps := filled[spec.Problems]()
	vr := filled[audit.VerifyResult]()
	dora := filled[store.DORAFigures]()
	imp := filled[cost.ImportResult]()
	rec := filled[cost.ImportRecord]()
	rep := filled[cost.Report]()
	bud := filled[cost.BudgetReport]()
	an := filled[cost.AnomalyReport]()
	tests := []struct {
		name           string
		internal, wire any
	}{
		{"unit", u, wireUnit(u)},
		{"change", c, wireChange(c)},
		{"plan", body, wirePlanBody(body)},
		{"gates", g, wireGates(g)},
		{"verdicts", vs, wireVerdicts(vs)},
		{"unit status", st, wireUnitStatus(st)},
		{"revision", rev, wireSourceRevision(rev)},
		{"problems", ps, wireProblems(ps)},
		{"audit verification", vr, wireAuditVerify(vr)},
		{"dora", dora, wireDORA(dora)},
		{"cost import", imp, wireCostImport(imp)},
		{"cost import record", rec, wireCostImportRecord(rec)},
		{"cost report", rep, wireCostReport(rep)},
		{"budgets", bud, wireCostBudgets(bud)},
		{"anomalies", an, wireCostAnomalies(an)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.internal)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("the wire type writes\n%s\nthe internal type wrote\n%s", got, want)
			}
		})
	}
	// A delete has no verdicts: the wire says [] where the store has null.
	b := pipeline.PlanBody{Decisions: []policy.Decision{{Action: plan.Delete, App: "a", Env: "e"}}}
	if got := wirePlanBody(b).Decisions[0].Verdicts; got == nil {
		t.Error("a delete's verdicts are null, want []")
	}
}

// constants returns the string values of the constants of type typ
// declared in the non-test files of dir.
func constants(t *testing.T, dir, typ string) []string {
	t.Helper()
	var out []string
	for _, f := range parseDir(t, dir) {
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || vs.Type == nil {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typ {
				return true
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatalf("no constants of type %s in %s: the test no longer reads the source", typ, dir)
	}
	return out
}

func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// gateKinds returns the gate names the gates of dir write: the string
// literals given to a field Gate.
func gateKinds(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, f := range parseDir(t, dir) {
		ast.Inspect(f, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			key, ok := kv.Key.(*ast.Ident)
			lit, isLit := kv.Value.(*ast.BasicLit)
			if ok && key.Name == "Gate" && isLit && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				out = append(out, s)
			}
			return true
		})
	}
	return out
}

// TestWireEnums checks that the API documents every phase, reason code and
// gate the engine and the gates write, and nothing they do not: a value
// added inside socle must be added to the API's list (and so to the
// OpenAPI document) in the same change.
func TestWireEnums(t *testing.T) {
	strs := func(vs ...string) []string { slices.Sort(vs); return slices.Compact(vs) }
	check := func(what string, engine, documented []string) {
		t.Helper()
		engine, documented = strs(engine...), strs(documented...)
		if !slices.Equal(engine, documented) {
			t.Errorf("%s: socle writes %v, the API documents %v", what, engine, documented)
		}
	}
	toStrings := func(v any) []string {
		rv := reflect.ValueOf(v)
		out := make([]string, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).String()
		}
		return out
	}
	phases := slices.DeleteFunc(toStrings(api.Phases), func(p string) bool { return p == string(api.PhaseAbsent) }) // the matrix's own
	check("phases", constants(t, "../reconcile", "Phase"), phases)
	check("reason codes", constants(t, "../reconcile", "Reason"), toStrings(api.ReasonCodes))
	kinds := append(gateKinds(t, "../gate"), gateKinds(t, "../promotion")...)
	if len(kinds) < 5 {
		t.Fatalf("found the gates %v: the test no longer reads the source", kinds)
	}
	check("gates", kinds, toStrings(api.GateKinds))
	// The lists are what the document shows: a constant of the API left
	// out of its list would be sent but not documented.
	check("api phases", constants(t, "../api", "Phase"), toStrings(api.Phases))
	check("api reason codes", constants(t, "../api", "ReasonCode"), toStrings(api.ReasonCodes))
	check("api gates", constants(t, "../api", "GateKind"), toStrings(api.GateKinds))
}
