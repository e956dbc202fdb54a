package cost_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
)

// TestReportCoverageMatchesTotals reports the FinOps Foundation's sample,
// whose October billing period holds a charge of September: the coverage
// lines describe exactly the charges the report sums, so their billed
// costs add up to its total, per dimension and currency.
func TestReportCoverageMatchesTotals(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, mustTime("2024-10-05T00:00:00Z"))
	ctx := context.Background()
	if _, err := s.Import(ctx, []cost.File{{Path: sample(t)}}, cost.Replace); err != nil {
		t.Fatal(err)
	}
	for _, month := range []string{"2024-09", "2024-10"} {
		from, to, err := cost.ParseRange(month, "", "")
		if err != nil {
			t.Fatal(err)
		}
		rep, err := s.Report(ctx, cost.ReportRequest{By: []cost.Dim{cost.DimTeam, cost.DimEnv}, From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		total := map[string]money.Amount{}
		for _, tt := range rep.Totals {
			total[tt.Currency] = tt.Billed
		}
		covered := map[string]money.Amount{}
		for _, c := range rep.Coverage {
			k := string(c.Dim) + " " + c.Currency
			covered[k] = covered[k].Add(c.Billed)
		}
		if len(covered) == 0 && len(total) > 0 {
			t.Errorf("%s: a report with costs and no coverage", month)
		}
		for k, v := range covered {
			_, cur, _ := strings.Cut(k, " ")
			if v != total[cur] {
				t.Errorf("%s: coverage of %s sums to %s billed, the report's total is %s", month, k, v, total[cur])
			}
		}
		var text bytes.Buffer
		rep.WriteText(&text)
		if month == "2024-09" && !strings.Contains(text.String(), "TOTAL                     USD        20.52") {
			t.Errorf("September's report:\n%s", text.String())
		}
	}
}
