package cost

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/spec"
)

// AlertKind says whether an alert is about spend so far or spend forecast
// for the month's end.
type AlertKind string

// The kinds of budget alert.
const (
	AlertActual   AlertKind = "actual"
	AlertForecast AlertKind = "forecast"
)

// Alert is a budget threshold crossed. It is recorded once per (budget,
// month, threshold, kind), before it is handed to the notifier, so that an
// alert whose notification failed is sent again rather than lost.
type Alert struct {
	ID        int64        `json:"id"`
	Budget    string       `json:"budget"`
	Month     Month        `json:"month"`
	Threshold float64      `json:"threshold"` // percent of the amount
	Kind      AlertKind    `json:"kind"`
	Currency  string       `json:"currency"`
	Amount    money.Amount `json:"amount"`
	Actual    money.Amount `json:"actual"`
	Forecast  money.Amount `json:"forecast"`
	// Notify names the notification targets of the budget.
	Notify     []string   `json:"notify,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	NotifiedAt *time.Time `json:"notifiedAt,omitempty"`
}

// Message says what the alert means, for people.
func (a Alert) Message() string {
	if a.Kind == AlertForecast {
		return fmt.Sprintf("budget %s: %s spend is forecast at %s %s, %.0f%% of %s %s", a.Budget, a.Month,
			a.Forecast.Display(), a.Currency, a.Threshold, a.Amount.Display(), a.Currency)
	}
	return fmt.Sprintf("budget %s: %s spend reached %s %s, %.0f%% of %s %s", a.Budget, a.Month,
		a.Actual.Display(), a.Currency, a.Threshold, a.Amount.Display(), a.Currency)
}

// Notifier delivers budget alerts: the platform's webhooks (event
// budget.alert) to the targets the alert names. Notify is called again for
// an alert whose earlier call failed.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// StatusOtherCurrency is the status of a budget whose scope has costs in
// the month only in other currencies than its own.
const StatusOtherCurrency = "other-currency"

// defaultThresholds apply to a budget that names none.
var defaultThresholds = []float64{80, 100}

// BudgetStatus is a budget's standing in a month.
type BudgetStatus struct {
	Name       string            `json:"name"`
	Scope      map[string]string `json:"scope"` // team, app, env, zone; empty: the whole platform
	Month      Month             `json:"month"`
	Currency   string            `json:"currency"`
	Amount     money.Amount      `json:"amount"`
	Thresholds []float64         `json:"thresholds"`
	// Actual is the effective cost of the month up to AsOf, the last day
	// with cost data.
	Actual money.Amount `json:"actual"`
	AsOf   Day          `json:"asOf"`
	// Forecast is the month-end spend: Actual plus the days left at the
	// average of the last seven days, computed exactly and rounded half
	// to even to a pico-unit (10⁻¹²).
	Forecast money.Amount `json:"forecast"`
	// Status is ok, warning (a threshold below 100% crossed, or the
	// forecast over the amount), over, or other-currency: the month has no
	// cost in the budget's currency in its scope, only costs in others.
	Status string `json:"status"`
	// OtherCurrencies are the effective costs of the month up to AsOf in
	// the budget's scope in other currencies: socle never converts
	// currencies, so the budget does not count them.
	OtherCurrencies []Total `json:"otherCurrencies,omitempty"`
	// Daily is the effective cost of each day of the month up to AsOf, for
	// burn-down charts.
	Daily  []money.Amount `json:"daily"`
	Notify []string       `json:"notify,omitempty"`
}

// BudgetReport is every budget's standing in a month.
type BudgetReport struct {
	Month Month `json:"month"`
	AsOf  Day   `json:"asOf"`
	// Currencies are those of the month's costs, whatever their owner.
	Currencies []string       `json:"currencies"`
	Budgets    []BudgetStatus `json:"budgets"`
	Alerts     []Alert        `json:"alerts"`
}

// Budgets returns the budgets' standing in a month; a zero month means the
// month of the last day with data.
func (s *Service) Budgets(ctx context.Context, m Month) (*BudgetReport, error) {
	if m == 0 {
		_, last, ok, err := s.Store.Span(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			m = last.Month()
		} else {
			m = DayOf(s.now()).Month()
		}
	}
	st, asOf, currencies, err := s.budgetStatus(ctx, m)
	if err != nil {
		return nil, err
	}
	alerts, err := s.Store.Alerts(ctx, m, false)
	if err != nil {
		return nil, err
	}
	if alerts == nil {
		alerts = []Alert{}
	}
	return &BudgetReport{Month: m, AsOf: asOf, Currencies: currencies, Budgets: st, Alerts: alerts}, nil
}

// budgetStatus computes every budget of the repository for a month, and
// the currencies of the month's costs.
func (s *Service) budgetStatus(ctx context.Context, m Month) ([]BudgetStatus, Day, []string, error) {
	out := []BudgetStatus{}
	repo := s.repo()
	_, last, ok, err := s.Store.Span(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	asOf := m.End() - 1
	if ok && last < asOf {
		asOf = last
	}
	currencies := []string{}
	err = s.Store.Totals(ctx, Query{From: m.First(), To: asOf + 1}, func(t Total) error {
		currencies = append(currencies, t.Currency)
		return nil
	})
	if err != nil {
		return nil, 0, nil, err
	}
	if repo == nil || repo.Budgets == nil || len(repo.Budgets.Budgets) == 0 {
		return out, asOf, currencies, nil
	}
	// one query for every budget: effective cost per day and owner, from a
	// week before the month for the run rate
	type owners struct{ team, app, env, zone, currency string }
	daily := map[owners]map[Day]money.Amount{}
	err = s.Store.Totals(ctx, Query{From: m.First() - 7, To: m.End(), By: []Dim{DimDay, DimTeam, DimApp, DimEnv, DimZone}},
		func(t Total) error {
			d, err := ParseDay(t.Keys[0])
			if err != nil {
				return err
			}
			k := owners{t.Keys[1], t.Keys[2], t.Keys[3], t.Keys[4], t.Currency}
			if daily[k] == nil {
				daily[k] = map[Day]money.Amount{}
			}
			daily[k][d] = daily[k][d].Add(t.Effective)
			return nil
		})
	if err != nil {
		return nil, 0, nil, err
	}
	for _, b := range repo.Budgets.Budgets {
		series := map[Day]money.Amount{}
		inCurrency := false
		other := map[string]money.Amount{}
		for k, days := range daily {
			if !inScope(b, k.team, k.app, k.env, k.zone) {
				continue
			}
			if k.currency != b.Currency {
				for d, v := range days {
					if d >= m.First() && d <= asOf {
						other[k.currency] = other[k.currency].Add(v)
					}
				}
				continue
			}
			for d, v := range days {
				series[d] = series[d].Add(v)
				inCurrency = inCurrency || d >= m.First() && d <= asOf
			}
		}
		st, err := evaluateBudget(b, m, asOf, series)
		if err != nil {
			return nil, 0, nil, err
		}
		for cur, sum := range other {
			st.OtherCurrencies = append(st.OtherCurrencies, Total{Currency: cur, Amounts: Amounts{Effective: sum}})
		}
		slices.SortFunc(st.OtherCurrencies, func(a, b Total) int { return cmp.Compare(a.Currency, b.Currency) })
		if !inCurrency && len(st.OtherCurrencies) > 0 {
			st.Status = StatusOtherCurrency
		}
		out = append(out, st)
	}
	return out, asOf, currencies, nil
}

func inScope(b spec.Budget, team, app, env, zone string) bool {
	return (b.Team == "" || b.Team == team) && (b.App == "" || b.App == app) &&
		(b.Environment == "" || b.Environment == env) && (b.Zone == "" || b.Zone == zone)
}

// evaluateBudget computes one budget from its daily series.
func evaluateBudget(b spec.Budget, m Month, asOf Day, series map[Day]money.Amount) (BudgetStatus, error) {
	amount, err := budgetAmount(b)
	if err != nil {
		return BudgetStatus{}, err
	}
	st := BudgetStatus{
		Name: b.Name, Month: m, Currency: b.Currency, Amount: amount, Thresholds: b.Thresholds,
		AsOf: asOf, Notify: b.Notify, Scope: map[string]string{}, Daily: []money.Amount{},
	}
	if len(st.Thresholds) == 0 {
		st.Thresholds = defaultThresholds
	}
	for k, v := range map[string]string{"team": b.Team, "app": b.App, "env": b.Environment, "zone": b.Zone} {
		if v != "" {
			st.Scope[k] = v
		}
	}
	for d := m.First(); d <= asOf && d < m.End(); d++ {
		st.Actual = st.Actual.Add(series[d])
		st.Daily = append(st.Daily, series[d])
	}
	var week money.Amount
	for d := asOf - 6; d <= asOf; d++ {
		week = week.Add(series[d])
	}
	// the days left at the week's daily average: week × remaining / 7,
	// one rounding
	remaining := int64(m.End() - 1 - max(asOf, m.First()-1))
	rest, ok := week.MulRat(big.NewRat(remaining, 7))
	if ok {
		st.Forecast, ok = st.Actual.AddChecked(rest)
	}
	if !ok {
		return st, fmt.Errorf("budget %s: the forecast is out of range", b.Name)
	}
	st.Status = "ok"
	switch {
	case st.Actual.Cmp(amount) >= 0:
		st.Status = "over"
	case st.Forecast.Cmp(amount) >= 0 || slices.ContainsFunc(st.Thresholds, func(t float64) bool { return reaches(st.Actual, t, amount) }):
		st.Status = "warning"
	}
	return st, nil
}

// budgetAmount reads a budget's amount: the decimal text spec keeps. The
// YAML loader reads a number as a double first, whose shortest decimal is
// the one written for amounts of up to 15 significant digits (a budget of
// 999,999,999,999.99 is still exact).
func budgetAmount(b spec.Budget) (money.Amount, error) {
	a, err := money.Parse(string(b.Amount))
	if err != nil {
		return money.Zero, fmt.Errorf("budget %s: amount %w", b.Name, err)
	}
	return a, nil
}

// reaches reports whether v is at least pct percent of amount, exactly:
// 100·v ≥ pct·amount, with pct read as the decimal it is written as
// (budgets.yaml says 80 or 12.5).
func reaches(v money.Amount, pct float64, amount money.Amount) bool {
	p, ok := new(big.Rat).SetString(strconv.FormatFloat(pct, 'g', -1, 64))
	if !ok { // NaN or an infinity: spec refuses them
		return false
	}
	lhs := new(big.Rat).Mul(v.Rat(), big.NewRat(100, 1))
	return lhs.Cmp(p.Mul(p, amount.Rat())) >= 0
}

// crossed returns the alerts a budget status calls for: a threshold the
// actual spend reached, and one the forecast reaches that the actual has
// not yet (forecast alerts only while the month runs).
func (st *BudgetStatus) crossed(running bool) []Alert {
	var out []Alert
	for _, t := range st.Thresholds {
		a := Alert{Budget: st.Name, Month: st.Month, Threshold: t, Currency: st.Currency, Amount: st.Amount,
			Actual: st.Actual, Forecast: st.Forecast, Notify: st.Notify}
		switch {
		case reaches(st.Actual, t, st.Amount):
			a.Kind = AlertActual
		case running && reaches(st.Forecast, t, st.Amount):
			a.Kind = AlertForecast
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}

// checkBudgets records the alerts a month calls for, then hands every
// pending alert to the notifier. It returns the alerts it recorded.
func (s *Service) checkBudgets(ctx context.Context, m Month) ([]Alert, error) {
	sts, asOf, _, err := s.budgetStatus(ctx, m)
	if err != nil {
		return nil, err
	}
	running := asOf < m.End()-1
	now := s.now().UTC()
	var created []Alert
	for i := range sts {
		for _, a := range sts[i].crossed(running) {
			a.CreatedAt = now
			ok, err := s.Store.PutAlert(ctx, a)
			if err != nil {
				return created, err
			}
			if ok {
				created = append(created, a)
				s.log().Warn("budget alert", "budget", a.Budget, "month", a.Month.String(), "kind", string(a.Kind), "threshold", a.Threshold)
			}
		}
	}
	return created, s.NotifyPending(ctx)
}

// CheckBudgets records and sends the alerts of the current month (and of
// the last one, whose data may still arrive); the server calls it
// periodically as well as after every import.
func (s *Service) CheckBudgets(ctx context.Context) ([]Alert, error) {
	m := DayOf(s.now()).Month()
	prev, err := s.checkBudgets(ctx, m-1)
	if err != nil {
		return prev, err
	}
	cur, err := s.checkBudgets(ctx, m)
	return append(prev, cur...), err
}

// NotifyPending hands every alert not yet delivered to the notifier, and
// marks those it accepted.
func (s *Service) NotifyPending(ctx context.Context) error {
	if s.Notifier == nil {
		return nil
	}
	pending, err := s.Store.Alerts(ctx, 0, true)
	if err != nil {
		return err
	}
	for _, a := range pending {
		if err := s.Notifier.Notify(ctx, a); err != nil {
			s.log().Warn("budget alert not delivered, will retry", "budget", a.Budget, "err", err)
			continue
		}
		if err := s.Store.MarkNotified(ctx, a.ID, s.now().UTC()); err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes the budgets for people.
func (r *BudgetReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Budgets for %s (data up to %s)\n\n", r.Month, r.AsOf)
	if len(r.Budgets) == 0 {
		fmt.Fprintln(w, "(no budgets: add them to budgets.yaml)")
		return nil
	}
	t := newTable("", "BUDGET", "SCOPE", "CURRENCY", "AMOUNT", "ACTUAL", "%", "FORECAST", "%", "STATUS").right(3, 4, 5, 6, 7)
	var notes []string
	for _, b := range r.Budgets {
		if b.Status == StatusOtherCurrency {
			// 0.00 would read as no spend: there is spend, in another currency
			t.add(b.Name, scopeString(b.Scope), b.Currency, b.Amount.Display(), "-", "-", "-", "-", b.Status)
		} else {
			t.add(b.Name, scopeString(b.Scope), b.Currency, b.Amount.Display(), b.Actual.Display(), fmt.Sprintf("%.0f%%", Percent(b.Actual, b.Amount)),
				b.Forecast.Display(), fmt.Sprintf("%.0f%%", Percent(b.Forecast, b.Amount)), b.Status)
		}
		if len(b.OtherCurrencies) == 0 {
			continue
		}
		other := make([]string, len(b.OtherCurrencies))
		for i, o := range b.OtherCurrencies {
			other[i] = o.Effective.Display() + " " + o.Currency
		}
		if b.Status == StatusOtherCurrency {
			notes = append(notes, fmt.Sprintf("%s is in %s, but the costs of its scope in %s are in other currencies (%s): socle never converts currencies. "+
				"Give the budget the currency of the costs, or import costs billed in %s.", b.Name, b.Currency, r.Month, strings.Join(other, ", "), b.Currency))
		} else {
			notes = append(notes, fmt.Sprintf("%s counts its %s costs only; its scope also has %s, not converted, not counted.", b.Name, b.Currency, strings.Join(other, ", ")))
		}
	}
	if err := t.write(w); err != nil {
		return err
	}
	var missing []string
	for _, b := range r.Budgets {
		if len(r.Currencies) > 0 && !slices.Contains(r.Currencies, b.Currency) && !slices.Contains(missing, b.Currency) {
			missing = append(missing, b.Currency)
		}
	}
	if len(missing) > 0 {
		notes = append(notes, fmt.Sprintf("the costs of %s are in %s, and no cost is in %s: the budgets in %s count nothing, since socle never converts currencies.",
			r.Month, strings.Join(r.Currencies, ", "), strings.Join(missing, ", "), strings.Join(missing, ", ")))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "Note: "+n)
		}
	}
	if len(r.Alerts) > 0 {
		fmt.Fprintln(w, "\nAlerts:")
		for _, a := range r.Alerts {
			state := "pending delivery"
			if a.NotifiedAt != nil {
				state = "sent " + a.NotifiedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "  %s (%s)\n", a.Message(), state)
		}
	}
	return nil
}

func scopeString(scope map[string]string) string {
	if len(scope) == 0 {
		return "platform"
	}
	keys := make([]string, 0, len(scope))
	for k := range scope {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(dimOrder(Dim(a)), dimOrder(Dim(b))) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + scope[k]
	}
	return strings.Join(parts, ",")
}

// Percent returns v as a percentage of of, for display only: a float.
func Percent(v, of money.Amount) float64 {
	if of.IsZero() {
		return 0
	}
	f, _ := new(big.Rat).Quo(v.Rat(), of.Rat()).Float64()
	return 100 * f
}
