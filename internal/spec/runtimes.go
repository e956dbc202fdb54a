package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	js "github.com/santhosh-tekuri/jsonschema/v6"
)

// Runtimes are the runtime types a loader knows (LoadWith). spec defines
// none: each runtime type, registered with socle (internal/runtime's
// Registry, which the wiring fills), gives the JSON Schema of the fields of
// its block, decodes them into a value of its own and checks them. The
// loader validates each environment's block against its type's schema,
// hands the valid ones to DecodeRuntimes, and reports every problem at its
// file, line and field, as it does its own.
type Runtimes interface {
	// RuntimeTypes lists the types, sorted by name.
	RuntimeTypes() []RuntimeTypeSchema
	// DecodeRuntimes decodes blocks, each of a listed type and valid by
	// its schema, and checks them together (two environments in one
	// place): configs[i] is blocks[i] decoded, nil when it did not decode.
	DecodeRuntimes(blocks []RuntimeBlock) (configs []any, problems []RuntimeProblem)
}

// RuntimeTypeSchema says what a runtime type's block holds.
type RuntimeTypeSchema struct {
	Name RuntimeType
	// Description says what the runtime is, for the published schema.
	Description string
	// Schema is the JSON Schema (draft 2020-12) of the fields beside type:
	// an object schema that refers to no definition ($ref), so that it
	// stands in the platform's schema as it is (CheckRuntimeSchema).
	Schema []byte
}

// RuntimeBlock is one environment's runtime block.
type RuntimeBlock struct {
	// Env is the environment's name.
	Env  string
	Type RuntimeType
	// Fields are the fields beside type, as written.
	Fields map[string]any
}

// RuntimeProblem is something wrong with a runtime block: Block is its
// index in the blocks given to DecodeRuntimes, Field the path of the field
// inside it (empty: the block as a whole).
type RuntimeProblem struct {
	Block   int
	Field   []string
	Message string
	Warning bool
}

// LoadWith is Load, with the runtime blocks of the environments checked by
// the runtime types of rt: a type rt does not list is a problem, a block is
// validated against its type's schema and decoded by it into
// Runtime.Config. socle validate and the server's revision pipeline load
// through it, with the runtime types socle is built with; Load takes the
// blocks as written and checks none of them.
func LoadWith(fsys fs.FS, rt Runtimes) (*Repo, Problems) {
	return load(fsys, defaultLimits, rt)
}

// checkRuntimes checks every environment's runtime block against its type.
func (l *loading) checkRuntimes() {
	if l.runtimes == nil {
		return
	}
	types := l.runtimes.RuntimeTypes()
	schemas := make(map[RuntimeType]*compiled, len(types))
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t.Name)
		c, err := compileRuntimeSchema(t.Schema)
		if err != nil { // the registry refuses such a type: a bug, said plainly
			l.add(Problem{File: PlatformFile, Message: fmt.Sprintf("internal error: the schema of runtime type %s: %v", t.Name, err)})
			return
		}
		schemas[t.Name] = c
	}
	d := l.docs[PlatformFile]
	envs := l.repo.Platform.Environments
	var blocks []RuntimeBlock
	var env []int // the environment of each block
	for i := range envs {
		r := &envs[i].Runtime
		at := []string{"environments", idx(i), "runtime"}
		if r.Type == "" {
			continue // missing: the schema said so
		}
		c, ok := schemas[r.Type]
		if !ok {
			l.at(PlatformFile, unknownRuntime(r.Type, names), append(at, "type")...)
			continue
		}
		if d != nil {
			fields := r.Fields
			if fields == nil {
				fields = map[string]any{}
			}
			if ps := d.validateWith(c, fields, at); len(ps) > 0 {
				l.add(ps...)
				continue
			}
		}
		blocks = append(blocks, RuntimeBlock{Env: envs[i].Name, Type: r.Type, Fields: r.Fields})
		env = append(env, i)
	}
	if len(blocks) == 0 {
		return
	}
	configs, problems := l.runtimes.DecodeRuntimes(blocks)
	for j, c := range configs {
		if j < len(env) {
			envs[env[j]].Runtime.Config = c
		}
	}
	for _, p := range problems {
		if p.Block < 0 || p.Block >= len(env) {
			l.add(Problem{File: PlatformFile, Message: "internal error: a runtime type reported a problem of no block: " + p.Message})
			continue
		}
		pr := l.problemAt(PlatformFile, p.Message, append([]string{"environments", idx(env[p.Block]), "runtime"}, p.Field...)...)
		pr.Warning = p.Warning
		l.add(pr)
	}
}

// unknownRuntime says that t is no runtime type, and which are.
func unknownRuntime(t RuntimeType, names []string) string {
	known := "runtime types: " + strings.Join(names, ", ")
	if t == "terraform" {
		// It was listed as a runtime once; stacks are their own kind of
		// unit (issue 17), beside apps, not where apps run.
		return fmt.Sprintf("terraform is not a runtime: Terraform and OpenTofu configurations are stacks, units of their own (stacks/<stack>/), not where an environment's apps run (%s)", known)
	}
	msg := fmt.Sprintf("unknown runtime type %q", t)
	if s := suggest(string(t), names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + " (" + known + ")"
}

// runtimeSchemas holds the compiled schemas of runtime types' blocks, by
// their text: a registry's types are compiled once per process.
var runtimeSchemas sync.Map // string → *compiled or error

// CheckRuntimeSchema says whether schema can be a runtime type's
// (RuntimeTypeSchema.Schema): a JSON Schema of an object that compiles and
// refers to no definition. A registry of runtime types asks it of each.
func CheckRuntimeSchema(schema []byte) error {
	_, err := compileRuntimeSchema(schema)
	return err
}

func compileRuntimeSchema(schema []byte) (*compiled, error) {
	if v, ok := runtimeSchemas.Load(string(schema)); ok {
		if err, bad := v.(error); bad {
			return nil, err
		}
		return v.(*compiled), nil
	}
	c, err := compileRuntimeSchemaText(schema)
	if err != nil {
		runtimeSchemas.Store(string(schema), err)
		return nil, err
	}
	runtimeSchemas.Store(string(schema), c)
	return c, nil
}

func compileRuntimeSchemaText(schema []byte) (*compiled, error) {
	doc, err := js.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	m, ok := doc.(map[string]any)
	if !ok || m["type"] != "object" {
		return nil, errors.New(`not the schema of an object ("type": "object")`)
	}
	if hasRef(doc) {
		return nil, errors.New("it refers to definitions ($ref, $defs): give them in place")
	}
	// Type stands beside the fields: an unknown field's problem lists it
	// among those allowed (the block validated has no type).
	props, _ := m["properties"].(map[string]any)
	withType := map[string]any{"type": true}
	for k, v := range props {
		withType[k] = v
	}
	m["properties"] = withType
	const url = "socle:runtime-block.json"
	c := js.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, err
	}
	return &compiled{schema: s, raw: doc, fast: compileFastSchema(withDraft(m))}, nil
}

// withDraft is a schema with its draft named, as compileFastSchema wants
// it: a runtime block's schema may leave it to the platform's.
func withDraft(m map[string]any) map[string]any {
	if _, ok := m["$schema"]; ok {
		return m
	}
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out["$schema"] = draft2020
	return out
}

func hasRef(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "$ref" || k == "$defs" || k == "$dynamicRef" || hasRef(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasRef(e) {
				return true
			}
		}
	}
	return false
}

// SchemaWith returns the published JSON Schema of a socle file kind with
// the blocks of rt's runtime types in it: in platform, runtime.type lists
// the types and each type's fields apply when it is named (if/then), so
// that editors check and complete them. The other kinds are Schema's.
func SchemaWith(name string, rt Runtimes) ([]byte, error) {
	base, err := Schema(name)
	if err != nil || name != "platform" || rt == nil {
		return base, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(base, &top); err != nil {
		return nil, err
	}
	var defs map[string]json.RawMessage
	if err := json.Unmarshal(top["$defs"], &defs); err != nil {
		return nil, err
	}
	var runtime map[string]any
	if err := json.Unmarshal(defs["Runtime"], &runtime); err != nil {
		return nil, err
	}
	props, _ := runtime["properties"].(map[string]any)
	typ, _ := props["type"].(map[string]any)
	if typ == nil {
		return nil, errors.New("the platform schema has no runtime.type")
	}
	var enum []any
	var allOf []any
	for _, t := range rt.RuntimeTypes() {
		var block map[string]any
		if err := json.Unmarshal(t.Schema, &block); err != nil {
			return nil, fmt.Errorf("the schema of runtime type %s: %w", t.Name, err)
		}
		bprops, _ := block["properties"].(map[string]any)
		if bprops == nil {
			bprops = map[string]any{}
		}
		bprops["type"] = map[string]any{"const": t.Name}
		block["properties"] = bprops
		block["additionalProperties"] = false
		if t.Description != "" {
			block["description"] = t.Description
		}
		delete(block, "$schema")
		def := "runtime-" + string(t.Name)
		b, err := json.Marshal(block)
		if err != nil {
			return nil, err
		}
		defs[def] = b
		enum = append(enum, t.Name)
		allOf = append(allOf, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": t.Name}}, "required": []string{"type"}},
			"then": map[string]any{"$ref": "#/$defs/" + def},
		})
	}
	typ["enum"] = enum
	if len(allOf) > 0 {
		runtime["allOf"] = allOf
	}
	if defs["Runtime"], err = json.Marshal(runtime); err != nil {
		return nil, err
	}
	if top["$defs"], err = json.Marshal(defs); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
