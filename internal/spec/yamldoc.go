package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// document is one parsed YAML file: its content as plain JSON-compatible
// values, for schema validation and decoding, and its node tree, for
// positions.
type document struct {
	file  string
	data  []byte
	value any
	// root is the top mapping node, or nil for an empty file. A document
	// read by fastYAML has no tree until a problem needs a position: node
	// reads it then (most documents have no problem, and the tree was most
	// of the loader's allocations).
	root   *yaml.Node
	parsed bool // root is set
	// shared is set when something kept a part of value (score-go's
	// MapSpec does), which then must not go back to a map pool.
	shared bool
}

// node returns the document's node tree.
func (d *document) node() *yaml.Node {
	if !d.parsed {
		d.parsed = true
		d.root, _ = readNodes(d.file, d.data)
	}
	return d.root
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads one YAML document within the limits of one file; its
// error is a Problem with a line.
func parseYAML(file string, data []byte) (*document, *Problem) {
	return parseYAMLWith(nil, nil, file, data)
}

// parseYAMLWith is parseYAML, with maps from a pool when the document's
// values can go back to it (see loadApp), drawing on the revision's budget
// b (nil: none). It returns nil and no problem for a file refused because
// the revision went over its budget before it (reported once, already).
func parseYAMLWith(pool *mapPool, b *YAMLBudget, file string, data []byte) (*document, *Problem) {
	lim := b.limits()
	if int64(len(data)) > lim.fileBytes {
		return nil, &Problem{File: file, Message: fmt.Sprintf("file is %d bytes; the limit is %d", len(data), lim.fileBytes)}
	}
	v, nodes, ok := fastYAML(data, pool, lim.fileNodes)
	if ok {
		if p, ok := b.charge(file, yamlSize{nodes, int64(len(data))}); !ok {
			return nil, p
		}
		return &document{file: file, data: data, value: v}, nil
	}
	if nodes > lim.fileNodes {
		return nil, &Problem{File: file, Message: fmt.Sprintf("too much YAML in one file: more than %d nodes; split it", lim.fileNodes)}
	}
	doc, size, p := readTree(file, data, lim)
	if p != nil {
		return nil, p
	}
	if p, ok := b.charge(file, size); !ok {
		return nil, p
	}
	root := top(doc)
	if root == nil {
		return &document{file: file, data: data, parsed: true}, nil
	}
	v2, err := nodeValue(root, 0)
	if err != nil {
		p := &Problem{File: file, Line: root.Line, Column: root.Column, Message: err.Error()}
		var pe *posError
		if errors.As(err, &pe) {
			p.Line, p.Column, p.Message = pe.line, pe.col, pe.msg
		}
		return nil, p
	}
	return &document{file: file, data: data, root: root, parsed: true, value: v2}, nil
}

// ReadYAML reads one YAML document of the platform repository into
// yaml.v3's node tree within the limits of one file (its text; its nodes
// and bytes, aliases expanded, measured before anything is expanded), and
// draws its size from the revision's budget b (nil: none). doc is the
// document node, nil for an empty file. Decoding the tree, or any part of
// it, into Go values then costs no more than those limits.
func ReadYAML(file string, data []byte, b *YAMLBudget) (doc *yaml.Node, p *Problem) {
	lim := b.limits()
	if int64(len(data)) > lim.fileBytes {
		return nil, &Problem{File: file, Message: fmt.Sprintf("file is %d bytes; the limit is %d", len(data), lim.fileBytes)}
	}
	doc, size, p := readTree(file, data, lim)
	if p != nil {
		return nil, p
	}
	if p, ok := b.charge(file, size); !ok {
		if p == nil {
			p = &Problem{File: file, Message: "not read: the revision's YAML holds more than socle reads of one revision"}
		}
		return nil, p
	}
	return doc, nil
}

// readTree reads one YAML document with yaml.v3, once its text is known to
// make a node tree of bounded size, and measures it with its aliases
// expanded.
func readTree(file string, data []byte, lim limits) (*yaml.Node, yamlSize, *Problem) {
	if p := checkBound(file, data, lim); p != nil {
		return nil, yamlSize{}, p
	}
	doc, p := readDocument(file, data)
	if p != nil {
		return nil, yamlSize{}, p
	}
	size, p := measure(file, top(doc), int64(len(data)), lim)
	if p != nil {
		return nil, yamlSize{}, p
	}
	return doc, size, nil
}

// top is the content of a document node: its top node.
func top(doc *yaml.Node) *yaml.Node {
	if doc != nil && doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return doc
}

// readNodes reads one YAML document with yaml.v3: its top node, nil for an
// empty file. Its size is not checked: it reads what parseYAML read before.
func readNodes(file string, data []byte) (*yaml.Node, *Problem) {
	doc, p := readDocument(file, data)
	return top(doc), p
}

// readDocument reads one YAML document with yaml.v3: its document node, nil
// for an empty file.
func readDocument(file string, data []byte) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlProblem(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Problem{File: file, Line: extra.Line, Column: extra.Column,
			Message: "a second YAML document: want exactly one document per file"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlProblem(file, err)
	}
	return &n, nil
}

func yamlProblem(file string, err error) *Problem {
	msg := err.Error()
	p := &Problem{File: file, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Column = 1
		p.Message = "invalid YAML: " + m[2]
	}
	return p
}

// posError is a YAML structure problem at a position.
type posError struct {
	line, col int
	msg       string
}

func (e *posError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// nodeValue converts a node into the values encoding/json produces, so that a
// JSON Schema sees YAML exactly as it would see the equivalent JSON.
func nodeValue(n *yaml.Node, depth int) (any, error) {
	if depth > 100 {
		return nil, &posError{n.Line, n.Column, "invalid YAML: nesting deeper than 100 levels"}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return nodeValue(n.Content[0], depth+1)
	case yaml.AliasNode:
		return nodeValue(n.Alias, depth+1)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				return nil, &posError{k.Line, k.Column, "invalid YAML: merge keys (<<) are not supported"}
			}
			if _, dup := m[k.Value]; dup {
				return nil, &posError{k.Line, k.Column, fmt.Sprintf("invalid YAML: key %q appears twice in the same mapping", k.Value)}
			}
			val, err := nodeValue(v, depth+1)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := nodeValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		return s, nil
	case yaml.ScalarNode:
		// Untagged scalars, nearly all of them, are converted with strconv
		// as yaml.v3 resolves them, not with a yaml.v3 decoder per scalar.
		if n.Style&yaml.TaggedStyle == 0 {
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				return n.Value, nil
			}
			return plainValue(n.Value), nil
		}
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, err
			}
			return b, nil
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i, nil
			}
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, err
			}
			return f, nil
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, err
			}
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return n.Value, nil
			}
			return f, nil
		default:
			return n.Value, nil
		}
	}
	return nil, &posError{n.Line, n.Column, "invalid YAML: unsupported node"}
}

// decode fills out from the document's values through JSON, so that the
// json tags (the same that generate the published schema) govern both.
func (d *document) decode(out any) error {
	b, err := json.Marshal(d.value)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// locate finds the node at a path of mapping keys and sequence indexes, and
// renders the path as a field name (environments[2].promotion.from). It stops
// at the deepest node that exists.
func (d *document) locate(path ...string) (*yaml.Node, string) {
	n := d.node()
	var field strings.Builder
	for _, tok := range path {
		if n == nil {
			break
		}
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					next = n.Content[i+1]
					break
				}
			}
			if field.Len() > 0 {
				field.WriteByte('.')
			}
			field.WriteString(tok)
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
			fmt.Fprintf(&field, "[%s]", tok)
		}
		if next == nil {
			return n, field.String()
		}
		n = next
	}
	return n, field.String()
}

// keyNode finds the key node of a field in the mapping at path.
func (d *document) keyNode(key string, path ...string) *yaml.Node {
	n, _ := d.locate(path...)
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return n
}

// problem builds a Problem located at path.
func (d *document) problem(msg string, path ...string) Problem {
	p := Problem{File: d.file, Message: msg}
	n, field := d.locate(path...)
	p.Field = field
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	return p
}
