package cost

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
	"slices"
	"strings"
	"testing"
)

func readAllCSV(t testing.TB, in string, sep byte) (recs [][]string, lines []int, err error) {
	r := newCSVReader(bufio.NewReaderSize(strings.NewReader(in), 16), sep) // a small buffer exercises refills
	for {
		f, line, err := r.read()
		if err == io.EOF {
			return recs, lines, nil
		}
		if err != nil {
			return recs, lines, err
		}
		rec := make([]string, len(f))
		for i, b := range f {
			rec[i] = string(b)
		}
		recs = append(recs, rec)
		lines = append(lines, line)
	}
}

func TestCSVReader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		sep   byte
		want  [][]string
		lines []int
	}{
		{"plain", "a,b,c\n1,2,3\n", ',', [][]string{{"a", "b", "c"}, {"1", "2", "3"}}, []int{1, 2}},
		{"crlf and no final newline", "a,b\r\n1,2", ',', [][]string{{"a", "b"}, {"1", "2"}}, []int{1, 2}},
		{"quoted", `"a","b,c",""` + "\n", ',', [][]string{{"a", "b,c", ""}}, []int{1}},
		{"doubled quotes", `"say ""hi""",x,"""",y` + "\n", ',', [][]string{{`say "hi"`, "x", `"`, "y"}}, []int{1}},
		{"json in a field", `1,"{""k"": ""v""}",2` + "\n", ',', [][]string{{"1", `{"k": "v"}`, "2"}}, []int{1}},
		{"line break inside quotes", "h1,h2\n\"a\nb\",c\nd,e\n", ',', [][]string{{"h1", "h2"}, {"a\nb", "c"}, {"d", "e"}}, []int{1, 2, 4}},
		{"blank lines skipped", "a\n\n \nb\n", ',', [][]string{{"a"}, {"b"}}, []int{1, 4}},
		{"empty fields", ",,\n", ',', [][]string{{"", "", ""}}, []int{1}},
		{"semicolons", "a;\"b;c\";1,5\n", ';', [][]string{{"a", "b;c", "1,5"}}, []int{1}},
		{"stray quote in an unquoted field", "5\" disk,x\"\n", ',', [][]string{{`5" disk`, `x"`}}, []int{1}},
		{"text after a closing quote", `"a"b,c` + "\n", ',', [][]string{{"ab", "c"}}, []int{1}},
		{"long field", strings.Repeat("x", 100) + ",y\n", ',', [][]string{{strings.Repeat("x", 100), "y"}}, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, lines, err := readAllCSV(t, tc.in, tc.sep)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) || !slices.Equal(lines, tc.lines) {
				t.Errorf("got %q at lines %v, want %q at %v", got, lines, tc.want, tc.lines)
			}
		})
	}
}

func TestCSVReaderUnclosedQuote(t *testing.T) {
	_, _, err := readAllCSV(t, "a,b\n\"open,c\nd,e\n", ',')
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("unclosed quote: %v", err)
	}
}

func TestSniffSeparator(t *testing.T) {
	for in, want := range map[string]byte{
		"a,b,c":            ',',
		"a;b;c":            ';',
		"a\tb\tc":          '\t',
		`"a;b",c`:          ',',
		"Datum;Kosten,x;y": ';',
		"single":           ',',
	} {
		if got := sniffSeparator([]byte(in)); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// FuzzCSVReader writes records with encoding/csv, which quotes what needs
// quoting, and reads them back: every field must come back as written.
func FuzzCSVReader(f *testing.F) {
	f.Add("a\x1fb\x1ec\x1fd")
	f.Add("say \"hi\"\x1f{\"k\": 1}\x1ex,y\x1f")
	f.Add("line\nbreak\x1f\r\n\x1e \x1f\t")
	f.Add("é\x1f\xff\x1e\"\"")
	f.Fuzz(func(t *testing.T, in string) {
		var recs [][]string
		for rec := range strings.SplitSeq(in, "\x1e") {
			fields := strings.Split(rec, "\x1f")
			if len(fields) == 1 && strings.TrimSpace(fields[0]) == "" {
				continue // a blank line is skipped by design
			}
			recs = append(recs, fields)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.WriteAll(recs); err != nil {
			t.Skip()
		}
		got, _, err := readAllCSV(t, buf.String(), ',')
		if err != nil {
			t.Fatalf("reading %q: %v", buf.String(), err)
		}
		if !slices.EqualFunc(got, recs, slices.Equal) {
			t.Fatalf("wrote %q as %q, read %q", recs, buf.String(), got)
		}
	})
}
