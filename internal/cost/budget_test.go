package cost_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/spec"
)

// recorder is a Notifier that fails its first calls, as a webhook down
// for a while would.
type recorder struct {
	mu    sync.Mutex
	fails int
	got   []cost.Alert
}

func (r *recorder) Notify(_ context.Context, a cost.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		r.fails--
		return errors.New("webhook unreachable")
	}
	r.got = append(r.got, a)
	return nil
}

func day(s string) cost.Day {
	d, err := cost.ParseDay(s)
	if err != nil {
		panic(err)
	}
	return d
}

// u is n currency units.
func u(n int64) money.Amount { return money.FromUnits(n) }

// daily stores one row a day from..to (inclusive) with the cost f(day).
func daily(t *testing.T, s *cost.Service, source string, from, to string, key cost.Key, f func(cost.Day) money.Amount) {
	t.Helper()
	byMonth := map[cost.Month][]cost.Row{}
	for d := day(from); d <= day(to); d++ {
		k := key
		k.Day = d
		v := f(d)
		byMonth[d.Month()] = append(byMonth[d.Month()], cost.Row{Key: k, Amounts: cost.Amounts{Billed: v, Effective: v, List: v}})
	}
	b := &cost.Batch{Files: []cost.FileInfo{{Name: source, SHA256: source + from}}}
	for m, rows := range byMonth {
		b.Periods = append(b.Periods, cost.Period{Source: source, Month: m, Rows: rows})
	}
	if _, err := s.Store.ImportBatch(context.Background(), b, cost.Replace); err != nil {
		t.Fatal(err)
	}
}

var bookingsProd = cost.Key{Provider: "AWS", Account: "111", Service: "EC2", Region: "eu-west-1", Category: "Usage",
	Currency: "EUR", Team: "bookings", App: "booking-api", Env: "prod", Zone: "apps-prod"}

func TestBudgetsForecastAndAlerts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, testRepo(), mustTime("2024-09-20T12:00:00Z"))
	rec := &recorder{fails: 1}
	s.Notifier = rec
	// 30 a day until the 12th, then 40: 640 by the 19th, 40 a day forecast
	daily(t, s, "AWS:1", "2024-08-25", "2024-09-19", bookingsProd, func(d cost.Day) money.Amount {
		if d >= day("2024-09-13") {
			return u(40)
		}
		return u(30)
	})
	// costs in another currency are not counted against a EUR budget
	usd := bookingsProd
	usd.Currency = "USD"
	daily(t, s, "AWS:2", "2024-09-01", "2024-09-19", usd, func(cost.Day) money.Amount { return u(1000) })

	rep, err := s.Budgets(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := rep.Budgets[0]
	if rep.Month.String() != "2024-09" || rep.AsOf != day("2024-09-19") || b.Name != "bookings" ||
		b.Actual != u(640) || b.Forecast != u(640+40*11) || b.Status != "warning" || len(b.Daily) != 19 {
		t.Errorf("bookings budget: %+v", b)
	}

	created, err := s.CheckBudgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type ak struct {
		budget    string
		kind      cost.AlertKind
		threshold float64
	}
	var got []ak
	for _, a := range created {
		got = append(got, ak{a.Budget, a.Kind, a.Threshold})
	}
	want := []ak{{"bookings", cost.AlertActual, 50}, {"bookings", cost.AlertForecast, 100}}
	if !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
	// the webhook failed once: one alert is delivered, one pending
	if len(rec.got) != 1 {
		t.Errorf("%d alerts delivered", len(rec.got))
	}
	pending, _ := s.Store.Alerts(ctx, 0, true)
	if len(pending) != 1 {
		t.Errorf("%d alerts pending", len(pending))
	}

	// checked again: nothing new is recorded, the pending alert is retried
	created, err = s.CheckBudgets(ctx)
	if err != nil || len(created) != 0 {
		t.Errorf("second check: %v, %v", created, err)
	}
	if len(rec.got) != 2 || rec.got[1].Notify[0] != "finops" {
		t.Errorf("delivered %+v", rec.got)
	}
	if pending, _ := s.Store.Alerts(ctx, 0, true); len(pending) != 0 {
		t.Errorf("still pending: %+v", pending)
	}

	rep, _ = s.Budgets(ctx, 0)
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "budgets.txt", text.String())
}

// TestBudgetOfAClosedMonth: a month whose data is complete forecasts what
// it spent, and raises no forecast alert.
func TestBudgetOfAClosedMonth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, testRepo(), mustTime("2024-10-02T00:00:00Z"))
	daily(t, s, "AWS:1", "2024-09-01", "2024-10-01", bookingsProd, func(cost.Day) money.Amount { return u(34) })
	rep, err := s.Budgets(ctx, cost.MonthOf(2024, 9))
	if err != nil {
		t.Fatal(err)
	}
	if b := rep.Budgets[0]; b.Actual != u(1020) || b.Forecast != u(1020) || b.Status != "over" || b.AsOf != day("2024-09-30") {
		t.Errorf("September: %+v", b)
	}
	created, err := s.CheckBudgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range created {
		if a.Month.String() == "2024-09" && a.Kind == cost.AlertForecast {
			t.Errorf("a forecast alert for a closed month: %+v", a)
		}
	}
	if len(created) != 4 { // bookings 50% and 100% of September; October's first day forecasts both
		t.Errorf("alerts %+v", created)
	}
}

// TestImportChecksBudgets: an import of the current month raises alerts.
func TestImportChecksBudgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, testRepo(), mustTime("2024-09-02T00:00:00Z"))
	repo := testRepo()
	repo.Budgets.Budgets[0].Amount = "20" // bookings, EUR: the fixture spends 17.5 on the 1st
	s.Repo = func() *spec.Repo { return repo }
	res, err := s.Import(ctx, []cost.File{{Path: "testdata/formats/focus_1.3.csv"}}, cost.Replace)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Alerts) == 0 {
		t.Fatal("no alert")
	}
	for _, a := range res.Alerts {
		if a.Budget != "bookings" {
			t.Errorf("alert %+v", a)
		}
	}
}
