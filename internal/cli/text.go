package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"unicode/utf8"
)

// Human output carries data that nobody at socle wrote: commit subjects and
// authors, app descriptions, variables, build logs, app logs, error messages
// of the server. A terminal acts on the control characters in it (ESC starts
// sequences that clear the screen, retitle the window, rewrite the clipboard
// or fake a hyperlink; \r and \b overwrite what was printed; C1 controls such
// as U+009B are a CSI on their own; bidi overrides reorder what is shown), so
// every byte of human output passes through clean: control characters are
// written as Go-style escapes (\x1b, \r, \u202e), visible and harmless.
// JSON output is written as it is (-o json stays exact): the JSON encoder
// escapes control characters itself.

// clean returns s with every control character escaped except newlines and
// tabs, which human output uses for its layout.
func clean(s string) string {
	if !needsEscape(s, true) {
		return s
	}
	var b strings.Builder
	escapeTo(&b, s, true)
	return b.String()
}

// oneLine returns s fit for one cell of a table: control characters
// escaped, and the lines of a multi-line text joined with " | " (a tab
// would move the next columns).
func oneLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if !needsEscape(s, false) {
		return s
	}
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteString(" | ")
		}
		escapeTo(&b, strings.ReplaceAll(strings.TrimSuffix(line, "\r"), "\t", " "), true)
	}
	return b.String()
}

// needsEscape reports whether s holds anything escapeTo would change;
// layout tells whether newlines and tabs are kept.
func needsEscape(s string, layout bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				if !layout || (c != '\n' && c != '\t') {
					return true
				}
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || escapedRune(r) {
			return true
		}
		i += n
	}
	return false
}

// escapedRune reports the runes beyond ASCII that are escaped: the C1
// controls, and the bidi embeddings, overrides and isolates (with them a
// commit subject can show something else than what it says, as in "Trojan
// Source"), and the line and paragraph separators. Marks (LRM, RLM, ALM)
// and zero-width characters stay: right-to-left text needs them, and they
// cannot reorder what follows them.
func escapedRune(r rune) bool {
	return r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x2028 || r == 0x2029
}

var named = map[byte]string{'\a': `\a`, '\b': `\b`, '\f': `\f`, '\r': `\r`, '\v': `\v`, '\t': `\t`, '\n': `\n`}

// escapeTo writes s to b with its control characters escaped; layout keeps
// newlines and tabs. Invalid UTF-8 bytes are escaped one by one: in an
// 8-bit terminal a lone 0x9b is a CSI.
func escapeTo(b *strings.Builder, s string, layout bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case layout && (c == '\n' || c == '\t'):
				b.WriteByte(c)
			case c < 0x20 || c == 0x7f:
				if n, ok := named[c]; ok {
					b.WriteString(n)
				} else {
					fmt.Fprintf(b, `\x%02x`, c)
				}
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(b, `\x%02x`, c)
		case escapedRune(r):
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
}

// escaper is a Writer that cleans what goes through it. A rune split
// between two writes (a stream copied in chunks) is held until it is
// whole, so that it is not taken for invalid bytes; Flush writes what is
// held at the end of the stream.
type escaper struct {
	mu      sync.Mutex
	w       io.Writer
	pending []byte
}

func newEscaper(w io.Writer) *escaper { return &escaper{w: w} }

func (e *escaper) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	buf := p
	if len(e.pending) > 0 {
		buf = append(e.pending, p...)
		e.pending = nil
	}
	// Hold an incomplete rune at the end: at most UTFMax-1 bytes that start
	// a multi-byte sequence.
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(buf[i]) {
			if buf[i] >= utf8.RuneSelf && !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	e.pending = append(e.pending[:0], buf[cut:]...)
	if err := e.write(buf[:cut]); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (e *escaper) write(p []byte) error {
	s := string(p)
	if needsEscape(s, true) {
		s = clean(s)
	}
	_, err := io.WriteString(e.w, s)
	return err
}

// Flush writes the bytes held back: an incomplete rune at the end of the
// stream, escaped as the invalid bytes it is.
func (e *escaper) Flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pending
	e.pending = nil
	if len(p) == 0 {
		return nil
	}
	return e.write(p)
}

// table writes aligned columns. Every cell is made one clean line, so that
// a multi-line reason or a tab in a commit subject cannot break the
// alignment; every table of the CLI is written with it.
type table struct {
	w   io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

// row writes one row; fewer cells than columns leave the last ones empty.
func (t *table) row(cells ...string) {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(oneLine(c))
	}
	b.WriteByte('\n')
	io.WriteString(t.tw, b.String())
}

// flush writes the table, without the padding of empty last cells.
func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for line := range strings.Lines(t.buf.String()) {
		b.WriteString(strings.TrimRight(line, " \n"))
		b.WriteByte('\n')
	}
	t.buf.Reset()
	_, err := io.WriteString(t.w, b.String())
	return err
}
