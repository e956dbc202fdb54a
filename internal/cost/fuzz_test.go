package cost

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadBatch feeds arbitrary files to the importer: format detection
// from the header, row parsing, values, tags. It must never panic; a file
// it accepts must account for every cost it read, whichever way it was
// allocated.
func FuzzReadBatch(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "formats", "*"))
	bad, _ := filepath.Glob(filepath.Join("testdata", "bad", "*"))
	for _, p := range append(seeds, bad...) {
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
