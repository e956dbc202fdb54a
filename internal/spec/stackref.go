package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// The references a stack's inputs may hold, in their string values:
//
//	${stacks.<stack>.outputs.<key>}   an output of an upstream stack
//	${environment.<field>}            a field of the instance's environment
//	${zone.<field>}                   a field of the instance's zone
//
// and $${ for a literal ${ (as Terraform and Score write it). A string that
// is one reference and nothing else takes the referenced value with its
// type (an output may be a list or a map); a reference inside a longer
// string is written into it as text.

// RefScope says what a reference reads.
type RefScope string

// The scopes of references.
const (
	RefStack       RefScope = "stacks"
	RefEnvironment RefScope = "environment"
	RefZone        RefScope = "zone"
)

// InputRef is one ${…} reference in an input.
type InputRef struct {
	Scope RefScope
	// Stack is the upstream stack of a RefStack reference.
	Stack string
	// Key is the output's name (RefStack) or the field's.
	Key string
}

func (r InputRef) String() string {
	if r.Scope == RefStack {
		return fmt.Sprintf("${stacks.%s.outputs.%s}", r.Stack, r.Key)
	}
	return fmt.Sprintf("${%s.%s}", r.Scope, r.Key)
}

// InputPart is a piece of an input string: text, or a reference.
type InputPart struct {
	Text string
	Ref  *InputRef
}

// maxInputRefs bounds the references of one string: an input is a value
// people write, and resolving costs a copy per reference.
const maxInputRefs = 64

// ParseInput splits an input string into text and references. The error
// says what is wrong with the first reference that is not one of the
// three forms.
func ParseInput(s string) ([]InputPart, error) {
	var parts []InputPart
	var text strings.Builder
	refs := 0
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			text.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed reference %q: a reference ends with }", Truncate(s[i:], 40))
			}
			body := s[i+2 : i+2+end]
			ref, err := parseRef(body)
			if err != nil {
				return nil, err
			}
			if refs++; refs > maxInputRefs {
				return nil, fmt.Errorf("more than %d references in one value", maxInputRefs)
			}
			if text.Len() > 0 {
				parts = append(parts, InputPart{Text: text.String()})
				text.Reset()
			}
			parts = append(parts, InputPart{Ref: &ref})
			i += 2 + end + 1
		default:
			j := strings.Index(s[i+1:], "$")
			if j < 0 {
				j = len(s)
			} else {
				j += i + 1
			}
			text.WriteString(s[i:j])
			i = j
		}
	}
	if text.Len() > 0 {
		parts = append(parts, InputPart{Text: text.String()})
	}
	return parts, nil
}

// The fields of an environment and of a zone that inputs may read.
var (
	environmentFields = []string{"name", "zone", "description", "sync"}
	zoneFields        = []string{"name", "kind", "description", "provider", "account"}
)

func parseRef(body string) (InputRef, error) {
	toks := strings.Split(body, ".")
	bad := func(why string) (InputRef, error) {
		return InputRef{}, fmt.Errorf("%s in ${%s}: expected ${stacks.<stack>.outputs.<key>}, ${environment.<field>} or ${zone.<field>}", why, Truncate(body, 60))
	}
	for _, t := range toks {
		if t == "" || strings.TrimSpace(t) != t {
			return bad("an empty or spaced name")
		}
	}
	switch RefScope(toks[0]) {
	case RefStack:
		if len(toks) != 4 || toks[2] != "outputs" {
			return bad("not a stack output")
		}
		return InputRef{Scope: RefStack, Stack: toks[1], Key: toks[3]}, nil
	case RefEnvironment, RefZone:
		if len(toks) != 2 {
			return bad("not a field")
		}
		fields := environmentFields
		if toks[0] == string(RefZone) {
			fields = zoneFields
		}
		if !slices.Contains(fields, toks[1]) {
			return InputRef{}, fmt.Errorf("no field %q of %s to read in ${%s} (fields: %s)", toks[1], toks[0], body, strings.Join(fields, ", "))
		}
		return InputRef{Scope: RefScope(toks[0]), Key: toks[1]}, nil
	}
	return bad(fmt.Sprintf("unknown reference %q", toks[0]))
}

// EnvironmentField is the value of a field of e that inputs may read.
func EnvironmentField(e *Environment, field string) string {
	switch field {
	case "name":
		return e.Name
	case "zone":
		return e.Zone
	case "description":
		return e.Description
	case "sync":
		return string(e.Sync)
	}
	return ""
}

// ZoneField is the value of a field of z that inputs may read.
func ZoneField(z *Zone, field string) string {
	switch field {
	case "name":
		return z.Name
	case "kind":
		return string(z.Kind)
	case "description":
		return z.Description
	case "provider":
		return z.Provider
	case "account":
		return z.Account
	}
	return ""
}

// WalkInputs calls fn with every string of an input value and the path
// to it below the input (map keys, list indexes), in a stable order.
func WalkInputs(v any, at []string, fn func(s string, at []string)) {
	switch v := v.(type) {
	case string:
		fn(v, at)
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			WalkInputs(v[k], append(at, k), fn)
		}
	case []any:
		for i, e := range v {
			WalkInputs(e, append(at, idx(i)), fn)
		}
	}
}

// Truncate keeps at most n bytes of s, cut at a character's start (a
// message cut inside a character would read as invalid UTF-8), and marks
// the cut with an ellipsis.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
