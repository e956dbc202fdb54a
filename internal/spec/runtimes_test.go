package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	js "github.com/santhosh-tekuri/jsonschema/v6"
)

// testRuntimes are two runtime types, as a registry would give them: local,
// with no field of its own, and toy, whose box is a name no two
// environments share.
type testRuntimes struct{}

const toySchema = `{"type": "object", "additionalProperties": false, "required": ["box"],
  "properties": {"box": {"type": "string", "pattern": "^[a-z]+$", "description": "Box the toy runs in."},
                 "size": {"type": "integer", "minimum": 1}}}`

func (testRuntimes) RuntimeTypes() []RuntimeTypeSchema {
	return []RuntimeTypeSchema{
		{Name: "local", Description: "Processes.", Schema: []byte(`{"type": "object", "additionalProperties": false}`)},
		{Name: "toy", Description: "A toy.", Schema: []byte(toySchema)},
	}
}

func (testRuntimes) DecodeRuntimes(blocks []RuntimeBlock) ([]any, []RuntimeProblem) {
	configs := make([]any, len(blocks))
	var problems []RuntimeProblem
	owner := map[string]string{}
	for i, b := range blocks {
		if b.Type != "toy" {
			continue
		}
		box := b.Fields["box"].(string) // the schema made sure of it
		configs[i] = "box " + box
		if env, ok := owner[box]; ok {
			problems = append(problems, RuntimeProblem{Block: i, Field: []string{"box"}, Message: fmt.Sprintf("box %q is %s's", box, env)})
		}
		owner[box] = b.Env
		if box == "old" {
			problems = append(problems, RuntimeProblem{Block: i, Message: "an old box", Warning: true})
		}
	}
	return configs, problems
}

// withRuntime is the minimal platform with dev's runtime block replaced by
// the lines given (indented under runtime:, from line 7 on).
func withRuntime(lines ...string) string {
	block := "runtime:\n      " + strings.Join(lines, "\n      ")
	return strings.Replace(minimalPlatform, "runtime: {type: local}\n    sync: auto", block+"\n    sync: auto", 1)
}

// TestRuntimeBlocks: the registered runtime types check the blocks, and
// every problem names socle.yaml, its line and column, and the field.
func TestRuntimeBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, platform string
		want           []string // problems, in order
		config         any      // dev's decoded runtime
	}{
		{"good", withRuntime("type: toy", "box: red", "size: 2"), nil, "box red"},
		{"local", minimalPlatform, nil, nil},
		{"misspelt field", withRuntime("type: toy", "box: red", "sise: 2"),
			[]string{`socle.yaml:9:7: environments[0].runtime.sise: unknown field "sise"; did you mean "size"?`}, nil},
		{"field of no type", withRuntime("type: local", "box: red"),
			[]string{`socle.yaml:8:7: environments[0].runtime.box: unknown field "box"; expected one of: type`}, nil},
		{"missing field", withRuntime("type: toy", "size: 2"),
			[]string{`socle.yaml:7:7: environments[0].runtime.box: missing required field "box"`}, nil},
		{"wrong form", withRuntime("type: toy", "box: Red"),
			[]string{`socle.yaml:8:12: environments[0].runtime.box: "Red" does not have the expected form (pattern ^[a-z]+$)`}, nil},
		{"wrong type", withRuntime("type: toy", "box: red", "size: big"),
			[]string{`socle.yaml:9:13: environments[0].runtime.size: expected integer, found string "big"`}, nil},
		{"unknown type", withRuntime("type: toys", "box: red"),
			[]string{`socle.yaml:7:13: environments[0].runtime.type: unknown runtime type "toys"; did you mean "toy"? (runtime types: local, toy)`}, nil},
		{"terraform", withRuntime("type: terraform"),
			[]string{`socle.yaml:7:13: environments[0].runtime.type: terraform is not a runtime: Terraform and OpenTofu configurations are stacks, units of their own (stacks/<stack>/), not where an environment's apps run (runtime types: local, toy)`}, nil},
		{"type missing", withRuntime("box: red"),
			[]string{`socle.yaml:7:7: environments[0].runtime.type: missing required field "type"`}, nil},
		{"checked together", strings.Replace(withRuntime("type: toy", "box: red"), "runtime: {type: local}", "runtime: {type: toy, box: red}", 1),
			[]string{`socle.yaml:11:31: environments[1].runtime.box: box "red" is dev's`}, "box red"},
		{"warning", withRuntime("type: toy", "box: old"),
			[]string{`socle.yaml:7:7: warning: environments[0].runtime: an old box`}, "box old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := minimalRepo()
			fsys["socle.yaml"] = &fstest.MapFile{Data: []byte(tc.platform)}
			r, ps := LoadWith(fsys, testRuntimes{})
			if got := ps.String(); got != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
			}
			if got := r.Environment("dev").Runtime.Config; got != tc.config {
				t.Errorf("dev's runtime config = %v, want %v", got, tc.config)
			}
		})
	}
}

// TestLoadKnowsNoRuntime: Load takes every block as written, whatever its
// type, and decodes none.
func TestLoadKnowsNoRuntime(t *testing.T) {
	t.Parallel()
	fsys := minimalRepo()
	fsys["socle.yaml"] = &fstest.MapFile{Data: []byte(withRuntime("type: anything", "box: Red", "size: [1]"))}
	r, ps := Load(fsys)
	if len(ps) > 0 {
		t.Fatalf("problems: %v", ps)
	}
	rt := r.Environment("dev").Runtime
	if rt.Type != "anything" || rt.Config != nil || rt.Fields["box"] != "Red" {
		t.Errorf("runtime = %+v", rt)
	}
	b, err := json.Marshal(rt)
	if err != nil || string(b) != `{"box":"Red","size":[1],"type":"anything"}` {
		t.Errorf("runtime marshals to %s, %v", b, err)
	}
}

// TestSchemaWith: the published platform schema holds each runtime type's
// block, so that an editor finds in it what validate says.
func TestSchemaWith(t *testing.T) {
	t.Parallel()
	b, err := SchemaWith("platform", testRuntimes{})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := js.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := js.NewCompiler()
	if err := c.AddResource(SchemaBaseURL+"platform.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaBaseURL + "platform.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		runtime string
		valid   bool
	}{
		{`{"type": "toy", "box": "red"}`, true},
		{`{"type": "local"}`, true},
		{`{"type": "toy", "box": "red", "sise": 2}`, false},
		{`{"type": "toy"}`, false},
		{`{"type": "local", "box": "red"}`, false},
		{`{"type": "terraform"}`, false},
	} {
		platform := `{"apiVersion": "socle.dev/v1", "kind": "Platform", "metadata": {"name": "acme"},
			"environments": [{"name": "dev", "sync": "auto", "runtime": ` + tc.runtime + `}]}`
		v, err := js.UnmarshalJSON(strings.NewReader(platform))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); (err == nil) != tc.valid {
			t.Errorf("runtime %s: valid = %v, want %v (%v)", tc.runtime, err == nil, tc.valid, err)
		}
	}
	if other, _ := SchemaWith("teams", testRuntimes{}); !bytes.Equal(other, mustSchema(t, "teams")) {
		t.Error("the schema of teams.yaml changed with the runtime types")
	}
}

func mustSchema(t *testing.T, name string) []byte {
	b, err := Schema(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckRuntimeSchema: what a registry refuses as a type's schema.
func TestCheckRuntimeSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ schema, err string }{
		{toySchema, ""},
		{`{"type": "object"}`, ""},
		{`{"type": "string"}`, "not the schema of an object"},
		{`{"type": "object", "properties": {"g": {"$ref": "#/$defs/G"}}, "$defs": {"G": {}}}`, "refers to definitions"},
		{`{"type": "object", "properties": {"n": {"type": "integer", "minimum": "one"}}}`, "minimum"},
		{`{"type": "object",`, "not JSON"},
	} {
		err := CheckRuntimeSchema([]byte(tc.schema))
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("CheckRuntimeSchema(%s) = %v, want %q", tc.schema, err, tc.err)
		}
	}
}

// FuzzRuntimeBlock: whatever dev's runtime block holds, loading with
// runtime types neither panics nor reports a problem without a place.
func FuzzRuntimeBlock(f *testing.F) {
	for _, s := range []string{"{type: toy, box: red}", "{type: toy}", "{type: local, box: 1}", "{type: [toy]}", "toy", "{type: toy, box: {a: b}}", "{type: toy, box: red, size: 1e999}", "null", "{type: terraform}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		fsys := minimalRepo()
		fsys["socle.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(minimalPlatform, "{type: local}", block, 1))}
		_, ps := LoadWith(fsys, testRuntimes{})
		for _, p := range ps {
			if p.File == "" || p.Message == "" || strings.Contains(p.Message, "internal error") {
				t.Fatalf("problem without a place or a message, or a bug: %+v", p)
			}
		}
	})
}
