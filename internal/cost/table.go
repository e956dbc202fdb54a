package cost

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// table writes aligned columns for people: text to the left, amounts to
// the right (a column is numeric when its header is in numeric).
type table struct {
	indent  string
	header  []string
	numeric map[int]bool
	rows    [][]string
}

func newTable(indent string, header ...string) *table {
	return &table{indent: indent, header: header, numeric: map[int]bool{}}
}

// right marks columns whose values align to the right.
func (t *table) right(cols ...int) *table {
	for _, c := range cols {
		t.numeric[c] = true
	}
	return t
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	width := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], utf8.RuneCountInString(c))
			}
		}
	}
	var b strings.Builder
	for _, r := range append([][]string{t.header}, t.rows...) {
		var line strings.Builder
		line.WriteString(t.indent)
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			last := i == len(r)-1
			switch {
			case t.numeric[i]:
				line.WriteString(pad + c)
			case last:
				line.WriteString(c)
			default:
				line.WriteString(c + pad)
			}
			if !last {
				line.WriteString("  ")
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err := fmt.Fprint(w, b.String())
	return err
}
