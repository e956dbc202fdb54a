package spec

import (
	"fmt"
	"sync/atomic"

	"gopkg.in/yaml.v3"
)

// What socle reads of a platform repository's YAML is bounded before it is
// built, per file and per revision: a file's text, its nodes (keys, values,
// lists and mappings, every alias expanded) and its bytes once expanded (its
// text plus the scalars its aliases repeat). An alias costs what it
// expands to, so a "billion laughs" of a few hundred bytes is refused at the
// alias that takes its file over, before anything is expanded.
//
// The figures leave room for far more than socle's largest case, a
// repository of 10,000 apps (1.2 million nodes and 8.8 MB of YAML in all;
// its largest file, releases/prod.yaml, 60,000 nodes): yaml.v3's node tree
// costs about 200 bytes a node, so a file at the limit costs ~100 MB while
// it is read, and a revision's values at its limit ~400 MB.
type limits struct {
	fileBytes int64 // a file's text, before it is read
	fileNodes int64
	revNodes  int64
	revBytes  int64
}

var defaultLimits = limits{
	fileBytes: 16 << 20,
	fileNodes: 1 << 19,
	revNodes:  1 << 22,
	revBytes:  128 << 20,
}

// yamlSize is what a document holds with its aliases expanded.
type yamlSize struct{ nodes, bytes int64 }

func (s yamlSize) plus(o yamlSize) yamlSize { return yamlSize{s.nodes + o.nodes, s.bytes + o.bytes} }

// over reports whether s exceeds lim in nodes or bytes.
func (s yamlSize) over(lim yamlSize) bool { return s.nodes > lim.nodes || s.bytes > lim.bytes }

// YAMLBudget is what the YAML of one revision may hold in all. Files read with
// the same YAMLBudget draw on it; a revision is read with one YAMLBudget, by any
// number of goroutines.
type YAMLBudget struct {
	lim          limits
	nodes, bytes atomic.Int64
	spent        atomic.Bool // reported once; later files are refused quietly
}

// NewYAMLBudget returns the budget of one revision.
func NewYAMLBudget() *YAMLBudget { return newBudget(defaultLimits) }

func newBudget(lim limits) *YAMLBudget { return &YAMLBudget{lim: lim} }

func (b *YAMLBudget) limits() limits {
	if b == nil {
		return defaultLimits
	}
	return b.lim
}

// charge draws a file's size from the budget. A file that takes the
// revision over is refused with a problem; the files after it are refused
// too, without one (ok false, p nil): the revision is invalid already.
func (b *YAMLBudget) charge(file string, s yamlSize) (p *Problem, ok bool) {
	if b == nil {
		return nil, true
	}
	nodes, bytes := b.nodes.Add(s.nodes), b.bytes.Add(s.bytes)
	if nodes <= b.lim.revNodes && bytes <= b.lim.revBytes {
		return nil, true
	}
	if b.spent.Swap(true) {
		return nil, false
	}
	return &Problem{File: file, Message: fmt.Sprintf(
		"the revision's YAML, this file included, holds more than socle reads of one revision (%d nodes, %d bytes with aliases expanded; the limits are %d and %d): split the repository or remove what repeats",
		nodes, bytes, b.lim.revNodes, b.lim.revBytes)}, false
}

// nodeBound is an upper bound of the nodes yaml.v3 builds for data (its
// node tree, aliases not expanded), known before it is parsed: every node
// but a document's first begins after a line break or an indicator (- : ?
// , [ {), and each of those begins at most two nodes (a collection and its
// first entry, or a key and its empty value). Bytes 0x85, 0xA8 and 0xA9 end
// the line breaks YAML 1.1 adds (NEL, LS, PS), and are counted wherever
// they are. FuzzYAMLBudget checks the claim against yaml.v3.
func nodeBound(data []byte) int64 {
	var n int64
	for _, c := range data {
		switch c {
		case '\n', '\r', '-', ':', '?', ',', '[', '{', 0x85, 0xA8, 0xA9:
			n++
		}
	}
	return 2*n + 2
}

// checkBound refuses, before yaml.v3 reads it, a file whose node tree could
// outgrow the limit of one file.
func checkBound(file string, data []byte, lim limits) *Problem {
	if bound := nodeBound(data); bound > lim.fileNodes {
		return &Problem{File: file, Message: fmt.Sprintf(
			"too much YAML in one file: its line breaks and indicators (- : ? , [ {) allow up to %d nodes, and socle reads at most %d of a file; split it",
			bound, lim.fileNodes)}
	}
	return nil
}

// measurer sizes a node tree as nodeValue (or yaml.v3's decoder) expands
// it, without expanding it: an aliased node is sized once, however many
// aliases repeat it, and sizes stop growing just over the limit.
type measurer struct {
	lim   yamlSize
	memo  map[*yaml.Node]yamlSize // expanded sizes of aliased nodes
	busy  map[*yaml.Node]bool     // aliased nodes being sized
	cycle bool                    // an alias inside the node it refers to
}

// expanded is the size of n with its aliases expanded.
func (m *measurer) expanded(n *yaml.Node) yamlSize {
	if n.Kind == yaml.AliasNode {
		t := n.Alias
		if t == nil {
			return yamlSize{nodes: 1}
		}
		if s, ok := m.memo[t]; ok {
			return s
		}
		if m.busy[t] {
			m.cycle = true
			return m.lim.plus(yamlSize{1, 1})
		}
		m.busy[t] = true
		s := m.expanded(t)
		delete(m.busy, t)
		m.memo[t] = s
		return s
	}
	s := yamlSize{1, int64(len(n.Value))}
	for _, c := range n.Content {
		if s = s.plus(m.expanded(c)); s.over(m.lim) || m.cycle {
			// Anything over the limit is refused: the exact figure does
			// not matter, and it could overflow.
			return m.lim.plus(yamlSize{1, 1})
		}
	}
	return s
}

// walk adds the nodes of n and the bytes its aliases repeat to acc, in the
// order of the document, and returns the node (an alias) at which acc goes
// over the limit, or nil.
func (m *measurer) walk(n *yaml.Node, acc *yamlSize) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		*acc = acc.plus(m.expanded(n))
	} else {
		acc.nodes++
	}
	if acc.over(m.lim) || m.cycle {
		return n
	}
	if n.Kind != yaml.AliasNode {
		for _, c := range n.Content {
			if at := m.walk(c, acc); at != nil {
				return at
			}
		}
	}
	return nil
}

// measure sizes the document of text bytes rooted at root against the
// limits of one file. Its problem, if any, is at the alias that takes it
// over.
func measure(file string, root *yaml.Node, text int64, lim limits) (yamlSize, *Problem) {
	m := &measurer{lim: yamlSize{lim.fileNodes, lim.fileBytes}, memo: map[*yaml.Node]yamlSize{}, busy: map[*yaml.Node]bool{}}
	size := yamlSize{bytes: text}
	if root == nil {
		return size, nil
	}
	at := m.walk(root, &size)
	if at == nil {
		return size, nil
	}
	p := &Problem{File: file, Line: at.Line, Column: at.Column}
	switch {
	case m.cycle:
		p.Message = fmt.Sprintf("invalid YAML: alias *%s is inside the node it refers to", at.Value)
	case at.Kind == yaml.AliasNode:
		p.Message = fmt.Sprintf("aliases expand the file past what socle reads of one file (%d nodes or %d bytes, aliases expanded), here at *%s: write the values out, or repeat less",
			lim.fileNodes, lim.fileBytes, at.Value)
	default:
		p.Message = fmt.Sprintf("too much YAML in one file: more than %d nodes; split it", lim.fileNodes)
	}
	return size, p
}
