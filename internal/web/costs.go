package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
)

type costsView struct {
	Month  string
	Report *cost.Report
	// ReportError says why there is no report (often: no billing data
	// imported yet).
	ReportError  string
	ByTeam       []Chart
	Rows         []costRow
	Budgets      []budgetView
	BudgetsError string
	Anomalies    *cost.AnomalyReport
}

// costRow is a row of the report by team and environment.
type costRow struct {
	Team, Env string
	cost.ReportRow
}

type budgetView struct {
	cost.BudgetStatus
	Chart Chart
}

// Spent is the share of the budget used so far, for display.
func (b budgetView) Spent() float64 { return cost.Percent(b.Actual, b.Amount) / 100 }

func (p *portal) costsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	v := costsView{Month: r.URL.Query().Get("month")}
	q := nonEmpty(url.Values{"month": {v.Month}, "by": {"team,env"}})
	var rep cost.Report
	if err := s.api.Get(ctx, "/api/v1/costs/report?"+q.Encode(), &rep); err != nil {
		v.ReportError = err.Error()
	} else {
		v.Report = &rep
		if v.Month == "" {
			v.Month = rep.From.Month().String()
		}
		v.ByTeam = costCharts(&rep)
		for _, row := range rep.Rows {
			v.Rows = append(v.Rows, costRow{Team: orNone(row.Keys[cost.DimTeam]), Env: orNone(row.Keys[cost.DimEnv]), ReportRow: row})
		}
	}
	var br cost.BudgetReport
	if err := s.api.Get(ctx, "/api/v1/costs/budgets?"+nonEmpty(url.Values{"month": {v.Month}}).Encode(), &br); err != nil {
		v.BudgetsError = err.Error()
	} else {
		for _, b := range br.Budgets {
			v.Budgets = append(v.Budgets, budgetView{BudgetStatus: b, Chart: burnChart(b)})
		}
	}
	var an cost.AnomalyReport
	if s.api.Get(ctx, "/api/v1/costs/anomalies", &an) == nil {
		v.Anomalies = &an
	}
	p.render(w, r, http.StatusOK, "costs", s, "Costs", v)
}

// costCharts draws, per currency, the effective cost of each team with
// one bar per environment.
func costCharts(rep *cost.Report) []Chart {
	var charts []Chart
	var currencies []string
	for _, row := range rep.Rows {
		if !slices.Contains(currencies, row.Currency) {
			currencies = append(currencies, row.Currency)
		}
	}
	for _, cur := range currencies {
		var teams, envs []string
		sums := map[[2]string]money.Amount{}
		for _, row := range rep.Rows {
			if row.Currency != cur {
				continue
			}
			t, e := orNone(row.Keys[cost.DimTeam]), orNone(row.Keys[cost.DimEnv])
			if !slices.Contains(teams, t) {
				teams = append(teams, t)
			}
			if !slices.Contains(envs, e) {
				envs = append(envs, e)
			}
			k := [2]string{t, e}
			sums[k] = sums[k].Add(row.Effective)
		}
		slices.Sort(envs)
		c := Chart{Title: "Effective cost by team and environment (" + cur + ")", Kind: Bars, Labels: teams, LabelName: "Team",
			Format: func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }, Width: 720, Height: 260}
		for _, e := range envs {
			s := Series{Name: e, Values: make([]float64, len(teams))}
			for i, t := range teams {
				s.Values[i] = sums[[2]string{t, e}].Float64() // drawn, not computed with
			}
			c.Series = append(c.Series, s)
		}
		charts = append(charts, c)
	}
	return charts
}

// burnChart draws a budget's spend through the month against its amount:
// the running total is exact, its points floats only to be drawn.
func burnChart(b cost.BudgetStatus) Chart {
	labels := make([]string, len(b.Daily))
	sum := make([]float64, len(b.Daily))
	var total money.Amount
	for i, d := range b.Daily {
		total = total.Add(d)
		labels[i], sum[i] = strconv.Itoa(i+1), total.Float64()
	}
	return Chart{Title: b.Name + ": spend so far", Kind: Lines, Labels: labels, LabelName: "Day of the month", Series: []Series{{Name: "spent", Values: sum}},
		Limit: b.Amount.Float64(), LimitLabel: "budget " + formatMoney(b.Amount, b.Currency), Width: 420, Height: 180,
		Format: func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
