package api

import (
	"time"

	"github.com/socle-dev/socle/internal/money"
)

// The wire types of the FinOps endpoints (/api/v1/costs/…). Amounts are
// money.Amount: exact decimals written as strings, never floats.

// Day is a calendar day, 2024-09-30.
type Day string

// Month is a calendar month, 2024-09.
type Month string

// CostAmounts are a cost as billed, after discounts (effective) and at
// list price, in one currency.
type CostAmounts struct {
	Billed    money.Amount `json:"billed"`
	Effective money.Amount `json:"effective"`
	List      money.Amount `json:"list"`
}

// CostTotal is one group of costs in one currency.
type CostTotal struct {
	// Keys are the values of the grouping dimensions, in their order.
	Keys     []string `json:"keys,omitempty"`
	Currency string   `json:"currency"`
	CostAmounts
}

// CostCoverage is how much of the costs a dimension's allocation covers,
// and by which method.
type CostCoverage struct {
	Dim      string `json:"dim"`
	Method   string `json:"method"`
	Currency string `json:"currency"`
	Charges  int64  `json:"charges"`
	CostAmounts
}

// CostFileInfo is one imported file.
type CostFileInfo struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Format string `json:"format"`
	// View is the Azure view the file was recognised as, from its rows.
	View    string `json:"view,omitempty"`
	Charges int64  `json:"charges"`
}

// CostImportResult is what one imported batch brought in.
type CostImportResult struct {
	Files   []CostFileInfo      `json:"files"`
	Periods []CostPeriodSummary `json:"periods"`
	// Mode is how the batch was imported: replace or append.
	Mode string `json:"mode"`
	// Replaced is what was stored for the batch's periods and is gone;
	// AppendedTo what the batch was added to.
	Replaced   []CostPrior `json:"replaced,omitempty"`
	AppendedTo []CostPrior `json:"appendedTo,omitempty"`
	// Alerts are the budget alerts the import raised.
	Alerts []CostAlert `json:"alerts,omitempty"`
}

// CostPeriodSummary is one (source, billing period, view) of an import.
type CostPeriodSummary struct {
	Source   string         `json:"source"`
	Period   Month          `json:"period"`
	View     string         `json:"view,omitempty"`
	Charges  int64          `json:"charges"`
	Rows     int            `json:"rows"`
	Totals   []CostTotal    `json:"totals"`
	Coverage []CostCoverage `json:"coverage"`
}

// CostPrior is what was stored for a (source, billing period, view) before
// an import replaced it or added to it.
type CostPrior struct {
	Source     string      `json:"source"`
	Period     Month       `json:"period"`
	View       string      `json:"view,omitempty"`
	Charges    int64       `json:"charges"`
	Totals     []CostTotal `json:"totals"`
	ImportedAt time.Time   `json:"importedAt"`
	Files      []string    `json:"files"`
}

// CostImportRecord is one imported batch as socle remembers it.
type CostImportRecord struct {
	ID      int64          `json:"id"`
	Time    time.Time      `json:"time"`
	Files   []CostFileInfo `json:"files"`
	Periods []string       `json:"periods"` // "source period"
	Charges int64          `json:"charges"`
}

// CostAlert is a budget threshold crossed.
type CostAlert struct {
	ID     int64  `json:"id"`
	Budget string `json:"budget"`
	Month  Month  `json:"month"`
	// Threshold is a percentage of the budget's amount.
	Threshold float64 `json:"threshold"`
	// Kind is actual (the spend crossed it) or forecast.
	Kind       string       `json:"kind"`
	Currency   string       `json:"currency"`
	Amount     money.Amount `json:"amount"`
	Actual     money.Amount `json:"actual"`
	Forecast   money.Amount `json:"forecast"`
	Notify     []string     `json:"notify,omitempty"`
	CreatedAt  time.Time    `json:"createdAt"`
	NotifiedAt *time.Time   `json:"notifiedAt,omitempty"`
}

// CostReport is costs grouped by dimensions, with the allocation coverage
// of the billing periods it spans.
type CostReport struct {
	From Day `json:"from"`
	// To is the last day, inclusive.
	To Day      `json:"to"`
	By []string `json:"by"`
	// Rows, per currency, the highest effective cost first.
	Rows []CostReportRow `json:"rows"`
	// Totals per currency: costs in different currencies are never added.
	Totals   []CostTotal    `json:"totals"`
	Coverage []CostCoverage `json:"coverage"`
}

// CostReportRow is one group of a report, by dimension.
type CostReportRow struct {
	Keys     map[string]string `json:"keys"`
	Currency string            `json:"currency"`
	CostAmounts
}

// CostBudgetReport is every budget's standing in a month.
type CostBudgetReport struct {
	Month Month `json:"month"`
	AsOf  Day   `json:"asOf"`
	// Currencies are those of the month's costs, whatever their owner.
	Currencies []string           `json:"currencies"`
	Budgets    []CostBudgetStatus `json:"budgets"`
	Alerts     []CostAlert        `json:"alerts"`
}

// CostBudgetStatus is a budget's standing in a month.
type CostBudgetStatus struct {
	Name string `json:"name"`
	// Scope is team, app, env, zone; empty: the whole platform.
	Scope      map[string]string `json:"scope"`
	Month      Month             `json:"month"`
	Currency   string            `json:"currency"`
	Amount     money.Amount      `json:"amount"`
	Thresholds []float64         `json:"thresholds"`
	// Actual is the effective cost of the month up to AsOf, the last day
	// with cost data; Forecast the month-end spend.
	Actual   money.Amount `json:"actual"`
	AsOf     Day          `json:"asOf"`
	Forecast money.Amount `json:"forecast"`
	// Status is ok, warning, over, or other-currency.
	Status string `json:"status"`
	// OtherCurrencies are the costs in the scope in other currencies,
	// which the budget does not count.
	OtherCurrencies []CostTotal `json:"otherCurrencies,omitempty"`
	// Daily is the effective cost of each day of the month up to AsOf.
	Daily  []money.Amount `json:"daily"`
	Notify []string       `json:"notify,omitempty"`
}

// CostAnomalyReport lists anomalies, the largest impact first.
type CostAnomalyReport struct {
	From Day `json:"from"`
	// To is the last day, inclusive.
	To        Day           `json:"to"`
	Anomalies []CostAnomaly `json:"anomalies"`
}

// CostAnomaly is a day whose cost left its band.
type CostAnomaly struct {
	Day      Day    `json:"day"`
	Dim      string `json:"dim"`
	Value    string `json:"value"`
	Currency string `json:"currency"`
	// Cost is the effective cost of the day; Expected the baseline (the
	// median of the same weekday); Lower and Upper the band.
	Cost     money.Amount `json:"cost"`
	Expected money.Amount `json:"expected"`
	Lower    money.Amount `json:"lower"`
	Upper    money.Amount `json:"upper"`
	// Impact is Cost - Expected: what the anomaly cost (or saved).
	Impact money.Amount `json:"impact"`
	// Direction is spike or drop.
	Direction string `json:"direction"`
	// Baseline is how many days the baseline has.
	Baseline int `json:"baseline"`
}
