package spec

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/invopop/jsonschema"
	js "github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	scoreschema "github.com/score-spec/score-go/schema"
	"golang.org/x/text/message"
)

// SchemaBaseURL is where socle's schemas are published; each schema's $id is
// SchemaBaseURL + <kind>.json.
const SchemaBaseURL = "https://socle.dev/schemas/v1/"

// fileKinds lists every socle file kind with the Go type that defines it.
// The published schemas are generated from these types and their comments.
var fileKinds = []struct {
	name string // schema file name without .json
	typ  any
	what string
}{
	{"platform", Platform{}, "socle.yaml at the repository root"},
	{"teams", Teams{}, "teams.yaml"},
	{"app", AppConfig{}, "apps/<app>/socle.yaml"},
	{"releases", Releases{}, "releases/<env>.yaml"},
	{"budgets", Budgets{}, "budgets.yaml"},
	{"policies", PolicySet{}, "policies/*.yaml"},
	{"template", Template{}, "templates/<name>/template.yaml"},
	{"app-template", AppTemplate{}, "apps/<app>/.template.yaml"},
	{"stack", StackConfig{}, "stacks/<stack>/stack.yaml"},
	{"provisioners", ProvisionerSet{}, "provisioners/*.yaml"},
}

//go:embed schemas/*.json
var schemaFiles embed.FS

// SchemaNames lists the published schemas, e.g. "platform".
func SchemaNames() []string {
	names := make([]string, len(fileKinds))
	for i, k := range fileKinds {
		names[i] = k.name
	}
	return names
}

// Schema returns the published JSON Schema of a socle file kind.
func Schema(name string) ([]byte, error) {
	b, err := schemaFiles.ReadFile("schemas/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("no schema %q (have %s)", name, strings.Join(SchemaNames(), ", "))
	}
	return b, nil
}

// GenerateSchemas derives the schemas from the Go types; commentsDir is this
// package's source directory, whose doc comments become descriptions. The
// result is what schemas/ must hold (a test checks it, and rewrites it with
// -update).
func GenerateSchemas(commentsDir string) (map[string][]byte, error) {
	r := &jsonschema.Reflector{
		RequiredFromJSONSchemaTags: true,
		AllowAdditionalProperties:  false,
	}
	if err := r.AddGoComments("github.com/socle-dev/socle/internal/spec", commentsDir); err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(fileKinds))
	for _, k := range fileKinds {
		s := r.ReflectFromType(reflect.TypeOf(k.typ))
		s.ID = jsonschema.ID(SchemaBaseURL + k.name + ".json")
		s.Title = "socle " + k.name
		s.Description = "The schema of " + k.what + "."
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return nil, err
		}
		out[k.name] = append(b, '\n')
	}
	return out, nil
}

// validators holds the compiled schemas, compiled once per process.
var validators = sync.OnceValues(func() (map[string]*compiled, error) {
	c := js.NewCompiler()
	raw := map[string]any{}
	add := func(name, url string, data []byte) error {
		doc, err := js.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("schema %s: %w", name, err)
		}
		raw[name] = doc
		return c.AddResource(url, doc)
	}
	for _, name := range SchemaNames() {
		b, err := Schema(name)
		if err != nil {
			return nil, err
		}
		if err := add(name, SchemaBaseURL+name+".json", b); err != nil {
			return nil, err
		}
	}
	if err := add("score", "https://score.dev/schemas/score-v1b1.json", []byte(scoreschema.ScoreSchemaV1b1)); err != nil {
		return nil, err
	}
	out := map[string]*compiled{}
	for name := range raw {
		url := SchemaBaseURL + name + ".json"
		if name == "score" {
			url = "https://score.dev/schemas/score-v1b1.json"
		}
		s, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("compiling schema %s: %w", name, err)
		}
		out[name] = &compiled{schema: s, raw: raw[name], fast: compileFastSchema(raw[name])}
	}
	return out, nil
})

type compiled struct {
	schema *js.Schema
	raw    any         // the schema document, to list the fields an object allows
	fast   *fastSchema // nil when the schema is beyond it
}

var printer = message.NewPrinter(message.MatchLanguage("en"))

// validate checks a document against a schema and turns every leaf error into
// a located Problem.
func (d *document) validate(schemaName string) []Problem {
	vs, err := validators()
	if err != nil {
		return []Problem{{File: d.file, Message: "internal error: " + err.Error()}}
	}
	return d.validateWith(vs[schemaName], d.value, nil)
}

// validateWith checks v, the part of the document at path at, against c.
func (d *document) validateWith(c *compiled, v any, at []string) []Problem {
	if c.fast != nil && c.fast.valid(v) {
		return nil
	}
	err := c.schema.Validate(v)
	if err == nil {
		return nil
	}
	ve, ok := err.(*js.ValidationError)
	if !ok {
		return []Problem{{File: d.file, Message: err.Error()}}
	}
	var out []Problem
	var walk func(e *js.ValidationError)
	walk = func(e *js.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		out = append(out, d.schemaProblems(c, e, at)...)
	}
	walk(ve)
	slices.SortFunc(out, func(a, b Problem) int { return a.Line*1000 + a.Column - b.Line*1000 - b.Column })
	return slices.CompactFunc(out, func(a, b Problem) bool { return a == b })
}

func (d *document) schemaProblems(c *compiled, e *js.ValidationError, at []string) []Problem {
	loc := append(slices.Clip(at), e.InstanceLocation...)
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		allowed := c.allowedFields(e.SchemaURL)
		var ps []Problem
		for _, name := range k.Properties {
			p := d.problem("", append(slices.Clone(loc), name)...)
			n := d.keyNode(name, loc...)
			p.Line, p.Column = n.Line, n.Column
			p.Message = fmt.Sprintf("unknown field %q", name)
			if s := suggest(name, allowed); s != "" {
				p.Message += fmt.Sprintf("; did you mean %q?", s)
			} else if len(allowed) > 0 {
				p.Message += "; expected one of: " + strings.Join(allowed, ", ")
			}
			ps = append(ps, p)
		}
		return ps
	case *kind.Required:
		var ps []Problem
		for _, m := range k.Missing {
			p := d.problem(fmt.Sprintf("missing required field %q", m), loc...)
			if p.Field == "" {
				p.Field = m
			} else {
				p.Field += "." + m
			}
			ps = append(ps, p)
		}
		return ps
	case *kind.Type:
		n, _ := d.locate(loc...)
		found := k.Got
		if n != nil && n.Kind == 8 /* ScalarNode */ {
			found = fmt.Sprintf("%s %q", k.Got, n.Value)
		}
		msg := fmt.Sprintf("expected %s, found %s", strings.Join(k.Want, " or "), found)
		if slices.Contains(k.Want, "string") && n != nil && n.Kind == 8 {
			msg += fmt.Sprintf(" (YAML reads it as a %s: quote it, \"%s\")", k.Got, n.Value)
		}
		return []Problem{d.problem(msg, loc...)}
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return []Problem{d.problem(fmt.Sprintf("expected one of %s, found %v", strings.Join(want, ", "), k.Got), loc...)}
	case *kind.Const:
		return []Problem{d.problem(fmt.Sprintf("expected %v, found %v", k.Want, k.Got), loc...)}
	case *kind.Pattern:
		return []Problem{d.problem(fmt.Sprintf("%q does not have the expected form (pattern %s)", k.Got, k.Want), loc...)}
	case *kind.FalseSchema:
		field := "field"
		if len(loc) > 0 {
			field = fmt.Sprintf("field %q", loc[len(loc)-1])
		}
		return []Problem{d.problem(fmt.Sprintf("%s is not allowed here", field), loc...)}
	}
	return []Problem{d.problem(e.ErrorKind.LocalizedString(printer), loc...)}
}

// allowedFields lists the properties of the object schema an
// additionalProperties error came from.
func (c *compiled) allowedFields(schemaURL string) []string {
	_, frag, _ := strings.Cut(schemaURL, "#")
	frag = strings.TrimSuffix(frag, "/additionalProperties")
	node := c.raw
	for _, tok := range strings.Split(strings.Trim(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = m[tok]
	}
	m, _ := node.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// suggest returns the allowed name closest to a misspelt one, if close enough.
func suggest(name string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := editDistance(strings.ToLower(name), strings.ToLower(a)); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
