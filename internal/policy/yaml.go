package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/internal/spec"
)

// yamlFile locates problems in a YAML file of the repository. The spec
// loader keeps its positions to itself, so the file is parsed again, once,
// and only when a problem needs a line.
type yamlFile struct {
	fsys   fs.FS
	file   string
	parsed bool
	root   *yaml.Node
	lines  []string
}

func (y *yamlFile) node() *yaml.Node {
	if !y.parsed {
		y.parsed = true
		if y.fsys != nil {
			if data, err := spec.ReadFile(y.fsys, y.file); err == nil {
				if y.root, _ = parseYAML(y.file, data, nil); y.root != nil {
					y.lines = strings.Split(string(data), "\n")
				}
			}
		}
	}
	return y.root
}

// parseYAML reads one YAML document within the limits of one file,
// drawing on the budget b (nil: none), and returns its top node (nil for
// an empty file). The limits bound what decoding any of it costs.
func parseYAML(file string, data []byte, b *spec.YAMLBudget) (*yaml.Node, *spec.Problem) {
	doc, p := spec.ReadYAML(file, data, b)
	if p != nil {
		return nil, p
	}
	if doc != nil && doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return doc, nil
}

// readYAML reads a file of the repository (a regular file, see
// spec.ReadFile) as parseYAML does.
func readYAML(fsys fs.FS, file string, b *spec.YAMLBudget) (root *yaml.Node, missing bool, problems spec.Problems) {
	data, err := spec.ReadFile(fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, spec.Problems{spec.FileProblem(file, err)}
	}
	root, p := parseYAML(file, data, b)
	if p != nil {
		return nil, false, spec.Problems{*p}
	}
	return root, false, nil
}

// problem builds a problem located at a path of mapping keys and sequence
// indexes, or as deep along it as the file goes.
func (y *yamlFile) problem(msg string, path ...string) spec.Problem {
	n, field := locate(y.node(), path...)
	p := spec.Problem{File: y.file, Field: field, Message: msg}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	return p
}

// exprProblems places CEL compile errors in the file: exactly for plain,
// quoted and literal (|) scalars, at the expression's first line for folded
// ones (>), whose line breaks CEL does not see.
func (y *yamlFile) exprProblems(errs []celError, path ...string) spec.Problems {
	n, field := locate(y.node(), path...)
	var out spec.Problems
	for _, e := range errs {
		p := spec.Problem{File: y.file, Field: field, Message: "CEL: " + e.msg}
		if n != nil {
			p.Line, p.Column = scalarPosition(n, y.lines, e.line, e.col)
		}
		out = append(out, p)
	}
	return out
}

// scalarPosition maps a 1-based line and 0-based column (in characters)
// inside a scalar's value to a 1-based position in the file, whose lines
// are given.
func scalarPosition(n *yaml.Node, lines []string, line, col int) (int, int) {
	line = max(line, 1)
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		if line == 1 {
			quote := 0
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				quote = 1
			}
			return n.Line, n.Column + quote + col
		}
		return n.Line + line - 1, 1 // a multi-line flow scalar: its line is enough
	}
	// A block scalar: the indicator (| or >) is at n.Line, the value on the
	// lines after it, indented alike. Folding joins lines with spaces and
	// keeps the line breaks around more-indented lines, so each source line
	// is found, in order, in the value's lines.
	first := n.Line // 0-based index of the value's first line
	indent := -1
	for i := first; i < len(lines); i++ {
		if t := strings.TrimLeft(lines[i], " "); t != "" {
			indent = len(lines[i]) - len(t)
			break
		}
	}
	values := strings.Split(n.Value, "\n")
	if indent < 0 || line > len(values) {
		return n.Line, n.Column
	}
	target := values[line-1]
	col = len(string([]rune(target)[:min(col, utf8.RuneCountInString(target))])) // runes to bytes
	vl, off := 0, 0
	for i := first; i < len(lines) && vl < len(values); i++ {
		raw := lines[i]
		if t := strings.TrimLeft(raw, " "); t != "" && len(raw)-len(t) < indent {
			break // dedented: the value has ended
		}
		if len(raw) <= indent {
			continue
		}
		text := raw[indent:]
		for ; vl < len(values); vl, off = vl+1, 0 {
			j := strings.Index(values[vl][off:], text)
			if j < 0 {
				continue
			}
			start := off + j
			if vl == line-1 && col >= start && col <= start+len(text) {
				return i + 1, indent + utf8.RuneCountInString(text[:col-start]) + 1
			}
			off = start + len(text)
			break
		}
	}
	return n.Line + 1, indent + 1
}

// locate walks a path of mapping keys and sequence indexes from root,
// returning the deepest node found and the path as a field name
// (policies[0].expression).
func locate(root *yaml.Node, path ...string) (*yaml.Node, string) {
	var field strings.Builder
	deepest, walking := root, root != nil
	for _, tok := range path {
		if i, err := strconv.Atoi(tok); err == nil {
			fmt.Fprintf(&field, "[%d]", i)
		} else {
			if field.Len() > 0 {
				field.WriteByte('.')
			}
			field.WriteString(tok)
		}
		// The position is the deepest node that exists, the field the whole path.
		if walking {
			if next := child(deepest, tok); next != nil {
				deepest = next
			} else {
				walking = false
			}
		}
	}
	return deepest, field.String()
}

// child is the value of key in a mapping, or the item at an index of a sequence.
func child(n *yaml.Node, tok string) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == tok {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

func idx(i int) string { return strconv.Itoa(i) }
