package runtime

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/spec"
)

const anySchema = `{"type": "object", "properties": {"x": {"type": "string"}}}`

// testType is a runtime type whose config is its x, refused when "bad";
// with check, no two environments share an x.
func testType(name string, check bool) Type {
	t := Type{
		Name:   name,
		Schema: []byte(anySchema),
		Decode: func(fields map[string]any) (any, []FieldProblem) {
			var c struct{ X string }
			if err := DecodeFields(fields, &c); err != nil {
				return nil, []FieldProblem{{Message: err.Error()}}
			}
			if c.X == "bad" {
				return name + ":" + c.X, []FieldProblem{{Field: []string{"x"}, Message: "bad x"}}
			}
			if c.X == "old" {
				return name + ":" + c.X, []FieldProblem{{Field: []string{"x"}, Message: "old x", Warning: true}}
			}
			return name + ":" + c.X, nil
		},
		Open: func(Host, string) (Instance, error) { return nil, errors.New("not opened in this test") },
	}
	if check {
		t.Check = func(envs []EnvConfig) []EnvProblem {
			var out []EnvProblem
			seen := map[any]string{}
			for i, e := range envs {
				if other, ok := seen[e.Config]; ok {
					out = append(out, EnvProblem{Env: i, FieldProblem: FieldProblem{Field: []string{"x"}, Message: "as " + other}})
				}
				seen[e.Config] = e.Env
			}
			return out
		}
	}
	return t
}

// TestRegisterRefuses: a registry takes only types that can serve, once.
func TestRegisterRefuses(t *testing.T) {
	t.Parallel()
	reg, err := NewRegistry(testType("a", false))
	if err != nil {
		t.Fatal(err)
	}
	noDecode, noOpen, badSchema, refSchema := testType("b", false), testType("b", false), testType("b", false), testType("b", false)
	noDecode.Decode, noOpen.Open = nil, nil
	badSchema.Schema = []byte(`{"type": "string"}`)
	refSchema.Schema = []byte(`{"type": "object", "properties": {"g": {"$ref": "#/$defs/G"}}, "$defs": {"G": {}}}`)
	for _, tc := range []struct {
		typ  Type
		want string
	}{
		{testType("a", false), "already registered"},
		{testType("Kube", false), "lowercase"},
		{testType("", false), "lowercase"},
		{noDecode, "Decode and Open are required"},
		{noOpen, "Decode and Open are required"},
		{badSchema, "not the schema of an object"},
		{refSchema, "refers to definitions"},
	} {
		if err := reg.Register(tc.typ); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%q) = %v, want %q", tc.typ.Name, err, tc.want)
		}
	}
	if err := reg.Register(testType("a", true)); !errors.Is(err, ErrRegistered) {
		t.Errorf("a second a: %v, want ErrRegistered", err)
	}
	if got := reg.Names(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("names = %v", got)
	}
}

// TestDecodeRuntimes: each block is decoded by its type, a block that does
// not decode gets no config and is not checked with the others, and every
// problem is given back at its block.
func TestDecodeRuntimes(t *testing.T) {
	t.Parallel()
	reg, err := NewRegistry(testType("b", false), testType("a", true))
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.RuntimeTypes(); len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || string(got[0].Schema) != anySchema {
		t.Errorf("RuntimeTypes() = %+v, want a then b", got)
	}
	blocks := []spec.RuntimeBlock{
		{Env: "dev", Type: "a", Fields: map[string]any{"x": "one"}},
		{Env: "qa", Type: "b", Fields: map[string]any{"x": "one"}},
		{Env: "preprod", Type: "a", Fields: map[string]any{"x": "bad"}},
		{Env: "prod", Type: "a", Fields: map[string]any{"x": "one"}},
		{Env: "lab", Type: "a", Fields: map[string]any{"x": "old"}},
		{Env: "sandbox", Type: "a"},
	}
	configs, problems := reg.DecodeRuntimes(blocks)
	if want := []any{"a:one", "b:one", nil, "a:one", "a:old", "a:"}; !reflect.DeepEqual(configs, want) {
		t.Errorf("configs = %v, want %v", configs, want)
	}
	want := []spec.RuntimeProblem{
		{Block: 2, Field: []string{"x"}, Message: "bad x"},
		{Block: 4, Field: []string{"x"}, Message: "old x", Warning: true},
		{Block: 3, Field: []string{"x"}, Message: "as dev"},
	}
	if !reflect.DeepEqual(problems, want) {
		t.Errorf("problems = %+v, want %+v", problems, want)
	}
}
