package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fastSchema answers one question about a document: is it valid? It knows
// the JSON Schema keywords socle's and Score's schemas use, with
// santhosh-tekuri/jsonschema's semantics for draft 2020-12 (formats are
// annotations, patterns are Go regular expressions, "integer" accepts
// integral floats), and nothing else: a schema with any other keyword
// compiles to nil and is always checked by the library.
//
// Why: the library's validator was a fifth of the loader's time and half of
// its allocations with 10,000 apps (it builds error scopes and big.Rat
// numbers as it goes), to find, nearly always, that a file is valid. Only a
// file fastSchema rejects goes through the library, which finds and words
// its problems exactly as before. TestFastSchema and FuzzFastSchema compare
// both on valid files and on many broken ones.
type fastSchema struct {
	boolean  int8  // 1: true, -1: false, 0: a schema object
	types    uint8 // allowed types, a set of typeBit; 0: no "type"
	enum     []string
	hasEnum  bool
	ref      *fastSchema
	pattern  *regexp.Regexp
	minLen   int // -1: none
	maxLen   int
	minimum  *int64
	maximum  *int64
	exclMin  *int64
	exclMax  *int64
	minItems int
	maxItems int
	minProps int
	maxProps int
	required []string
	props    map[string]*fastSchema
	addl     *fastSchema // nil: any other property is allowed
	names    *fastSchema
	items    *fastSchema
	allOf    []*fastSchema
	anyOf    []*fastSchema
	oneOf    []*fastSchema
	not      *fastSchema
}

const (
	nullBit uint8 = 1 << iota
	boolBit
	numberBit
	integerBit
	stringBit
	arrayBit
	objectBit
)

var typeBits = map[string]uint8{
	"null": nullBit, "boolean": boolBit, "number": numberBit, "integer": integerBit,
	"string": stringBit, "array": arrayBit, "object": objectBit,
}

// annotations are keywords that do not take part in validation here.
var annotations = map[string]bool{
	"$defs": true, "$comment": true, "title": true, "description": true,
	"deprecated": true, "examples": true, "default": true, "readOnly": true, "writeOnly": true,
	// Draft 2020-12 asserts formats only when asked to; socle does not ask.
	"format": true,
}

const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// compileFastSchema builds the fast check of a schema document, as the
// library's UnmarshalJSON reads it; nil when the schema uses anything it does
// not cover.
func compileFastSchema(doc any) (s *fastSchema) {
	root, ok := doc.(map[string]any)
	if !ok || root["$schema"] != draft2020 {
		return nil
	}
	c := &fastCompiler{root: root, refs: map[string]*fastSchema{}}
	defer func() {
		if e := recover(); e != nil {
			if _, ok := e.(unsupported); !ok {
				panic(e)
			}
			s = nil
		}
	}()
	return c.compile(doc)
}

type fastCompiler struct {
	root map[string]any
	refs map[string]*fastSchema
}

// unsupported aborts the compilation.
type unsupported string

func (c *fastCompiler) compile(v any) *fastSchema {
	switch v := v.(type) {
	case bool:
		if v {
			return &fastSchema{boolean: 1}
		}
		return &fastSchema{boolean: -1}
	case map[string]any:
		return c.object(v)
	}
	panic(unsupported("schema"))
}

func (c *fastCompiler) object(m map[string]any) *fastSchema {
	s := &fastSchema{minLen: -1, maxLen: -1, minItems: -1, maxItems: -1, minProps: -1, maxProps: -1}
	for k, v := range m {
		switch k {
		case "type":
			switch t := v.(type) {
			case string:
				s.types = typeBit(t)
			case []any:
				for _, e := range t {
					name, _ := e.(string)
					s.types |= typeBit(name)
				}
				if s.types == 0 {
					panic(unsupported(k))
				}
			default:
				panic(unsupported(k))
			}
		case "enum":
			list, ok := v.([]any)
			if !ok {
				panic(unsupported(k))
			}
			s.hasEnum = true
			for _, e := range list {
				str, ok := e.(string)
				if !ok {
					panic(unsupported(k))
				}
				s.enum = append(s.enum, str)
			}
		case "$ref":
			ref, _ := v.(string)
			s.ref = c.resolve(ref)
		case "pattern":
			p, _ := v.(string)
			re, err := regexp.Compile(p) // the library's default engine
			if err != nil {
				panic(unsupported(k))
			}
			s.pattern = re
		case "minLength":
			s.minLen = count(v)
		case "maxLength":
			s.maxLen = count(v)
		case "minItems":
			s.minItems = count(v)
		case "maxItems":
			s.maxItems = count(v)
		case "minProperties":
			s.minProps = count(v)
		case "maxProperties":
			s.maxProps = count(v)
		case "minimum":
			s.minimum = bound(v)
		case "maximum":
			s.maximum = bound(v)
		case "exclusiveMinimum":
			s.exclMin = bound(v)
		case "exclusiveMaximum":
			s.exclMax = bound(v)
		case "required":
			list, ok := v.([]any)
			if !ok {
				panic(unsupported(k))
			}
			for _, e := range list {
				name, ok := e.(string)
				if !ok {
					panic(unsupported(k))
				}
				s.required = append(s.required, name)
			}
		case "properties":
			props, ok := v.(map[string]any)
			if !ok {
				panic(unsupported(k))
			}
			s.props = make(map[string]*fastSchema, len(props))
			for name, p := range props {
				s.props[name] = c.compile(p)
			}
		case "additionalProperties":
			s.addl = c.compile(v)
		case "propertyNames":
			s.names = c.compile(v)
		case "items":
			s.items = c.compile(v)
		case "allOf", "anyOf", "oneOf":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				panic(unsupported(k))
			}
			subs := make([]*fastSchema, len(list))
			for i, e := range list {
				subs[i] = c.compile(e)
			}
			switch k {
			case "allOf":
				s.allOf = subs
			case "anyOf":
				s.anyOf = subs
			default:
				s.oneOf = subs
			}
		case "not":
			s.not = c.compile(v)
		case "$schema", "$id":
			if !sameMap(m, c.root) {
				panic(unsupported(k)) // an embedded resource: another base, maybe another draft
			}
		default:
			if !annotations[k] {
				panic(unsupported(k))
			}
		}
	}
	return s
}

func sameMap(a, b map[string]any) bool {
	return len(a) == len(b) && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func typeBit(name string) uint8 {
	b, ok := typeBits[name]
	if !ok {
		panic(unsupported("type " + name))
	}
	return b
}

// resolve compiles a reference inside the same document, once (a schema
// that refers to itself gets the schema being built).
func (c *fastCompiler) resolve(ref string) *fastSchema {
	if s, ok := c.refs[ref]; ok {
		return s
	}
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok || (ptr != "" && !strings.HasPrefix(ptr, "/")) {
		panic(unsupported("$ref " + ref))
	}
	var node any = c.root
	if ptr != "" {
		for _, tok := range strings.Split(ptr[1:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			m, ok := node.(map[string]any)
			if !ok {
				panic(unsupported("$ref " + ref))
			}
			if node, ok = m[tok]; !ok {
				panic(unsupported("$ref " + ref))
			}
		}
	}
	s := &fastSchema{}
	c.refs[ref] = s
	*s = *c.compile(node)
	return s
}

// count reads a non-negative integer keyword.
func count(v any) int {
	n, ok := v.(json.Number)
	if !ok {
		panic(unsupported("count"))
	}
	i, err := strconv.Atoi(string(n))
	if err != nil || i < 0 {
		panic(unsupported("count"))
	}
	return i
}

// bound reads a numeric bound: only integers that a float64 holds exactly,
// which compare with any instance number exactly as the library's big.Rat
// comparisons do.
func bound(v any) *int64 {
	n, ok := v.(json.Number)
	if !ok {
		panic(unsupported("bound"))
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || i > 1<<53 || i < -(1<<53) {
		panic(unsupported("bound " + string(n)))
	}
	return &i
}

// valid reports whether v is valid against s.
func (s *fastSchema) valid(v any) bool {
	if s.boolean != 0 {
		return s.boolean > 0
	}
	var t uint8
	switch x := v.(type) {
	case nil:
		t = nullBit
	case bool:
		t = boolBit
	case string:
		t = stringBit
	case int64:
		t = numberBit
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
		t = numberBit
	case []any:
		t = arrayBit
	case map[string]any:
		t = objectBit
	default:
		return false // what the library calls an invalid JSON value (or a type it sees otherwise)
	}
	if s.types != 0 && s.types&t == 0 && !(s.types&integerBit != 0 && t == numberBit && isIntegral(v)) {
		return false
	}
	if s.hasEnum {
		str, ok := v.(string)
		if !ok || !contains(s.enum, str) {
			return false
		}
	}
	if s.ref != nil && !s.ref.valid(v) {
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		if !s.validObject(x) {
			return false
		}
	case []any:
		if (s.minItems >= 0 && len(x) < s.minItems) || (s.maxItems >= 0 && len(x) > s.maxItems) {
			return false
		}
		if s.items != nil {
			for _, e := range x {
				if !s.items.valid(e) {
					return false
				}
			}
		}
	case string:
		if s.minLen >= 0 || s.maxLen >= 0 {
			n := utf8.RuneCountInString(x)
			if (s.minLen >= 0 && n < s.minLen) || (s.maxLen >= 0 && n > s.maxLen) {
				return false
			}
		}
		if s.pattern != nil && !s.pattern.MatchString(x) {
			return false
		}
	case int64, float64:
		if !s.validNumber(v) {
			return false
		}
	}
	for _, sub := range s.allOf {
		if !sub.valid(v) {
			return false
		}
	}
	if s.anyOf != nil {
		ok := false
		for _, sub := range s.anyOf {
			if sub.valid(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if s.oneOf != nil {
		n := 0
		for _, sub := range s.oneOf {
			if sub.valid(v) {
				n++
			}
		}
		if n != 1 {
			return false
		}
	}
	if s.not != nil && s.not.valid(v) {
		return false
	}
	return true
}

func (s *fastSchema) validObject(m map[string]any) bool {
	if (s.minProps >= 0 && len(m) < s.minProps) || (s.maxProps >= 0 && len(m) > s.maxProps) {
		return false
	}
	for _, name := range s.required {
		if _, ok := m[name]; !ok {
			return false
		}
	}
	for name, v := range m {
		if p, ok := s.props[name]; ok {
			if !p.valid(v) {
				return false
			}
		} else if s.addl != nil && !s.addl.valid(v) {
			return false
		}
		if s.names != nil && !s.names.valid(name) {
			return false
		}
	}
	return true
}

// validNumber checks the bounds. Bounds are integers a float64 holds
// exactly, so comparing a float64 or an int64 with one is exact.
func (s *fastSchema) validNumber(v any) bool {
	cmp := func(b int64) int {
		switch x := v.(type) {
		case int64:
			switch {
			case x < b:
				return -1
			case x > b:
				return 1
			}
			return 0
		case float64:
			f := float64(b)
			switch {
			case x < f:
				return -1
			case x > f:
				return 1
			}
			return 0
		}
		panic(fmt.Sprintf("not a number: %T", v))
	}
	return (s.minimum == nil || cmp(*s.minimum) >= 0) &&
		(s.maximum == nil || cmp(*s.maximum) <= 0) &&
		(s.exclMin == nil || cmp(*s.exclMin) > 0) &&
		(s.exclMax == nil || cmp(*s.exclMax) < 0)
}

func isIntegral(v any) bool {
	switch x := v.(type) {
	case int64:
		return true
	case float64:
		return x == math.Trunc(x)
	}
	return false
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
