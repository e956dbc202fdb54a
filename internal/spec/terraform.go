package spec

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// What socle reads of a stack's Terraform configuration, with HashiCorp's
// own HCL parser (the one Terraform and OpenTofu use): the outputs the root
// module declares (what dependents may read), its variables (what inputs
// may set, and which need one), the local modules it calls (their files are
// part of the stack), and whether it declares a backend. The configuration
// is otherwise Terraform's to check (terraform validate).

// TFOutput is an output block of a stack's root module.
type TFOutput struct {
	Name      string `json:"name"`
	Sensitive bool   `json:"sensitive,omitempty"`
	File      string `json:"file"`
	Line      int    `json:"line"`
}

// TFVariable is a variable block of a stack's root module.
type TFVariable struct {
	Name string `json:"name"`
	// Required: the block has no default, so every instance needs an input.
	Required  bool   `json:"required,omitempty"`
	Sensitive bool   `json:"sensitive,omitempty"`
	File      string `json:"file"`
	Line      int    `json:"line"`
}

// tfModule is what socle reads of one module directory's files.
type tfModule struct {
	outputs   map[string]TFOutput
	variables map[string]TFVariable
	calls     []tfCall
	backend   *tfBackend
	problems  []Problem
}

// tfCall is a module block whose source is a local directory.
type tfCall struct {
	source     string
	file       string
	line, col  int
	moduleName string
}

// tfBackend is the backend block of a terraform block.
type tfBackend struct {
	typ       string
	file      string
	line, col int
}

// The bounds of a Terraform file, checked before it is parsed: HCL's parser
// is recursive, so nesting is bounded too (a file of a million [ takes the
// parser's stack past Go's limit, which no recover catches, and its time
// grows with the square of the depth).
const (
	maxTFFileBytes = 4 << 20
	maxTFDepth     = 64
	maxTFModules   = 256 // local module directories followed per stack
)

var tfRootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "output", LabelNames: []string{"name"}},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "terraform"},
	},
}

var tfTerraformSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "backend", LabelNames: []string{"type"}}},
}

func isTFFile(name string) bool {
	return strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tf.json")
}

// isTFOverride reports a Terraform override file (override.tf,
// *_override.tf): it merges into the blocks of the other files.
func isTFOverride(name string) bool {
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".json"), ".tf")
	return base == "override" || strings.HasSuffix(base, "_override")
}

// tfNesting returns the deepest nesting of brackets in data, stopping
// past limit. Brackets inside strings count too: an overestimate, which
// only a string of more than maxTFDepth unclosed brackets would notice.
func tfNesting(data []byte, limit int) int {
	depth, deepest := 0, 0
	for _, c := range data {
		switch c {
		case '(', '[', '{':
			depth++
			if depth > deepest {
				if deepest = depth; deepest > limit {
					return deepest
				}
			}
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return deepest
}

// parseTFFiles reads the Terraform files of one module directory (files
// maps each file's repository path to its text).
func parseTFFiles(files map[string][]byte, names []string) *tfModule {
	m := &tfModule{outputs: map[string]TFOutput{}, variables: map[string]TFVariable{}}
	p := hclparse.NewParser()
	for _, name := range names {
		data := files[name]
		if len(data) > maxTFFileBytes {
			m.problems = append(m.problems, Problem{File: name, Message: fmt.Sprintf("file is %d bytes; socle reads Terraform files of at most %d", len(data), maxTFFileBytes)})
			continue
		}
		if d := tfNesting(data, maxTFDepth); d > maxTFDepth {
			m.problems = append(m.problems, Problem{File: name, Message: fmt.Sprintf("brackets nest more than %d deep; socle reads Terraform files nested at most %d deep", maxTFDepth, maxTFDepth)})
			continue
		}
		var f *hcl.File
		var diags hcl.Diagnostics
		if strings.HasSuffix(name, ".json") {
			f, diags = p.ParseJSON(data, name)
		} else {
			f, diags = p.ParseHCL(data, name)
		}
		m.diagnose(name, diags)
		if f == nil || diags.HasErrors() {
			continue
		}
		m.read(name, f.Body)
	}
	return m
}

// diagnose adds HCL's errors as problems at their file and line.
func (m *tfModule) diagnose(file string, diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		p := Problem{File: file, Message: "terraform: " + d.Summary}
		if d.Detail != "" {
			p.Message += ": " + strings.TrimSuffix(d.Detail, ".")
		}
		if r := d.Subject; r != nil {
			p.Line, p.Column = r.Start.Line, r.Start.Column
		}
		m.problems = append(m.problems, p)
	}
}

func (m *tfModule) read(file string, body hcl.Body) {
	content, _, diags := body.PartialContent(tfRootSchema)
	m.diagnose(file, diags)
	override := isTFOverride(file)
	for _, b := range content.Blocks {
		line, col := b.DefRange.Start.Line, b.DefRange.Start.Column
		switch b.Type {
		case "output":
			o := TFOutput{Name: b.Labels[0], File: file, Line: line}
			attrs, _ := b.Body.JustAttributes()
			o.Sensitive = literalBool(attrs["sensitive"])
			if prev, ok := m.outputs[o.Name]; ok && !override {
				m.problems = append(m.problems, Problem{File: file, Line: line, Column: col, Message: fmt.Sprintf("terraform: a second output %q (the first is at %s:%d)", o.Name, prev.File, prev.Line)})
				continue
			}
			m.outputs[o.Name] = o
		case "variable":
			v := TFVariable{Name: b.Labels[0], File: file, Line: line}
			attrs, _ := b.Body.JustAttributes()
			_, hasDefault := attrs["default"]
			v.Required = !hasDefault
			v.Sensitive = literalBool(attrs["sensitive"])
			if prev, ok := m.variables[v.Name]; ok {
				if override {
					v.Required = v.Required && prev.Required
				} else {
					m.problems = append(m.problems, Problem{File: file, Line: line, Column: col, Message: fmt.Sprintf("terraform: a second variable %q (the first is at %s:%d)", v.Name, prev.File, prev.Line)})
					continue
				}
			}
			m.variables[v.Name] = v
		case "module":
			attrs, _ := b.Body.JustAttributes()
			src, ok := literalString(attrs["source"])
			if ok && (strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../")) {
				m.calls = append(m.calls, tfCall{source: src, file: file, line: line, col: col, moduleName: b.Labels[0]})
			}
		case "terraform":
			tc, _, diags := b.Body.PartialContent(tfTerraformSchema)
			m.diagnose(file, diags)
			for _, bb := range tc.Blocks {
				m.backend = &tfBackend{typ: bb.Labels[0], file: file, line: bb.DefRange.Start.Line, col: bb.DefRange.Start.Column}
			}
		}
	}
}

// literalBool is an attribute's value when it is a literal true.
func literalBool(a *hcl.Attribute) bool {
	if a == nil {
		return false
	}
	v, diags := a.Expr.Value(nil)
	return !diags.HasErrors() && v.Type() == cty.Bool && v.IsKnown() && !v.IsNull() && v.True()
}

// literalString is an attribute's value when it is a literal string (a
// module's source must be one, in Terraform too).
func literalString(a *hcl.Attribute) (string, bool) {
	if a == nil {
		return "", false
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String || !v.IsKnown() || v.IsNull() {
		return "", false
	}
	return v.AsString(), true
}
