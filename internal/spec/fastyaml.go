package spec

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fastYAML reads the plain subset of YAML that platform repositories are
// written in (block mappings and sequences, one-line flow collections, plain
// and quoted one-line scalars, comments) straight into the values nodeValue
// builds from yaml.v3's node tree, without building the tree. It returns
// ok=false as soon as the input steps outside that subset (anchors, tags,
// block scalars, multi-line scalars or flows, tabs, odd indentation, errors
// of any kind, …): the caller then reads the file with yaml.v3, which also
// reports every error. So for every input fastYAML accepts, yaml.v3 accepts it
// too and nodeValue yields the same value; FuzzFastYAML checks that claim.
//
// Why: yaml.v3's parser (scanner, tokens, events, then a node tree that
// nodeValue copies into values) was a third of the loader's CPU time and of
// its allocations with 10,000 apps, and the node tree is only needed to
// locate a problem; document.node builds it when one is found.
//
// It counts the nodes it builds as yaml.v3 would (keys, values, lists and
// mappings) and stops at limit: nodes > limit then says that the file holds
// more than a file may, and yaml.v3 need not read it.
func fastYAML(data []byte, pool *mapPool, limit int64) (m map[string]any, nodes int64, ok bool) {
	p := fastParser{src: string(data), pool: pool, limit: limit}
	if pool != nil {
		p.lines = pool.lines[:0]
		defer func() { pool.lines = p.lines[:0] }()
	}
	if !p.split() || len(p.lines) == 0 {
		return nil, 0, false
	}
	first := p.lines[0]
	if p.isDash(0) {
		return nil, 0, false
	}
	m, next, ok := p.mapping(0, first.indent, "", 0)
	if !ok || next != len(p.lines) {
		return nil, p.nodes, false
	}
	return m, p.nodes, true
}

// fastDepth bounds nesting well below nodeValue's limit, so that deep
// documents take yaml.v3's path and its error.
const fastDepth = 64

// fastMaxKey keeps keys below yaml.v3's 1024-character limit on simple keys.
const fastMaxKey = 1000

type fastLine struct {
	indent int // column of the first character
	text   string
}

type fastParser struct {
	src   string
	lines []fastLine // the lines with content: no blank or comment-only lines
	pool  *mapPool   // where maps come from; nil: new ones
	nodes int64      // built so far
	limit int64      // on the nodes
}

// node counts one node; false when that is one too many.
func (p *fastParser) node() bool {
	p.nodes++
	return p.nodes <= p.limit
}

// mapPool holds the emptied maps of documents that are done with, for the
// next ones: the values of a file are garbage once it is decoded and checked,
// and their maps were a third of the loader's allocations with 10,000 apps.
// A pool belongs to one goroutine.
type mapPool struct {
	maps  []map[string]any
	lines []fastLine // the parser's, reused too
}

func (mp *mapPool) get() map[string]any {
	if mp == nil || len(mp.maps) == 0 {
		return map[string]any{}
	}
	m := mp.maps[len(mp.maps)-1]
	mp.maps = mp.maps[:len(mp.maps)-1]
	return m
}

// recycle empties the maps of v, which nothing may hold any more, into the
// pool (small ones: a map keeps the room it grew to).
func (mp *mapPool) recycle(v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			mp.recycle(e)
		}
		if len(v) <= 8 && len(mp.maps) < 1024 {
			clear(v)
			mp.maps = append(mp.maps, v)
		}
	case []any:
		for _, e := range v {
			mp.recycle(e)
		}
	}
}

// split checks every character and cuts the source into its significant
// lines.
func (p *fastParser) split() bool {
	s := p.src
	if len(s) > 0 && s[0] >= 0x80 {
		return false // byte-order marks and other encodings
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if (c < 0x20 && c != '\n') || c == 0x7f {
				return false // tabs, carriage returns, control characters
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r < 0xA0 || r == 0x2028 || r == 0x2029 || r == 0xFEFF || (r > 0xD7FF && r < 0xE000) || r > 0xFFFD {
			return false
		}
		i += n
	}
	if p.lines == nil {
		p.lines = make([]fastLine, 0, strings.Count(s, "\n")+1)
	}
	started := false
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		text := line[indent:]
		if text == "" || text[0] == '#' {
			continue
		}
		if indent == 0 {
			if text[0] == '%' {
				return false // directives
			}
			if strings.HasPrefix(text, "---") || strings.HasPrefix(text, "...") {
				// Only a document start before any content.
				if started || !strings.HasPrefix(text, "---") || !blankOrComment(text[3:]) {
					return false
				}
				continue
			}
		}
		started = true
		p.lines = append(p.lines, fastLine{indent, text})
	}
	return true
}

// blankOrComment reports whether the rest of a line holds nothing but
// spaces and a comment.
func blankOrComment(s string) bool {
	t := strings.TrimLeft(s, " ")
	if t == "" {
		return true
	}
	return t[0] == '#' && len(t) < len(s)
}

// isDash reports whether line i is a block sequence entry.
func (p *fastParser) isDash(i int) bool {
	t := p.lines[i].text
	return t[0] == '-' && (len(t) == 1 || t[1] == ' ')
}

// mapping reads a block mapping whose keys sit at column indent, from line
// li. first, when not empty, is the text of the first entry, which follows a
// sequence dash on line li.
func (p *fastParser) mapping(li, indent int, first string, depth int) (map[string]any, int, bool) {
	if depth > fastDepth || !p.node() {
		return nil, 0, false
	}
	m := p.pool.get()
	for {
		var text string
		switch {
		case first != "":
			text, first = first, ""
		case li >= len(p.lines) || p.lines[li].indent < indent:
			return m, li, true
		case p.lines[li].indent > indent || p.isDash(li):
			return nil, 0, false
		default:
			text = p.lines[li].text
		}
		key, rest, isKey, ok := p.key(text)
		if !ok || !isKey || key == "<<" || !p.node() {
			return nil, 0, false
		}
		if _, dup := m[key]; dup {
			return nil, 0, false
		}
		li++
		rest = strings.TrimLeft(rest, " ")
		if rest == "" || rest[0] == '#' {
			// The value is on the following lines, or there is none.
			switch {
			case li < len(p.lines) && p.lines[li].indent > indent:
				v, next, ok := p.block(li, depth+1)
				if !ok {
					return nil, 0, false
				}
				m[key], li = v, next
			case li < len(p.lines) && p.lines[li].indent == indent && p.isDash(li):
				v, next, ok := p.sequence(li, indent, depth+1)
				if !ok {
					return nil, 0, false
				}
				m[key], li = v, next
			default:
				if !p.node() { // yaml.v3's empty scalar
					return nil, 0, false
				}
				m[key] = nil
			}
			continue
		}
		v, after, ok := p.value(rest, false, depth+1)
		if !ok || !blankOrComment(after) {
			return nil, 0, false
		}
		if li < len(p.lines) && p.lines[li].indent > indent {
			return nil, 0, false // a continuation line, or an error
		}
		m[key] = v
	}
}

// block reads the mapping or sequence that starts on line li.
func (p *fastParser) block(li, depth int) (any, int, bool) {
	if p.isDash(li) {
		return p.sequence(li, p.lines[li].indent, depth)
	}
	return p.mapping(li, p.lines[li].indent, "", depth)
}

// sequence reads a block sequence whose dashes sit at column indent.
func (p *fastParser) sequence(li, indent, depth int) ([]any, int, bool) {
	if depth > fastDepth || !p.node() {
		return nil, 0, false
	}
	s := []any{}
	for li < len(p.lines) && p.lines[li].indent >= indent {
		if p.lines[li].indent > indent {
			return nil, 0, false
		}
		if !p.isDash(li) {
			break // the next key of the mapping the sequence belongs to
		}
		t := p.lines[li].text
		rest := strings.TrimLeft(t[1:], " ")
		if rest == "" || rest[0] == '#' || (rest[0] == '-' && (len(rest) == 1 || rest[1] == ' ')) {
			return nil, 0, false // an entry on the following lines, or a nested sequence
		}
		col := indent + len(t) - len(rest)
		_, _, isKey, ok := p.key(rest)
		if !ok {
			return nil, 0, false
		}
		if isKey {
			m, next, ok := p.mapping(li, col, rest, depth+1)
			if !ok {
				return nil, 0, false
			}
			s, li = append(s, m), next
			continue
		}
		v, after, ok := p.value(rest, false, depth+1)
		if !ok || !blankOrComment(after) {
			return nil, 0, false
		}
		li++
		if li < len(p.lines) && p.lines[li].indent > indent {
			return nil, 0, false
		}
		s = append(s, v)
	}
	if li < len(p.lines) && p.lines[li].indent > indent {
		return nil, 0, false
	}
	return s, li, true
}

// key reads the start of a block line: a key and the text after its colon
// (isKey), or else nothing (the line holds a value). ok is false for what
// the subset does not cover.
func (p *fastParser) key(t string) (key, rest string, isKey, ok bool) {
	switch t[0] {
	case '"', '\'':
		k, after, ok := quoted(t)
		if !ok {
			return "", "", false, false
		}
		after = strings.TrimLeft(after, " ")
		if after != "" && after[0] == ':' {
			if (len(after) > 1 && after[1] != ' ') || len(t)-len(after) > fastMaxKey {
				return "", "", false, false
			}
			return k, after[1:], true, true
		}
		return "", "", false, true
	case '[', '{':
		return "", "", false, true // a flow collection; value checks what follows
	}
	if !plainStart(t, false) {
		return "", "", false, false
	}
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case ':':
			if i+1 == len(t) || t[i+1] == ' ' {
				if i > fastMaxKey {
					return "", "", false, false
				}
				return strings.TrimRight(t[:i], " "), t[i+1:], true, true
			}
		case '#':
			if t[i-1] == ' ' {
				return "", "", false, true
			}
		}
	}
	return "", "", false, true
}

// value reads one value from the start of t, in a flow collection or not,
// and returns the text after it.
func (p *fastParser) value(t string, flow bool, depth int) (any, string, bool) {
	if depth > fastDepth || t == "" || !p.node() {
		return nil, "", false
	}
	switch t[0] {
	case '"', '\'':
		s, after, ok := quoted(t)
		return s, after, ok
	case '[':
		return p.flowSeq(t, depth)
	case '{':
		return p.flowMap(t, depth)
	}
	if !plainStart(t, flow) {
		return nil, "", false
	}
	end := len(t)
scan:
	for i := 1; i < len(t); i++ {
		switch c := t[i]; c {
		case ':':
			if i+1 == len(t) || t[i+1] == ' ' {
				if !flow {
					return nil, "", false // "mapping values are not allowed in this context"
				}
				end = i
				break scan
			}
			if flow && strings.IndexByte(",[]{}?", t[i+1]) >= 0 {
				return nil, "", false
			}
		case '#':
			if t[i-1] == ' ' {
				if flow {
					return nil, "", false // a comment inside a flow collection
				}
				end = i
				break scan
			}
		case ',', ']', '}':
			if flow {
				end = i
				break scan
			}
		case '[', '{', '?':
			if flow {
				return nil, "", false
			}
		}
	}
	if flow && end == len(t) {
		return nil, "", false // the collection does not close on this line
	}
	s := strings.TrimRight(t[:end], " ")
	return plainValue(s), t[len(s):], true
}

// plainStart reports whether a plain scalar may start t (yaml.v3's rule,
// made stricter where it is subtle).
func plainStart(t string, flow bool) bool {
	switch t[0] {
	case '-':
		if len(t) == 1 || t[1] == ' ' {
			return false
		}
		if flow && strings.IndexByte(",[]{}", t[1]) >= 0 {
			return false
		}
		return true
	case '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ':
		return false
	}
	return true
}

func (p *fastParser) flowSeq(t string, depth int) (any, string, bool) {
	s := []any{}
	t = strings.TrimLeft(t[1:], " ")
	if t != "" && t[0] == ']' {
		return s, t[1:], true
	}
	for {
		v, after, ok := p.value(t, true, depth+1)
		if !ok {
			return nil, "", false
		}
		s = append(s, v)
		t = strings.TrimLeft(after, " ")
		if t == "" {
			return nil, "", false
		}
		switch t[0] {
		case ']':
			return s, t[1:], true
		case ',':
			t = strings.TrimLeft(t[1:], " ")
			if t == "" || t[0] == ']' || t[0] == ',' {
				return nil, "", false // a trailing comma or the end of the line
			}
		default:
			return nil, "", false
		}
	}
}

func (p *fastParser) flowMap(t string, depth int) (any, string, bool) {
	m := p.pool.get()
	t = strings.TrimLeft(t[1:], " ")
	if t != "" && t[0] == '}' {
		return m, t[1:], true
	}
	for {
		if t == "" {
			return nil, "", false
		}
		var key string
		whole := t
		switch t[0] {
		case '"', '\'':
			k, after, ok := quoted(t)
			if !ok || !p.node() {
				return nil, "", false
			}
			key, t = k, strings.TrimLeft(after, " ")
		default:
			if !plainStart(t, true) {
				return nil, "", false
			}
			v, after, ok := p.value(t, true, depth+1)
			if !ok {
				return nil, "", false
			}
			if key, ok = v.(string); !ok || key != strings.TrimRight(t[:len(t)-len(after)], " ") {
				// A key that is not read as a string (null, number,
				// bool): nodeValue uses the text, keep it simple.
				return nil, "", false
			}
			t = after
		}
		if len(t) < 2 || t[0] != ':' || t[1] != ' ' || key == "<<" || len(whole)-len(t) > fastMaxKey {
			return nil, "", false
		}
		if _, dup := m[key]; dup {
			return nil, "", false
		}
		t = strings.TrimLeft(t[1:], " ")
		if t == "" || t[0] == ',' || t[0] == '}' {
			return nil, "", false // an empty value
		}
		v, after, ok := p.value(t, true, depth+1)
		if !ok {
			return nil, "", false
		}
		m[key] = v
		t = strings.TrimLeft(after, " ")
		if t == "" {
			return nil, "", false
		}
		switch t[0] {
		case '}':
			return m, t[1:], true
		case ',':
			t = strings.TrimLeft(t[1:], " ")
			if t == "" || t[0] == '}' || t[0] == ',' {
				return nil, "", false
			}
		default:
			return nil, "", false
		}
	}
}

// quoted reads a single- or double-quoted scalar that closes on its line.
func quoted(t string) (string, string, bool) {
	q := t[0]
	var b []byte // only when the value differs from the text
	start := 1
	for i := 1; i < len(t); i++ {
		c := t[i]
		switch {
		case c == q && q == '\'' && i+1 < len(t) && t[i+1] == '\'':
			b = append(b, t[start:i+1]...)
			i++
			start = i + 1
		case c == q:
			if b == nil {
				return t[1:i], t[i+1:], true
			}
			return string(append(b, t[start:i]...)), t[i+1:], true
		case c == '\\' && q == '"':
			if i+1 == len(t) {
				return "", "", false
			}
			e, ok := escapes[t[i+1]]
			if !ok {
				return "", "", false
			}
			b = append(append(b, t[start:i]...), e...)
			i++
			start = i + 1
		}
	}
	return "", "", false
}

// escapes are yaml.v3's double-quoted escapes, but for \x, \u and \U.
var escapes = map[byte]string{
	'0': "\x00", 'a': "\x07", 'b': "\x08", 't': "\x09", 'n': "\x0A", 'v': "\x0B", 'f': "\x0C",
	'r': "\x0D", 'e': "\x1B", ' ': " ", '"': `"`, '\'': "'", '\\': `\`,
	'N': "\u0085", '_': "\u00A0", 'L': "\u2028", 'P': "\u2029",
}

// plainValue is the value of an untagged plain scalar: what yaml.v3 resolves
// it to, as nodeValue converts it (int64 for integers that fit, else float64;
// float64; bool; nil; a string for everything else, timestamps, infinities
// and NaN included). It mirrors yaml.v3's resolve (v3.0.1) with strconv, not
// a decoder per scalar.
func plainValue(s string) any {
	if s == "" {
		return nil
	}
	switch s[0] {
	case 'y', 'Y', 'n', 'N', 't', 'T', 'f', 'F', 'o', 'O', '~':
		switch s {
		case "true", "True", "TRUE":
			return true
		case "false", "False", "FALSE":
			return false
		case "~", "null", "Null", "NULL":
			return nil
		}
		return s
	case '.':
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
		return s
	case '+', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		switch s {
		case "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
			return s
		}
		return numberValue(s)
	}
	return s
}

// numberValue follows the 'D' and 'S' branch of yaml.v3's resolve. A value
// it reads as a timestamp is a string here too: none of those parses as a
// number.
func numberValue(s string) any {
	plain := s
	if strings.IndexByte(s, '_') >= 0 {
		plain = strings.ReplaceAll(s, "_", "")
	}
	// Not trying what cannot be an integer (500m, 256Mi, 0.5) spares an
	// error value per scalar.
	if strings.Trim(plain, "+-0123456789abcdefABCDEFxXoO") == "" {
		if i, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return float64(u) // beyond int64: nodeValue falls back to a float
		}
	}
	if yamlStyleFloat(plain) {
		if f, err := strconv.ParseFloat(plain, 64); err == nil {
			return f
		}
	}
	for _, b := range []struct {
		prefix string
		base   int
	}{{"0b", 2}, {"0o", 8}} {
		if rest, ok := strings.CutPrefix(plain, b.prefix); ok {
			if i, err := strconv.ParseInt(rest, b.base, 64); err == nil {
				return i
			}
			if u, err := strconv.ParseUint(rest, b.base, 64); err == nil {
				return float64(u)
			}
			return s
		}
		if rest, ok := strings.CutPrefix(plain, "-"+b.prefix); ok {
			if i, err := strconv.ParseInt("-"+rest, b.base, 64); err == nil {
				return i
			}
			return s
		}
	}
	return s
}

// yamlStyleFloat matches ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
// without a regular expression.
func yamlStyleFloat(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	} else {
		if digits() == 0 {
			return false
		}
		if i < len(s) && s[i] == '.' {
			i++
			digits()
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
