package cost

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzReadBatch feeds arbitrary files to the importer: format detection
// from the header, row parsing, values, tags. It must never panic; a file
// it accepts must account for every cost it read, whichever way it was
// allocated.
func FuzzReadBatch(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "formats", "*"))
	bad, _ := filepath.Glob(filepath.Join("testdata", "bad", "*"))
	azure, _ := filepath.Glob(filepath.Join("testdata", "azure", "*", "*"))
	for _, p := range append(append(seeds, bad...), azure...) {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("BilledCost,ChargePeriodStart,BillingCurrency,Tags\n1e308,2024-02-29,usd,\"{\"\"team\"\":1}\"\n-1e308,2024-02-29T23:59:59+14:00,USD,x\n"))
	f.Add([]byte("date;Kosten;Währung;SubscriptionId\n31.12.2024;1.234,5;EUR;s\n"))
	f.Add([]byte("{\"cost\":1,\"usage_start_time\":\"2024-01-01\",\"currency\":\"EUR\",\"credits\":[{\"amount\":\"x\"}]}\n"))
	dir := f.TempDir()
	a := NewAllocator(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "in.csv")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Skip()
		}
		b, err := ReadBatch(context.Background(), a, []File{{Path: p}})
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				return
			}
			var ie *ImportError
			if !errors.As(err, &ie) {
				t.Logf("not a data error: %v", err) // gzip and I/O errors
			}
			return
		}
		for _, p := range b.Periods {
			var rows, cov ksum
			for _, r := range p.Rows {
				rows.add(r.Billed)
			}
			for _, c := range p.Coverage {
				if c.Dim == DimTeam {
					cov.add(c.Billed)
				}
			}
			x, y := rows.value(), cov.value()
			if x != y && !math.IsNaN(x) && !math.IsInf(x, 0) && math.Abs(x-y) > 1e-9*math.Max(1, math.Abs(x)) {
				t.Fatalf("%s %s: rows add up to %g, team coverage to %g", p.Source, p.Month, x, y)
			}
		}
	})
}

// FuzzPythonToJSON feeds arbitrary text to the reader of Python literals:
// it never panics, and a string written as Python's repr writes it (in
// single quotes, backslash and quote escaped) reads back unchanged.
func FuzzPythonToJSON(f *testing.F) {
	f.Add([]byte(`[{'name': "Google's", 'amount': -1.5e-05, 'full_name': None, 'ok': True}]`), "Zürich\n'\\\"")
	f.Add([]byte(`['\x41\u00e9\U0001F600', "\"", '\q']`), "")
	f.Add([]byte(`'never closed`), "\x00")
	f.Fuzz(func(t *testing.T, data []byte, s string) {
		pythonToJSON(data)
		if !utf8.ValidString(s) {
			return
		}
		lit := "['" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "']"
		js, err := pythonToJSON([]byte(lit))
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		var got []string
		if err := json.Unmarshal(js, &got); err != nil || len(got) != 1 || got[0] != s {
			t.Fatalf("%s read as %s (%v), want %q", lit, js, err, s)
		}
	})
}
