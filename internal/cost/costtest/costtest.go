// Package costtest is the conformance suite of cost.Store. Every
// implementation (SQLite now, PostgreSQL later) runs it from its own tests
// against a real database:
//
//	costtest.Run(t, func(t *testing.T) cost.Store { … })
//
// The suite, not an implementation, says what the interface means.
package costtest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
)

// Open returns a Store over a new, empty database of its own; it is called
// by parallel tests and cleans up with t.Cleanup.
type Open func(t *testing.T) cost.Store

// Run runs the suite against the stores open returns.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		run  func(t *testing.T, s cost.Store)
	}{
		{"TotalsGroupAndOrder", testTotals},
		{"NeverSumsAcrossCurrencies", testCurrencies},
		{"ReplaceIsPerSourceAndPeriod", testReplace},
		{"WholeMonthsEqualTheirDays", testMonthly},
		{"Filters", testFilters},
		{"Span", testSpan},
		{"Coverage", testCoverage},
		{"SumsAreExact", testExactSums},
		{"AzureViewsAreNeverAdded", testViews},
		{"Append", testAppend},
		{"Imports", testImports},
		{"Alerts", testAlerts},
		{"ConcurrentImports", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

var ctx = context.Background()

func day(s string) cost.Day {
	d, err := cost.ParseDay(s)
	if err != nil {
		panic(err)
	}
	return d
}

func month(s string) cost.Month {
	m, err := cost.ParseMonth(s)
	if err != nil {
		panic(err)
	}
	return m
}

// u is n currency units.
func u(n int64) money.Amount { return money.FromUnits(n) }

// three are the amounts of rows and totals: billed, half of it effective,
// twice it list.
func three(billed money.Amount) cost.Amounts {
	half, _ := billed.MulRat(big.NewRat(1, 2))
	return cost.Amounts{Billed: billed, Effective: half, List: billed.Add(billed)}
}

// row makes a daily aggregate of billed units.
func row(d, service, currency, team, app, env string, billed int64) cost.Row {
	return rowOf(d, service, currency, team, app, env, u(billed))
}

func rowOf(d, service, currency, team, app, env string, billed money.Amount) cost.Row {
	return cost.Row{
		Key: cost.Key{Day: day(d), Provider: "AWS", Account: "111", Service: service, Region: "eu-west-1",
			Category: "Usage", Currency: currency, Team: team, App: app, Env: env, Zone: "apps"},
		Amounts: three(billed),
	}
}

func period(source, m string, rows ...cost.Row) cost.Period {
	return cost.Period{Source: source, Month: month(m), Charges: int64(len(rows) * 3), Rows: rows}
}

func replace(t *testing.T, s cost.Store, ps ...cost.Period) {
	t.Helper()
	files := []cost.FileInfo{{Name: fmt.Sprintf("f%d.csv", time.Now().UnixNano()), SHA256: fmt.Sprint(time.Now().UnixNano()), Format: cost.FormatFOCUS}}
	if _, err := s.ImportBatch(ctx, &cost.Batch{Files: files, Periods: ps}, cost.Replace); err != nil {
		t.Fatal(err)
	}
}

func totals(t *testing.T, s cost.Store, q cost.Query) []cost.Total {
	t.Helper()
	var out []cost.Total
	if err := s.Totals(ctx, q, func(tt cost.Total) error { out = append(out, tt); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// expect compares totals exactly: amounts are exact, to the pico-unit.
func expect(t *testing.T, got []cost.Total, want ...cost.Total) {
	t.Helper()
	if !slices.EqualFunc(got, want, totalEqual) {
		t.Errorf("totals:\n got %+v\nwant %+v", got, want)
	}
}

func tot(billed int64, currency string, keys ...string) cost.Total {
	return totOf(u(billed), currency, keys...)
}

func totOf(billed money.Amount, currency string, keys ...string) cost.Total {
	if keys == nil {
		keys = []string{}
	}
	return cost.Total{Keys: keys, Currency: currency, Amounts: three(billed)}
}

func testTotals(t *testing.T, s cost.Store) {
	replace(t, s, period("AWS:1", "2024-09",
		row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1),
		row("2024-09-01", "S3", "USD", "a", "web", "dev", 2),
		row("2024-09-02", "EC2", "USD", "b", "api", "prod", 4),
	))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimTeam}}), tot(3, "USD", "a"), tot(4, "USD", "b"))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimEnv, cost.DimTeam}}),
		tot(2, "USD", "dev", "a"), tot(1, "USD", "prod", "a"), tot(4, "USD", "prod", "b"))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimDay}}), tot(3, "USD", "2024-09-01"), tot(4, "USD", "2024-09-02"))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimSource, cost.DimPeriod, cost.DimMonth}}), tot(7, "USD", "AWS:1", "2024-09", "2024-09"))
	expect(t, totals(t, s, cost.Query{}), tot(7, "USD"))
}

func testCurrencies(t *testing.T, s cost.Store) {
	replace(t, s, period("AWS:1", "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1)),
		period("Microsoft:2", "2024-09", row("2024-09-01", "VM", "EUR", "a", "web", "prod", 10)))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimTeam}}), tot(10, "EUR", "a"), tot(1, "USD", "a"))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimCurrency}}), tot(10, "EUR", "EUR"), tot(1, "USD", "USD"))
}

func testReplace(t *testing.T, s cost.Store) {
	replace(t, s, period("AWS:1", "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1)),
		period("AWS:1", "2024-10", row("2024-10-01", "EC2", "USD", "a", "web", "prod", 2)),
		period("AWS:2", "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 4)))
	// the same batch again: nothing doubles
	replace(t, s, period("AWS:1", "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1)))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimSource, cost.DimPeriod}}),
		tot(1, "USD", "AWS:1", "2024-09"), tot(2, "USD", "AWS:1", "2024-10"), tot(4, "USD", "AWS:2", "2024-09"))
	// a restated September of AWS:1, with other days and owners, replaces it
	replace(t, s, period("AWS:1", "2024-09", row("2024-09-02", "S3", "USD", "b", "api", "dev", 8),
		row("2024-09-03", "S3", "USD", "b", "api", "dev", 16)))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimSource, cost.DimPeriod, cost.DimTeam}}),
		tot(24, "USD", "AWS:1", "2024-09", "b"), tot(2, "USD", "AWS:1", "2024-10", "a"), tot(4, "USD", "AWS:2", "2024-09", "a"))
	// an empty period empties it
	replace(t, s, period("AWS:1", "2024-10"))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimPeriod}}), tot(28, "USD", "2024-09"))
}

func testMonthly(t *testing.T, s cost.Store) {
	var rows []cost.Row
	for d := day("2024-08-25"); d < day("2024-10-05"); d++ {
		rows = append(rows, rowOf(d.String(), "EC2", "USD", "a", "web", "prod", tenth(d)))
	}
	replace(t, s, period("AWS:1", "2024-09", rows...))
	byDay := totals(t, s, cost.Query{From: day("2024-09-01"), To: day("2024-10-01"), By: []cost.Dim{cost.DimDay}})
	var sum money.Amount
	for _, tt := range byDay {
		sum = sum.Add(tt.Billed)
	}
	if len(byDay) != 30 {
		t.Errorf("%d days in September", len(byDay))
	}
	expect(t, totals(t, s, cost.Query{From: day("2024-09-01"), To: day("2024-10-01"), By: []cost.Dim{cost.DimTeam}}), totOf(sum, "USD", "a"))
	// a range that cuts months counts only its days
	expect(t, totals(t, s, cost.Query{From: day("2024-09-30"), To: day("2024-10-02"), By: []cost.Dim{cost.DimMonth}}),
		totOf(tenth(day("2024-09-30")), "USD", "2024-09"),
		totOf(tenth(day("2024-10-01")), "USD", "2024-10"))
}

// tenth is a cost that a double cannot hold: d%7 + 0.1.
func tenth(d cost.Day) money.Amount { return u(int64(d % 7)).Add(money.MustParse("0.1")) }

// testExactSums stores amounts whose sums a double or an int64 would get
// wrong: tenths, pico-units, credits, and a total past 2⁶³ units, each as
// a day and as whole months (cost_monthly).
func testExactSums(t *testing.T, s cost.Store) {
	var ps []cost.Period
	large := money.MustParse("900000000000000000.000000000001") // 9×10¹⁷ units and a pico-unit
	for m := month("2023-01"); m < month("2024-09"); m++ {      // 20 months
		ps = append(ps, period("AWS:9", m.String(), rowOf(m.First().String(), "EC2", "JPY", "a", "web", "prod", large)))
	}
	sept := period("AWS:1", "2024-09")
	for i := range 1000 {
		d := day("2024-09-01") + cost.Day(i%30)
		sept.Rows = append(sept.Rows, rowOf(d.String(), "EC2", "USD", "a", "web", "prod", money.MustParse("0.1")),
			rowOf(d.String(), "S3", "USD", "a", "web", "prod", money.MustParse("0.000000000001")),
			rowOf(d.String(), "Credit", "USD", "a", "web", "prod", money.MustParse("-0.2")))
	}
	replace(t, s, append(ps, sept)...)
	// 1000 × (0.1 + 10⁻¹² - 0.2) billed: -99.999999999 to the pico-unit;
	// effective 1000 × (0.05 + 0 - 0.1), half a pico-unit rounding to even
	want := cost.Total{Keys: []string{}, Currency: "USD", Amounts: cost.Amounts{Billed: money.MustParse("-99.999999999"),
		Effective: u(-50), List: money.MustParse("-199.999999998")}}
	expect(t, totals(t, s, cost.Query{From: day("2024-09-01"), To: day("2024-10-01")}), want)
	want.Keys = []string{"2024-09"}
	expect(t, totals(t, s, cost.Query{From: day("2024-09-01"), To: day("2024-09-30") + 1, By: []cost.Dim{cost.DimMonth}}), want)
	twenty := cost.Total{Keys: []string{}, Currency: "JPY"}
	for range 20 {
		twenty.Add(three(large))
	}
	if twenty.Billed.String() != "18000000000000000000.00000000002" {
		t.Fatalf("20 × %s = %s", large, twenty.Billed)
	}
	jpy := []cost.Cond{{Dim: cost.DimCurrency, Values: []string{"JPY"}}}
	expect(t, totals(t, s, cost.Query{Where: jpy}), twenty)
	expect(t, totals(t, s, cost.Query{From: day("2023-01-01"), To: day("2024-09-01") - 1, Where: jpy}), twenty)
}

func testFilters(t *testing.T, s cost.Store) {
	replace(t, s, period("AWS:1", "2024-09",
		row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1),
		row("2024-09-01", "S3", "USD", "a", "web", "dev", 2),
		row("2024-09-02", "EC2", "USD", "b", "api", "prod", 4),
	))
	expect(t, totals(t, s, cost.Query{Where: []cost.Cond{{Dim: cost.DimEnv, Values: []string{"prod"}}}, By: []cost.Dim{cost.DimApp}}),
		tot(4, "USD", "api"), tot(1, "USD", "web"))
	expect(t, totals(t, s, cost.Query{Where: []cost.Cond{{Dim: cost.DimService, Values: []string{"EC2", "S3"}}, {Dim: cost.DimTeam, Values: []string{"a"}}}}),
		tot(3, "USD"))
	expect(t, totals(t, s, cost.Query{Where: []cost.Cond{{Dim: cost.DimSource, Values: []string{"nope"}}}}))
	expect(t, totals(t, s, cost.Query{From: day("2024-09-02"), To: day("2024-09-03")}), tot(4, "USD"))
	if err := s.Totals(ctx, cost.Query{By: []cost.Dim{"color"}}, func(cost.Total) error { return nil }); err == nil {
		t.Error("an unknown dimension is no error")
	}
}

func testSpan(t *testing.T, s cost.Store) {
	if _, _, ok, err := s.Span(ctx); err != nil || ok {
		t.Fatalf("empty store: ok %v, err %v", ok, err)
	}
	replace(t, s, period("AWS:1", "2024-09", row("2024-09-03", "EC2", "USD", "a", "web", "prod", 1),
		row("2024-09-17", "EC2", "USD", "a", "web", "prod", 1)))
	first, last, ok, err := s.Span(ctx)
	if err != nil || !ok || first != day("2024-09-03") || last != day("2024-09-17") {
		t.Errorf("span %s..%s ok %v err %v", first, last, ok, err)
	}
}

func testCoverage(t *testing.T, s cost.Store) {
	cov := func(d string, dim cost.Dim, m cost.Method, billed int64) cost.Coverage {
		return cost.Coverage{Day: day(d), Dim: dim, Method: m, Currency: "USD", Charges: 1, Amounts: cost.Amounts{Billed: u(billed)}}
	}
	p := period("AWS:1", "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1))
	p.Coverage = []cost.Coverage{cov("2024-09-01", cost.DimTeam, cost.ByTag, 1), cov("2024-09-02", cost.DimTeam, cost.NotFound, 2)}
	q := period("AWS:2", "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1))
	// a charge of September billed in October
	q.Coverage = []cost.Coverage{cov("2024-09-30", cost.DimTeam, cost.ByTag, 4), cov("2024-09-30", cost.DimApp, cost.ByRule, 8)}
	q.Month = month("2024-10")
	replace(t, s, p, q)
	got, err := s.Coverage(ctx, day("2024-09-01"), day("2024-10-01"))
	if err != nil {
		t.Fatal(err)
	}
	want := []cost.Coverage{
		{Dim: cost.DimTeam, Method: cost.ByTag, Currency: "USD", Charges: 2, Amounts: cost.Amounts{Billed: u(5)}},
		{Dim: cost.DimTeam, Method: cost.NotFound, Currency: "USD", Charges: 1, Amounts: cost.Amounts{Billed: u(2)}},
		{Dim: cost.DimApp, Method: cost.ByRule, Currency: "USD", Charges: 1, Amounts: cost.Amounts{Billed: u(8)}},
	}
	if !slices.Equal(got, want) {
		t.Errorf("coverage of September's days:\n got %+v\nwant %+v", got, want)
	}
	// the days of a range, not the billing periods they are in
	got, _ = s.Coverage(ctx, day("2024-09-02"), day("2024-09-30"))
	if len(got) != 1 || got[0].Billed != u(2) {
		t.Errorf("coverage of 2 to 29 September: %+v", got)
	}
	if got, _ := s.Coverage(ctx, 0, 0); len(got) != 3 {
		t.Errorf("unbounded coverage: %+v", got)
	}
	// replacing a period replaces its coverage
	p.Coverage = p.Coverage[:1]
	replace(t, s, p)
	got, _ = s.Coverage(ctx, day("2024-09-01"), day("2024-10-01"))
	if len(got) != 2 || got[0].Billed != u(5) {
		t.Errorf("coverage after replace: %+v", got)
	}
	if got, _ := s.Coverage(ctx, day("2024-10-01"), day("2025-01-01")); len(got) != 0 {
		t.Errorf("coverage of days without data: %+v", got)
	}
}

// azure makes a period of one Azure view with one row of billed and
// effective cost, its coverage one tagged charge.
func azure(view cost.View, m string, billed, effective int64) cost.Period {
	r := row(m+"-01", "VM", "EUR", "a", "web", "prod", 0)
	r.Amounts = cost.Amounts{Billed: u(billed), Effective: u(effective), List: u(billed)}
	p := cost.Period{Source: "Microsoft:1", Month: month(m), View: view, Charges: 1, Rows: []cost.Row{r}}
	p.Coverage = []cost.Coverage{{Day: r.Day, Dim: cost.DimTeam, Method: cost.ByTag, Currency: "EUR", Charges: 1, Amounts: r.Amounts}}
	return p
}

func importBatch(t *testing.T, s cost.Store, mode cost.Mode, ps ...cost.Period) []cost.Prior {
	t.Helper()
	files := []cost.FileInfo{{Name: fmt.Sprintf("f%d.csv", time.Now().UnixNano()), SHA256: fmt.Sprint(time.Now().UnixNano())}}
	priors, err := s.ImportBatch(ctx, &cost.Batch{Files: files, Periods: ps}, mode)
	if err != nil {
		t.Fatal(err)
	}
	return priors
}

func amounts(billed, effective, list int64, keys ...string) cost.Total {
	if keys == nil {
		keys = []string{}
	}
	return cost.Total{Keys: keys, Currency: "EUR", Amounts: cost.Amounts{Billed: u(billed), Effective: u(effective), List: u(list)}}
}

// testViews stores the two Azure views of a period, in one batch or one
// after the other: billed and list cost come from the actual view,
// effective cost from the amortized one, never added; each replaces only
// itself; a full view replaces both.
func testViews(t *testing.T, s cost.Store) {
	sept := cost.Query{From: day("2024-09-01"), To: day("2024-10-01")}
	// the amortized view alone gives all three
	importBatch(t, s, cost.Replace, azure(cost.ViewAmortized, "2024-09", 70, 90))
	expect(t, totals(t, s, sept), amounts(70, 90, 70))
	// the actual view joins it without replacing it
	priors := importBatch(t, s, cost.Replace, azure(cost.ViewActual, "2024-09", 100, 100))
	if len(priors) != 0 {
		t.Errorf("the actual view replaced %+v", priors)
	}
	expect(t, totals(t, s, sept), amounts(100, 90, 100))
	expect(t, totals(t, s, cost.Query{}), amounts(100, 90, 100)) // whole months read cost_monthly
	if cov, _ := s.Coverage(ctx, 0, 0); len(cov) != 1 || cov[0].Charges != 1 || cov[0].Billed != u(100) || cov[0].Effective != u(90) {
		t.Errorf("coverage of two views: %+v", cov)
	}
	// a restated amortized view replaces the amortized view only
	priors = importBatch(t, s, cost.Replace, azure(cost.ViewAmortized, "2024-09", 75, 95))
	if len(priors) != 1 || priors[0].View != cost.ViewAmortized || priors[0].Charges != 1 ||
		!slices.EqualFunc(priors[0].Totals, []cost.Total{amounts(70, 90, 70)}, totalEqual) || priors[0].ImportedAt.IsZero() || len(priors[0].Files) != 1 {
		t.Errorf("replaced: %+v", priors)
	}
	expect(t, totals(t, s, sept), amounts(100, 95, 100))
	expect(t, totals(t, s, cost.Query{By: []cost.Dim{cost.DimPeriod}}), amounts(100, 95, 100, "2024-09"))
	// both in one batch, for October
	importBatch(t, s, cost.Replace, azure(cost.ViewActual, "2024-10", 10, 10), azure(cost.ViewAmortized, "2024-10", 5, 8))
	expect(t, totals(t, s, cost.Query{From: day("2024-10-01"), To: day("2024-11-01")}), amounts(10, 8, 10))
	// a full view replaces both
	full := azure(cost.ViewFull, "2024-09", 50, 40)
	priors = importBatch(t, s, cost.Replace, full)
	if len(priors) != 2 || priors[0].View != cost.ViewActual || priors[1].View != cost.ViewAmortized {
		t.Errorf("a full view replaced %+v", priors)
	}
	expect(t, totals(t, s, sept), amounts(50, 40, 50))
	// and an Azure view replaces a full view
	priors = importBatch(t, s, cost.Replace, azure(cost.ViewActual, "2024-09", 100, 100))
	if len(priors) != 1 || priors[0].View != cost.ViewFull {
		t.Errorf("an actual view replaced %+v", priors)
	}
	expect(t, totals(t, s, sept), amounts(100, 100, 100))
}

// testAppend adds parts to a stored view: they add up, the part of unknown
// view joins the one view stored, a file imported before is refused, and
// nothing is decided when both Azure views are stored.
func testAppend(t *testing.T, s cost.Store) {
	sept := cost.Query{From: day("2024-09-01"), To: day("2024-10-01")}
	importBatch(t, s, cost.Replace, azure(cost.ViewFull, "2024-09", 1, 1))
	// an actual part makes the full view stored actual
	priors := importBatch(t, s, cost.Append, azure(cost.ViewActual, "2024-09", 2, 2))
	if len(priors) != 1 || priors[0].View != cost.ViewActual || priors[0].Charges != 1 ||
		!slices.EqualFunc(priors[0].Totals, []cost.Total{amounts(1, 1, 1)}, totalEqual) {
		t.Errorf("appended to %+v", priors)
	}
	expect(t, totals(t, s, sept), amounts(3, 3, 3))
	expect(t, totals(t, s, cost.Query{}), amounts(3, 3, 3))
	// a part without commitments joins it
	importBatch(t, s, cost.Append, azure(cost.ViewFull, "2024-09", 4, 4))
	expect(t, totals(t, s, sept), amounts(7, 7, 7))
	if cov, _ := s.Coverage(ctx, 0, 0); len(cov) != 1 || cov[0].Charges != 3 || cov[0].Billed != u(7) {
		t.Errorf("coverage after appending: %+v", cov)
	}
	// the amortized view is appended as a view of its own
	importBatch(t, s, cost.Append, azure(cost.ViewAmortized, "2024-09", 0, 6))
	expect(t, totals(t, s, sept), amounts(7, 6, 7))
	// now a part without commitments cannot tell which it joins
	b := &cost.Batch{Files: []cost.FileInfo{{Name: "part.csv", SHA256: "part"}}, Periods: []cost.Period{azure(cost.ViewFull, "2024-09", 1, 1)}}
	if _, err := s.ImportBatch(ctx, b, cost.Append); !errors.Is(err, cost.ErrAmbiguousView) {
		t.Errorf("a part of unknown view beside both views: %v", err)
	}
	// a file imported before is refused, and nothing of its batch stays
	b = &cost.Batch{Files: []cost.FileInfo{{Name: "once.csv", SHA256: "once"}}, Periods: []cost.Period{azure(cost.ViewActual, "2024-11", 1, 1)}}
	if _, err := s.ImportBatch(ctx, b, cost.Append); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportBatch(ctx, b, cost.Append); !errors.Is(err, cost.ErrAlreadyImported) || !strings.Contains(err.Error(), "once.csv") {
		t.Errorf("appending a file twice: %v", err)
	}
	expect(t, totals(t, s, cost.Query{From: day("2024-11-01"), To: day("2024-12-01")}), amounts(1, 1, 1))
	// replacing it again is no double count
	if _, err := s.ImportBatch(ctx, b, cost.Replace); err != nil {
		t.Fatal(err)
	}
	expect(t, totals(t, s, cost.Query{From: day("2024-11-01"), To: day("2024-12-01")}), amounts(1, 1, 1))
}

func totalEqual(a, b cost.Total) bool {
	return slices.Equal(a.Keys, b.Keys) && a.Currency == b.Currency && a.Amounts == b.Amounts
}

func testImports(t *testing.T, s cost.Store) {
	b := &cost.Batch{
		Files:   []cost.FileInfo{{Name: "a.csv", SHA256: "aaa", Format: cost.FormatFOCUS, Charges: 3}, {Name: "b.csv", SHA256: "bbb", Format: cost.FormatFOCUS}},
		Periods: []cost.Period{period("AWS:1", "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1))},
	}
	if _, err := s.ImportBatch(ctx, b, cost.Replace); err != nil {
		t.Fatal(err)
	}
	for sha, want := range map[string]bool{"aaa": true, "bbb": true, "ccc": false} {
		if got, err := s.Imported(ctx, sha); err != nil || got != want {
			t.Errorf("Imported(%s) = %v, %v", sha, got, err)
		}
	}
	replace(t, s, period("AWS:2", "2024-09"))
	imps, err := s.Imports(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(imps) != 2 || !slices.Equal(imps[1].Files, b.Files) || !slices.Equal(imps[1].Periods, []string{"AWS:1 2024-09"}) ||
		imps[1].Charges != 3 || imps[0].ID <= imps[1].ID || imps[1].Time.IsZero() {
		t.Errorf("imports: %+v", imps)
	}
	if imps, _ := s.Imports(ctx, 1); len(imps) != 1 {
		t.Errorf("limit 1: %d imports", len(imps))
	}
}

func testAlerts(t *testing.T, s cost.Store) {
	at := time.Date(2024, 9, 20, 8, 0, 0, 0, time.UTC)
	a := cost.Alert{Budget: "web", Month: month("2024-09"), Threshold: 80, Kind: cost.AlertActual, Currency: "EUR",
		Amount: u(100), Actual: money.MustParse("80.000000000001"), Forecast: money.MustParse("-0.5"), Notify: []string{"finops"}, CreatedAt: at}
	for i, want := range []bool{true, false} {
		if created, err := s.PutAlert(ctx, a); err != nil || created != want {
			t.Fatalf("put %d: created %v, err %v", i, created, err)
		}
	}
	f := a
	f.Kind = cost.AlertForecast
	if created, _ := s.PutAlert(ctx, f); !created {
		t.Error("a forecast alert of the same threshold is another alert")
	}
	o := a
	o.Month = month("2024-10")
	o.Notify = nil
	if created, _ := s.PutAlert(ctx, o); !created {
		t.Error("the same alert in another month is another alert")
	}
	all, err := s.Alerts(ctx, 0, false)
	if err != nil || len(all) != 3 {
		t.Fatalf("alerts: %+v, %v", all, err)
	}
	got := all[0]
	if got.ID == 0 || got.Budget != "web" || got.Month != a.Month || got.Threshold != 80 || got.Kind != cost.AlertActual ||
		got.Amount != a.Amount || got.Actual != a.Actual || got.Forecast != a.Forecast || !got.CreatedAt.Equal(at) || !slices.Equal(got.Notify, []string{"finops"}) || got.NotifiedAt != nil {
		t.Errorf("alert round trip: %+v", got)
	}
	if sept, _ := s.Alerts(ctx, month("2024-09"), false); len(sept) != 2 {
		t.Errorf("September: %d alerts", len(sept))
	}
	if err := s.MarkNotified(ctx, got.ID, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	pending, _ := s.Alerts(ctx, 0, true)
	if len(pending) != 2 || slices.ContainsFunc(pending, func(p cost.Alert) bool { return p.ID == got.ID }) {
		t.Errorf("pending: %+v", pending)
	}
	all, _ = s.Alerts(ctx, 0, false)
	if all[0].NotifiedAt == nil || !all[0].NotifiedAt.Equal(at.Add(time.Minute)) {
		t.Errorf("notified at %v", all[0].NotifiedAt)
	}
}

func testConcurrent(t *testing.T, s cost.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			src := fmt.Sprintf("AWS:%d", i)
			for range 3 {
				b := &cost.Batch{Files: []cost.FileInfo{{Name: src, SHA256: src}},
					Periods: []cost.Period{period(src, "2024-09", row("2024-09-01", "EC2", "USD", "a", "web", "prod", 1))}}
				if _, err := s.ImportBatch(ctx, b, cost.Replace); err != nil {
					errs <- err
					return
				}
				if err := s.Totals(ctx, cost.Query{By: []cost.Dim{cost.DimSource}}, func(cost.Total) error { return nil }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	expect(t, totals(t, s, cost.Query{}), tot(8, "USD"))
}
