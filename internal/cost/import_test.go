package cost_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/spec"
)

// groupTotals is billed and effective cost per "provider|service".
type groupTotals map[string][2]money.Amount

func storeTotals(t *testing.T, s *cost.Service, by ...cost.Dim) groupTotals {
	t.Helper()
	out := groupTotals{}
	err := s.Store.Totals(context.Background(), cost.Query{By: by}, func(tt cost.Total) error {
		k := strings.Join(append(tt.Keys, tt.Currency), "|")
		out[k] = [2]money.Amount{tt.Billed, tt.Effective}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTotals(t *testing.T, what string, got, want groupTotals) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d groups, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: no total for %s", what, k)
			continue
		}
		// exactly: the sums are exact, to the pico-unit
		for i, name := range []string{"billed", "effective"} {
			if g[i] != w[i] {
				t.Errorf("%s: %s %s = %s, want %s (off by %s)", what, k, name, g[i], w[i], g[i].Sub(w[i]))
			}
		}
	}
}

// referenceTotals computes, independently of the importer, exact decimal
// totals of a FOCUS CSV with encoding/csv and math/big.
func referenceTotals(t *testing.T, path string, keys ...string) groupTotals {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	sums := map[string]*[2]big.Rat{}
	for _, r := range recs[1:] {
		parts := make([]string, 0, len(keys)+1)
		for _, k := range keys {
			parts = append(parts, r[col[k]])
		}
		k := strings.Join(append(parts, r[col["BillingCurrency"]]), "|")
		if sums[k] == nil {
			sums[k] = &[2]big.Rat{}
		}
		for i, c := range []string{"BilledCost", "EffectiveCost"} {
			var v big.Rat
			if _, ok := v.SetString(r[col[c]]); !ok {
				t.Fatalf("%s %q", c, r[col[c]])
			}
			sums[k][i].Add(&sums[k][i], &v)
		}
	}
	out := groupTotals{}
	for k, s := range sums {
		out[k] = [2]money.Amount{exactAmount(t, &s[0]), exactAmount(t, &s[1])}
	}
	return out
}

// exactAmount is r, which must have at most 12 decimals.
func exactAmount(t *testing.T, r *big.Rat) money.Amount {
	t.Helper()
	a, ok := money.FromRat(r)
	if !ok || a.Rat().Cmp(r) != 0 {
		t.Fatalf("%s is not an amount of 12 decimals", r.FloatString(20))
	}
	return a
}

// duckAmount reads a DECIMAL that DuckDB wrote as text.
func duckAmount(t *testing.T, v any) money.Amount {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("DuckDB answered %T %v, want the text of a DECIMAL", v, v)
	}
	a, err := money.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// duckDBTotals computes the same totals with DuckDB, exact DECIMAL sums
// over the file read by DuckDB's own CSV reader, written as text.
func duckDBTotals(t *testing.T, path string, keys ...string) groupTotals {
	t.Helper()
	abs, _ := filepath.Abs(path)
	sel := make([]string, len(keys))
	for i, k := range keys {
		sel[i] = fmt.Sprintf("%q AS k%d", k, i)
	}
	rows := duckDB(t, fmt.Sprintf(`SELECT %s, BillingCurrency AS currency,
		CAST(sum(CAST(BilledCost AS DECIMAL(38,15))) AS VARCHAR) AS billed,
		CAST(sum(CAST(EffectiveCost AS DECIMAL(38,15))) AS VARCHAR) AS effective
		FROM read_csv('%s', header=true, nullstr=['NULL',''], all_varchar=true) GROUP BY ALL`,
		strings.Join(sel, ", "), strings.ReplaceAll(abs, "'", "''")))
	res := groupTotals{}
	for _, r := range rows {
		parts := make([]string, 0, len(keys)+1)
		for i := range keys {
			parts = append(parts, fmt.Sprint(r[fmt.Sprintf("k%d", i)]))
		}
		res[strings.Join(append(parts, r["currency"].(string)), "|")] = [2]money.Amount{duckAmount(t, r["billed"]), duckAmount(t, r["effective"])}
	}
	return res
}

// duckDB runs a query with DuckDB (test/duckdb), or skips the test when it
// is not installed.
func duckDB(t *testing.T, query string) []map[string]any {
	t.Helper()
	dir := filepath.Join("..", "..", "test", "duckdb")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Skip("DuckDB reference absent: install it with `npm ci --prefix test/duckdb` (the Go reference still ran)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("DuckDB reference needs node, absent (the Go reference still ran)")
	}
	out, err := exec.Command("node", filepath.Join(dir, "query.mjs"), query).Output()
	if err != nil {
		t.Fatalf("DuckDB: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestSampleMatchesIndependentTotals imports the FinOps Foundation's
// sample and compares per-provider and per-service billed and effective
// totals, exactly, with a computation in plain Go (math/big) and with
// DuckDB's DECIMAL sums.
func TestSampleMatchesIndependentTotals(t *testing.T) {
	t.Parallel()
	path := sample(t)
	s := newService(t, nil, mustTime("2024-10-05T00:00:00Z"))
	if _, err := s.Import(context.Background(), []cost.File{{Path: path}}, cost.Replace); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		name string
		dims []cost.Dim
		cols []string
	}{
		{"provider", []cost.Dim{cost.DimProvider}, []string{"ProviderName"}},
		{"service", []cost.Dim{cost.DimService}, []string{"ServiceName"}},
		{"provider and service", []cost.Dim{cost.DimProvider, cost.DimService}, []string{"ProviderName", "ServiceName"}},
	} {
		got := storeTotals(t, s, g.dims...)
		t.Run(g.name+"/go", func(t *testing.T) {
			want := referenceTotals(t, path, g.cols...)
			if len(want) < 3 {
				t.Fatalf("the reference found %d groups", len(want))
			}
			compareTotals(t, "Go reference", got, want)
		})
		t.Run(g.name+"/duckdb", func(t *testing.T) {
			compareTotals(t, "DuckDB", got, duckDBTotals(t, path, g.cols...))
		})
	}
}

// TestReimportNeverDoubleCounts imports the sample, again, under another
// name, then a restated copy: each (source, billing period) is replaced,
// never added to.
func TestReimportNeverDoubleCounts(t *testing.T) {
	t.Parallel()
	path := sample(t)
	s := newService(t, nil, mustTime("2024-10-05T00:00:00Z"))
	ctx := context.Background()
	imp := func(p, name string) {
		t.Helper()
		if _, err := s.Import(ctx, []cost.File{{Path: p, Name: name}}, cost.Replace); err != nil {
			t.Fatal(err)
		}
	}
	imp(path, "")
	first := storeTotals(t, s, cost.DimSource, cost.DimPeriod, cost.DimService)
	imp(path, "")
	compareTotals(t, "re-import", storeTotals(t, s, cost.DimSource, cost.DimPeriod, cost.DimService), first)

	dir := t.TempDir()
	cp := filepath.Join(dir, "copy.csv")
	data, _ := os.ReadFile(path)
	os.WriteFile(cp, data, 0o644)
	imp(cp, "copy.csv")
	compareTotals(t, "a copy", storeTotals(t, s, cost.DimSource, cost.DimPeriod, cost.DimService), first)

	// the provider restates the month: every AWS cost is 10% higher
	restated := filepath.Join(dir, "restated.csv")
	writeRestated(t, path, restated, big.NewRat(11, 10))
	imp(restated, "restated.csv")
	got := storeTotals(t, s, cost.DimSource, cost.DimPeriod, cost.DimService)
	want := referenceTotals(t, restated, "ProviderName", "ServiceName")
	// compare per provider and service (the source of the sample is one
	// billing account per provider)
	perService := groupTotals{}
	for k, v := range got {
		parts := strings.Split(k, "|")
		provider, _, _ := strings.Cut(parts[0], ":")
		key := provider + "|" + parts[2] + "|" + parts[3]
		a := perService[key]
		perService[key] = [2]money.Amount{a[0].Add(v[0]), a[1].Add(v[1])}
	}
	compareTotals(t, "after the restated copy", perService, want)

	imps, err := s.Store.Imports(ctx, 10)
	if err != nil || len(imps) != 4 {
		t.Errorf("%d imports recorded, want 4 (%v)", len(imps), err)
	}
}

// writeRestated copies a FOCUS file with the AWS costs multiplied, written
// with 12 decimals: the sample's 11 times 1.1 is exact.
func writeRestated(t *testing.T, from, to string, factor *big.Rat) {
	t.Helper()
	in, _ := os.Open(from)
	defer in.Close()
	recs, err := csv.NewReader(in).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, r := range recs[1:] {
		if r[col["ProviderName"]] != "AWS" {
			continue
		}
		for _, c := range []string{"BilledCost", "EffectiveCost", "ListCost"} {
			var v big.Rat
			v.SetString(r[col[c]])
			v.Mul(&v, factor)
			r[col[c]] = v.FloatString(12)
		}
	}
	f, _ := os.Create(to)
	w := csv.NewWriter(f)
	w.WriteAll(recs)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBatchOfParts imports an export split in two parts as one batch, then
// one part alone as a new import: the parts add up, and the part alone
// replaces them.
func TestBatchOfParts(t *testing.T) {
	t.Parallel()
	path := sample(t)
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	dir := t.TempDir()
	header, body := lines[0], lines[1:]
	// the sample has no line break inside a field: cut anywhere between rows
	half := len(body) / 2
	p1, p2 := filepath.Join(dir, "part-1.csv"), filepath.Join(dir, "part-2.csv")
	os.WriteFile(p1, []byte(header+strings.Join(body[:half], "")), 0o644)
	os.WriteFile(p2, []byte(header+strings.Join(body[half:], "")), 0o644)

	s := newService(t, nil, mustTime("2024-10-05T00:00:00Z"))
	res, err := s.ImportPath(context.Background(), dir, cost.Replace)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Files) != 2 {
		t.Fatalf("a directory of parts is one batch: %+v", res)
	}
	compareTotals(t, "parts", storeTotals(t, s, cost.DimProvider, cost.DimService), referenceTotals(t, path, "ProviderName", "ServiceName"))

	// the same content twice in one batch is refused
	os.WriteFile(filepath.Join(dir, "part-3.csv"), []byte(header+strings.Join(body[half:], "")), 0o644)
	if _, err := s.ImportPath(context.Background(), dir, cost.Replace); err == nil || !strings.Contains(err.Error(), "same content") {
		t.Errorf("a duplicated part: %v", err)
	}
}

func TestImportResult(t *testing.T) {
	t.Parallel()
	s := newService(t, testRepo(), mustTime("2024-09-10T00:00:00Z"))
	res, err := s.Import(context.Background(), []cost.File{{Path: filepath.Join("testdata", "formats", "focus_1.3.csv")}}, cost.Replace)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "import_result.json", res)
}

// TestSplitRuleSharesExactly splits the sample's Oracle charges among three
// teams, 1:1:1, by a rule: no pico-unit is created or lost (the teams add
// up to the costs split, exactly as the file's text adds up), each team
// gets a third within a pico-unit a charge, and each charge counts once in
// the coverage.
func TestSplitRuleSharesExactly(t *testing.T) {
	t.Parallel()
	path := sample(t)
	repo := testRepo()
	repo.Platform.Costs.Rules = append([]spec.AllocationRule{{Name: "oracle-shared", Match: spec.AllocationMatch{Provider: "Oracle"},
		Split: []spec.AllocationShare{{Team: "bookings", Weight: 1}, {Team: "data", Weight: 1}, {Team: "platform", Weight: 1}}}},
		repo.Platform.Costs.Rules...)
	s := newService(t, repo, mustTime("2024-10-05T00:00:00Z"))
	ctx := context.Background()
	if _, err := s.Import(ctx, []cost.File{{Path: path}}, cost.Replace); err != nil {
		t.Fatal(err)
	}
	want := referenceTotals(t, path, "ProviderName")["Oracle|USD"]
	var sum [2]money.Amount
	teams := map[string][2]money.Amount{}
	err := s.Store.Totals(ctx, cost.Query{By: []cost.Dim{cost.DimTeam}, Where: []cost.Cond{{Dim: cost.DimProvider, Values: []string{"Oracle"}}}},
		func(tt cost.Total) error {
			teams[tt.Keys[0]] = [2]money.Amount{tt.Billed, tt.Effective}
			sum = [2]money.Amount{sum[0].Add(tt.Billed), sum[1].Add(tt.Effective)}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(teams) != 3 || sum != want {
		t.Fatalf("the shares %v add up to %v, the file's Oracle costs to %v", teams, sum, want)
	}
	f, _ := os.Open(path)
	recs, _ := csv.NewReader(f).ReadAll()
	f.Close()
	oracle := 0
	for _, r := range recs[1:] {
		if r[slices.Index(recs[0], "ProviderName")] == "Oracle" {
			oracle++
		}
	}
	third, _ := want[0].MulRat(big.NewRat(1, 3))
	for team, v := range teams {
		if d := v[0].Sub(third).Abs(); d.Cmp(money.FromPico(int64(oracle))) > 0 {
			t.Errorf("%s has %s billed, a third is %s: off by more than a pico-unit for each of %d charges", team, v[0], third, oracle)
		}
	}
	cov, err := s.Store.Coverage(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var charges int64
	var covered money.Amount
	for _, c := range cov {
		if c.Dim == cost.DimTeam {
			charges += c.Charges
			covered = covered.Add(c.Billed)
		}
	}
	if charges != 1000 {
		t.Errorf("the team coverage counts %d charges, the file has 1000", charges)
	}
	total := referenceTotals(t, path)
	if covered != total["USD"][0] {
		t.Errorf("the team coverage adds up to %s billed, the file to %s", covered, total["USD"][0])
	}
}
