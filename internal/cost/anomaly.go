package cost

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"

	"github.com/socle-dev/socle/internal/money"
)

// AnomalyRequest says where to look for anomalies and how sure to be.
type AnomalyRequest struct {
	// Dims are the dimensions whose values each get a daily series
	// (default team, app, env, service, account).
	Dims []Dim
	// From is the first day to examine, To the day after the last; zero
	// means the last 14 days with data.
	From, To Day
	// Weeks of history the baseline takes the same weekday from (default 8).
	Weeks int
	// K is the width of the band in scaled MADs (default 3).
	K float64
	// MinImpact is the absolute floor: a day must differ from its baseline
	// by at least this much (default 10, in the cost's currency).
	MinImpact money.Amount
	// MinRelative is the relative floor: a day must differ from its
	// baseline by at least this fraction of it (default 0.2).
	MinRelative float64
}

// Anomaly is a day whose cost left its band. The band is a statistic:
// its width is K scaled MADs, a product by a real factor rounded half to
// even to a pico-unit; Cost, Expected and Impact are exact.
type Anomaly struct {
	Day      Day          `json:"day"`
	Dim      Dim          `json:"dim"`
	Value    string       `json:"value"`
	Currency string       `json:"currency"`
	Cost     money.Amount `json:"cost"`     // effective cost of the day
	Expected money.Amount `json:"expected"` // the baseline: median of the same weekday
	Lower    money.Amount `json:"lower"`
	Upper    money.Amount `json:"upper"`
	// Impact is Cost - Expected: what the anomaly cost (or saved).
	Impact    money.Amount `json:"impact"`
	Direction string       `json:"direction"` // spike or drop
	Baseline  int          `json:"baseline"`  // how many days the baseline has
}

// AnomalyReport lists anomalies, the largest impact first.
type AnomalyReport struct {
	From      Day       `json:"from"`
	To        Day       `json:"to"` // the last day, inclusive
	Anomalies []Anomaly `json:"anomalies"`
}

// minBaseline is how many same-weekday points a baseline needs.
const minBaseline = 3

// Anomalies finds, for every value of every dimension, the days whose
// effective cost leaves a band around a weekly seasonal baseline: the
// median of the same weekday over the previous weeks, plus or minus K
// scaled median absolute deviations. Both floors must also be passed, so
// that a flat series does not flag pennies. History before the first day
// with data is not a baseline of zeros: it is left out.
func (s *Service) Anomalies(ctx context.Context, r AnomalyRequest) (*AnomalyReport, error) {
	if len(r.Dims) == 0 {
		r.Dims = []Dim{DimTeam, DimApp, DimEnv, DimService, DimAccount}
	}
	r.Weeks = cmp.Or(r.Weeks, 8)
	r.K = cmp.Or(r.K, 3)
	if r.MinImpact.IsZero() {
		r.MinImpact = money.FromUnits(10)
	}
	if r.MinRelative == 0 {
		r.MinRelative = 0.2
	}
	first, last, ok, err := s.Store.Span(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &AnomalyReport{Anomalies: []Anomaly{}}, nil
	}
	if r.To == 0 {
		r.To = last + 1
	}
	if r.From == 0 {
		r.From = r.To - 14
	}
	if r.To <= r.From {
		return nil, fmt.Errorf("anomalies need a range of days, from before to")
	}
	rep := &AnomalyReport{From: r.From, To: r.To - 1, Anomalies: []Anomaly{}}
	histFrom := max(r.From-Day(7*r.Weeks), first)
	for _, dim := range r.Dims {
		type series struct{ value, currency string }
		all := map[series]map[Day]money.Amount{}
		err := s.Store.Totals(ctx, Query{From: histFrom, To: r.To, By: []Dim{dim, DimDay}}, func(t Total) error {
			d, err := ParseDay(t.Keys[1])
			if err != nil {
				return err
			}
			k := series{t.Keys[0], t.Currency}
			if all[k] == nil {
				all[k] = map[Day]money.Amount{}
			}
			all[k][d] = all[k][d].Add(t.Effective)
			return nil
		})
		if err != nil {
			return nil, err
		}
		for k, days := range all {
			for d := r.From; d < r.To && d <= last; d++ {
				a, ok := detect(days, d, first, r)
				if !ok {
					continue
				}
				a.Dim, a.Value, a.Currency = dim, k.value, k.currency
				rep.Anomalies = append(rep.Anomalies, a)
			}
		}
	}
	slices.SortFunc(rep.Anomalies, func(a, b Anomaly) int {
		return cmp.Or(b.Impact.Abs().Cmp(a.Impact.Abs()), cmp.Compare(a.Day, b.Day),
			cmp.Compare(a.Dim, b.Dim), cmp.Compare(a.Value, b.Value))
	})
	return rep, nil
}

// detect checks one day of a series against its baseline. Costs and the
// baseline are exact; the band's width is K·1.4826·MAD, computed exactly
// from K's decimal and rounded once; a band too wide to hold flags nothing.
func detect(days map[Day]money.Amount, d, first Day, r AnomalyRequest) (Anomaly, bool) {
	var base []money.Amount
	for w := 1; w <= r.Weeks; w++ {
		p := d - Day(7*w)
		if p < first {
			break
		}
		base = append(base, days[p])
	}
	if len(base) < minBaseline {
		return Anomaly{}, false
	}
	med := median(base)
	dev := make([]money.Amount, len(base))
	for i, v := range base {
		dev[i] = v.Sub(med).Abs()
	}
	// 1.4826 scales the MAD to a standard deviation for normal data
	factor := new(big.Rat).Mul(ratOf(r.K), big.NewRat(14826, 10000))
	spread, ok := median(dev).MulRat(factor)
	if !ok {
		return Anomaly{}, false
	}
	cost := days[d]
	lower, ok1 := med.AddChecked(spread.Neg())
	upper, ok2 := med.AddChecked(spread)
	if !ok1 || !ok2 {
		return Anomaly{}, false
	}
	a := Anomaly{Day: d, Cost: cost, Expected: med, Lower: lower, Upper: upper,
		Impact: cost.Sub(med), Baseline: len(base)}
	switch {
	case cost.Cmp(a.Upper) > 0:
		a.Direction = "spike"
	case cost.Cmp(a.Lower) < 0:
		a.Direction = "drop"
	default:
		return a, false
	}
	impact := a.Impact.Abs()
	relative := new(big.Rat).Mul(ratOf(r.MinRelative), med.Abs().Rat())
	if impact.Cmp(r.MinImpact) < 0 || impact.Rat().Cmp(relative) < 0 {
		return a, false
	}
	return a, true
}

// ratOf reads a factor as the decimal it is written as (3, 0.2), exactly.
func ratOf(f float64) *big.Rat {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	if !ok { // NaN or infinite: AnomalyRequestOf refuses them
		return new(big.Rat)
	}
	return r
}

// median returns the middle value, or the mean of the two middle ones
// rounded half to even to a pico-unit.
func median(v []money.Amount) money.Amount {
	s := slices.Clone(v)
	slices.SortFunc(s, money.Amount.Cmp)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	m, _ := s[n/2-1].Add(s[n/2]).MulRat(big.NewRat(1, 2)) // a half of a sum in range is in range
	return m
}

// WriteText writes the anomalies for people.
func (r *AnomalyReport) WriteText(w io.Writer) error {
	if len(r.Anomalies) == 0 {
		if r.From == 0 {
			_, err := fmt.Fprintln(w, "No cost data yet.")
			return err
		}
		_, err := fmt.Fprintf(w, "No anomalies from %s to %s.\n", r.From, r.To)
		return err
	}
	fmt.Fprintf(w, "Anomalies from %s to %s, largest impact first\n\n", r.From, r.To)
	t := newTable("", "DAY", "DIMENSION", "VALUE", "CURRENCY", "COST", "EXPECTED", "BAND", "IMPACT", "").right(4, 5, 6, 7)
	for _, a := range r.Anomalies {
		impact := a.Impact.Display()
		if a.Impact.Sign() > 0 {
			impact = "+" + impact
		}
		t.add(a.Day.String(), string(a.Dim), orDash(a.Value), a.Currency, a.Cost.Display(), a.Expected.Display(),
			a.Lower.Display()+" .. "+a.Upper.Display(), impact, a.Direction)
	}
	return t.write(w)
}
