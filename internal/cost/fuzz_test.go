package cost

import (
	"context"
	"encoding/json"
	"errors"
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
	f.Add([]byte("BilledCost,ChargePeriodStart,BillingCurrency,Tags\n9.99e17,2024-02-29,usd,\"{\"\"team\"\":1}\"\n-1e308,2024-02-29T23:59:59+14:00,USD,x\n"))
	f.Add([]byte("BilledCost,ChargePeriodStart,BillingCurrency\n0.00000041370,2024-09-01,USD\n999999999999999999.999999999999,2024-09-01,USD\n2.4000000000000002E-5,2024-09-01,USD\n"))
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
		// sums are exact: the rows and each dimension's coverage add up to
		// the same, to the pico-unit
		for _, p := range b.Periods {
			var rows Amounts
			for _, r := range p.Rows {
				rows.Add(r.Amounts)
			}
			for _, dim := range []Dim{DimTeam, DimApp, DimEnv, DimZone} {
				var cov Amounts
				for _, c := range p.Coverage {
					if c.Dim == dim {
						cov.Add(c.Amounts)
					}
				}
				if cov != rows {
					t.Fatalf("%s %s: rows add up to %+v, %s coverage to %+v", p.Source, p.Month, rows, dim, cov)
				}
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
