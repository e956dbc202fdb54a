package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with the repository, located precisely enough
// for an editor to jump to it.
type Problem struct {
	// File is the path inside the repository, slash-separated.
	File string `json:"file"`
	// Line and Column are 1-based; 0 when the problem concerns a whole file.
	Line   int `json:"line"`
	Column int `json:"column"`
	// Field is the path of the offending field, e.g. environments[2].promotion.from.
	Field string `json:"field,omitempty"`
	// Message says what was expected and what was found.
	Message string `json:"message"`
	// Warning problems do not make the repository invalid.
	Warning bool `json:"warning,omitempty"`
}

// String renders file:line:column: field: message, as compilers do.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in one pass over a repository.
type Problems []Problem

// String renders the problems one per line, as socle validate prints them.
func (ps Problems) String() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Errors returns how many problems are not warnings.
func (ps Problems) Errors() int {
	n := 0
	for _, p := range ps {
		if !p.Warning {
			n++
		}
	}
	return n
}

// Err returns the problems as an error when any is not a warning, else nil.
func (ps Problems) Err() error {
	if ps.Errors() == 0 {
		return nil
	}
	return &InvalidError{Problems: ps}
}

func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column), cmp.Compare(a.Message, b.Message))
	})
}

// InvalidError is returned for a repository that does not validate.
type InvalidError struct{ Problems Problems }

func (e *InvalidError) Error() string {
	n := e.Problems.Errors()
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("%d problem%s", n, plural(n)))
	for _, p := range e.Problems {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
