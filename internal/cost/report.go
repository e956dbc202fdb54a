package cost

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// ReportRequest asks for costs grouped by some dimensions.
type ReportRequest struct {
	By []Dim
	// From is the first day, To the day after the last.
	From, To Day
	Where    []Cond
}

// Report is costs grouped by dimensions, with the allocation coverage of
// the billing periods it spans.
type Report struct {
	From Day   `json:"from"`
	To   Day   `json:"to"` // the last day, inclusive
	By   []Dim `json:"by"`
	// Rows, per currency, the highest effective cost first.
	Rows []ReportRow `json:"rows"`
	// Totals per currency: costs in different currencies are never added.
	Totals   []Total    `json:"totals"`
	Coverage []Coverage `json:"coverage"`
}

// ReportRow is one group of a report.
type ReportRow struct {
	Keys     map[Dim]string `json:"keys"`
	Currency string         `json:"currency"`
	Amounts
}

// Report answers a report request; without a range, it reports the month
// of the last day with data.
func (s *Service) Report(ctx context.Context, r ReportRequest) (*Report, error) {
	var err error
	if r.From, r.To, err = s.orLastMonth(ctx, r.From, r.To); err != nil {
		return nil, err
	}
	if r.To <= r.From {
		return nil, fmt.Errorf("a report needs a range of days, from before to")
	}
	by := slices.DeleteFunc(slices.Clone(r.By), func(d Dim) bool { return d == DimCurrency })
	rep := &Report{From: r.From, To: r.To - 1, By: by, Rows: []ReportRow{}, Totals: []Total{}}
	totals := map[string]*Amounts{}
	err = s.Store.Totals(ctx, Query{From: r.From, To: r.To, Where: r.Where, By: by}, func(t Total) error {
		row := ReportRow{Keys: make(map[Dim]string, len(by)), Currency: t.Currency, Amounts: t.Amounts}
		for i, d := range by {
			row.Keys[d] = t.Keys[i]
		}
		rep.Rows = append(rep.Rows, row)
		a := totals[t.Currency]
		if a == nil {
			a = &Amounts{}
			totals[t.Currency] = a
		}
		a.Add(t.Amounts)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(rep.Rows, func(a, b ReportRow) int {
		return cmp.Or(cmp.Compare(a.Currency, b.Currency), b.Effective.Cmp(a.Effective), b.Billed.Cmp(a.Billed))
	})
	for cur, a := range totals {
		rep.Totals = append(rep.Totals, Total{Currency: cur, Amounts: *a})
	}
	slices.SortFunc(rep.Totals, func(a, b Total) int { return cmp.Compare(a.Currency, b.Currency) })
	if len(r.Where) == 0 {
		if rep.Coverage, err = s.Store.Coverage(ctx, r.From, r.To); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// WriteText writes the report as an aligned table for people.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Costs from %s to %s\n\n", r.From, r.To)
	var head []string
	for _, d := range r.By {
		head = append(head, strings.ToUpper(string(d)))
	}
	n := len(head)
	t := newTable("", append(head, "CURRENCY", "BILLED", "EFFECTIVE", "LIST")...).right(n+1, n+2, n+3)
	for _, row := range r.Rows {
		var cells []string
		for _, d := range r.By {
			cells = append(cells, orDash(row.Keys[d]))
		}
		t.add(append(cells, row.Currency, row.Billed.Display(), row.Effective.Display(), row.List.Display())...)
	}
	for _, tot := range r.Totals {
		cells := make([]string, n)
		if n > 0 {
			cells[0] = "TOTAL"
		}
		t.add(append(cells, tot.Currency, tot.Billed.Display(), tot.Effective.Display(), tot.List.Display())...)
	}
	if err := t.write(w); err != nil {
		return err
	}
	if len(r.Rows) == 0 {
		fmt.Fprintln(w, "(no costs in this range)")
	}
	writeCoverage(w, r.Coverage)
	return nil
}

// writeCoverage sums up, per dimension and currency, the share of charges
// each allocation method covered and their billed cost (a share of cost
// would pass 100% when credits are negative).
func writeCoverage(w io.Writer, cov []Coverage) {
	if len(cov) == 0 {
		return
	}
	type dc struct {
		dim Dim
		cur string
	}
	totals := map[dc]int64{}
	parts := map[dc][]Coverage{}
	var order []dc
	for _, c := range cov {
		k := dc{c.Dim, c.Currency}
		if _, ok := parts[k]; !ok {
			order = append(order, k)
		}
		totals[k] += c.Charges
		parts[k] = append(parts[k], c)
	}
	slices.SortFunc(order, func(a, b dc) int {
		return cmp.Or(cmp.Compare(dimOrder(a.dim), dimOrder(b.dim)), cmp.Compare(a.cur, b.cur))
	})
	fmt.Fprintln(w, "\nAllocation coverage (share of charges, and their billed cost):")
	for _, k := range order {
		var line []string
		for _, c := range parts[k] {
			share := 0.0
			if t := totals[k]; t != 0 {
				share = 100 * float64(c.Charges) / float64(t)
			}
			line = append(line, fmt.Sprintf("%s %.1f%% (%s)", c.Method, share, c.Billed.Display()))
		}
		fmt.Fprintf(w, "  %-5s %s: %s\n", k.dim, k.cur, strings.Join(line, ", "))
	}
}

// WriteCSV writes the report's rows as CSV.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := make([]string, 0, len(r.By)+4)
	for _, d := range r.By {
		head = append(head, string(d))
	}
	cw.Write(append(head, "currency", "billed", "effective", "list"))
	for _, row := range r.Rows {
		rec := make([]string, 0, len(head)+4)
		for _, d := range r.By {
			rec = append(rec, row.Keys[d])
		}
		cw.Write(append(rec, row.Currency, row.Billed.String(), row.Effective.String(), row.List.String()))
	}
	cw.Flush()
	return cw.Error()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// count writes a number of charges (never negative) for people,
// thousands separated.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// WriteText writes what an import brought in, for people: the files, the
// periods, what was replaced or added to, coverage and alerts.
func (r *ImportResult) WriteText(w io.Writer) error {
	for _, f := range r.Files {
		kind := string(f.Format)
		if f.View != ViewFull {
			kind += ", " + string(f.View) + " cost"
		}
		fmt.Fprintf(w, "Imported %s (%s, %s charges)\n", f.Name, kind, count(f.Charges))
	}
	views := slices.ContainsFunc(r.Periods, func(p PeriodSummary) bool { return p.View != ViewFull })
	head := []string{"SOURCE", "PERIOD", "CHARGES", "CURRENCY", "BILLED", "EFFECTIVE", "LIST"}
	if views {
		head = slices.Insert(head, 2, "VIEW")
	}
	tab := newTable("  ", head...)
	if views {
		tab.right(3, 5, 6, 7)
	} else {
		tab.right(2, 4, 5, 6)
	}
	// the charges of a period's amortized view are those of its actual
	// view, when the import has both: count them once
	actual := map[string]bool{}
	for _, p := range r.Periods {
		if p.View == ViewActual {
			actual[p.Source+" "+p.Period.String()] = true
		}
	}
	var cov []Coverage
	for _, p := range r.Periods {
		if !(p.View == ViewAmortized && actual[p.Source+" "+p.Period.String()]) {
			cov = append(cov, p.Coverage...)
		}
		for _, t := range p.Totals {
			cells := []string{p.Source, p.Period.String(), strconv.FormatInt(p.Charges, 10), t.Currency, t.Billed.Display(), t.Effective.Display(), t.List.Display()}
			if views {
				cells = slices.Insert(cells, 2, orDash(string(p.View)))
			}
			tab.add(cells...)
		}
	}
	if err := tab.write(w); err != nil {
		return err
	}
	for _, p := range r.Replaced {
		fmt.Fprintf(w, "Replaced what was stored for %s: %s.\n", p.what(), p.summary())
	}
	if len(r.Replaced) > 0 {
		fmt.Fprintln(w, "  (A part of a multi-part export? Import all its parts together, from one directory, or add it with --append.)")
	}
	for _, p := range r.AppendedTo {
		fmt.Fprintf(w, "Added to what was stored for %s: %s.\n", p.what(), p.summary())
	}
	writeCoverage(w, mergeCoverage(cov))
	for _, a := range r.Alerts {
		fmt.Fprintf(w, "Alert: %s\n", a.Message())
	}
	return nil
}

// what names the period of p for people.
func (p Prior) what() string {
	s := p.Source + " " + p.Period.String()
	if p.View != ViewFull {
		s += " (" + string(p.View) + " cost)"
	}
	return s
}

// summary says what p held and where it came from, for people.
func (p Prior) summary() string {
	s := fmt.Sprintf("%s charges, %s", count(p.Charges), totalsString(p.Totals))
	if !p.ImportedAt.IsZero() {
		s += ", imported " + p.ImportedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	if len(p.Files) > 0 {
		s += " from " + strings.Join(p.Files, ", ")
	}
	return s
}

// mergeCoverage adds up coverage of several periods.
func mergeCoverage(cs []Coverage) []Coverage {
	type k struct {
		dim      Dim
		method   Method
		currency string
	}
	m := map[k]*Coverage{}
	var out []Coverage
	for _, c := range cs {
		key := k{c.Dim, c.Method, c.Currency}
		if m[key] == nil {
			out = append(out, Coverage{Dim: c.Dim, Method: c.Method, Currency: c.Currency})
			m[key] = &out[len(out)-1]
		}
	}
	// pointers into out are stable now that it no longer grows
	for i := range out {
		m[k{out[i].Dim, out[i].Method, out[i].Currency}] = &out[i]
	}
	for _, c := range cs {
		t := m[k{c.Dim, c.Method, c.Currency}]
		t.Charges += c.Charges
		t.Amounts.Add(c.Amounts)
	}
	SortCoverage(out)
	return out
}
