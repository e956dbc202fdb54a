package cli

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, clean, oneLine string }{
		{"plain", "web: quieter logs", "web: quieter logs", "web: quieter logs"},
		{"letters beyond ASCII", "Zoë O'Brien 日本 مرحبا", "Zoë O'Brien 日本 مرحبا", "Zoë O'Brien 日本 مرحبا"},
		{"clear screen", "fix\x1b[2J\x1b[H", `fix\x1b[2J\x1b[H`, `fix\x1b[2J\x1b[H`},
		{"window title (OSC)", "\x1b]0;pwned\x07subject", `\x1b]0;pwned\asubject`, `\x1b]0;pwned\asubject`},
		{"carriage return and backspace", "ok\rFAIL\b\b", `ok\rFAIL\b\b`, `ok\rFAIL\b\b`},
		{"C1 CSI as a rune", "a\u009b2Jb", `a\u009b2Jb`, `a\u009b2Jb`},
		{"C1 CSI as a lone byte", "a\x9b2Jb", `a\x9b2Jb`, `a\x9b2Jb`},
		{"bidi override", "admin\u202egnp.exe", `admin\u202egnp.exe`, `admin\u202egnp.exe`},
		{"bidi isolate", "a\u2067b\u2069", `a\u2067b\u2069`, `a\u2067b\u2069`},
		{"delete and NUL", "a\x7fb\x00", `a\x7fb\x00`, `a\x7fb\x00`},
		{"lines and tabs", "first\tline\nsecond line\n", "first\tline\nsecond line\n", "first line | second line"},
		{"CRLF lines", "one\r\ntwo\r\n", `one\r` + "\n" + `two\r` + "\n", "one | two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clean(tc.in); got != tc.clean {
				t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.clean)
			}
			if got := oneLine(tc.in); got != tc.oneLine {
				t.Errorf("oneLine(%q) = %q, want %q", tc.in, got, tc.oneLine)
			}
		})
	}
}

// TestEscaperHoldsSplitRunes: a stream copied in chunks may cut a rune in
// two; the escaper writes it whole, and an incomplete one at the end of the
// stream as the invalid bytes it is.
func TestEscaperHoldsSplitRunes(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	e := newEscaper(&b)
	in := []byte("Zoë \x1b[31m日本\n")
	for i := range in {
		if n, err := e.Write(in[i : i+1]); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	e.Write([]byte("end \xe6\x97"))
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "Zoë \\x1b[31m日本\nend \\xe6\\x97"; b.String() != want {
		t.Errorf("escaped stream %q, want %q", b.String(), want)
	}
}

// FuzzClean: whatever the input, clean leaves no control character but
// newlines and tabs, oneLine none at all, both are valid UTF-8, and text
// without controls is left as it is.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"plain", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "a\x9b2J", "\u202e", "é\r\n\t", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []struct {
			text   string
			layout bool
		}{{clean(s), true}, {oneLine(s), false}} {
			if !utf8.ValidString(out.text) {
				t.Fatalf("not UTF-8: %q", out.text)
			}
			if needsEscape(out.text, out.layout) {
				t.Fatalf("%q still holds a control character", out.text)
			}
		}
		if !needsEscape(s, true) && clean(s) != s {
			t.Fatalf("clean(%q) = %q changed text without controls", s, clean(s))
		}
		var b bytes.Buffer
		e := newEscaper(&b)
		half := len(s) / 2
		e.Write([]byte(s[:half]))
		e.Write([]byte(s[half:]))
		e.Flush()
		if b.String() != clean(s) && utf8.ValidString(s) {
			t.Fatalf("escaper wrote %q in two writes, clean gives %q", b.String(), clean(s))
		}
		if strings.ContainsRune(b.String(), 0x1b) {
			t.Fatalf("escaper let ESC through: %q", b.String())
		}
	})
}
