package cost

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
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
	MinImpact float64
	// MinRelative is the relative floor: a day must differ from its
	// baseline by at least this fraction of it (default 0.2).
	MinRelative float64
}

// Anomaly is a day whose cost left its band.
type Anomaly struct {
	Day      Day     `json:"day"`
	Dim      Dim     `json:"dim"`
	Value    string  `json:"value"`
	Currency string  `json:"currency"`
	Cost     float64 `json:"cost"`     // effective cost of the day
	Expected float64 `json:"expected"` // the baseline: median of the same weekday
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
	// Impact is Cost - Expected: what the anomaly cost (or saved).
	Impact    float64 `json:"impact"`
	Direction string  `json:"direction"` // spike or drop
	Baseline  int     `json:"baseline"`  // how many days the baseline has
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
	if r.MinImpact == 0 {
		r.MinImpact = 10
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
		all := map[series]map[Day]float64{}
		err := s.Store.Totals(ctx, Query{From: histFrom, To: r.To, By: []Dim{dim, DimDay}}, func(t Total) error {
			d, err := ParseDay(t.Keys[1])
			if err != nil {
				return err
			}
			k := series{t.Keys[0], t.Currency}
			if all[k] == nil {
				all[k] = map[Day]float64{}
			}
			all[k][d] += t.Effective
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
		return cmp.Or(cmp.Compare(math.Abs(b.Impact), math.Abs(a.Impact)), cmp.Compare(a.Day, b.Day),
			cmp.Compare(a.Dim, b.Dim), cmp.Compare(a.Value, b.Value))
	})
	return rep, nil
}

// detect checks one day of a series against its baseline.
func detect(days map[Day]float64, d, first Day, r AnomalyRequest) (Anomaly, bool) {
	var base []float64
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
	dev := make([]float64, len(base))
	for i, v := range base {
		dev[i] = math.Abs(v - med)
	}
	// 1.4826 scales the MAD to a standard deviation for normal data
	spread := r.K * 1.4826 * median(dev)
	cost := days[d]
	a := Anomaly{Day: d, Cost: cost, Expected: med, Lower: med - spread, Upper: med + spread,
		Impact: cost - med, Baseline: len(base)}
	switch {
	case cost > a.Upper:
		a.Direction = "spike"
	case cost < a.Lower:
		a.Direction = "drop"
	default:
		return a, false
	}
	if math.Abs(a.Impact) < r.MinImpact || math.Abs(a.Impact) < r.MinRelative*math.Abs(med) {
		return a, false
	}
	return a, true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
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
		impact := Money(a.Impact)
		if a.Impact > 0 {
			impact = "+" + impact
		}
		t.add(a.Day.String(), string(a.Dim), orDash(a.Value), a.Currency, Money(a.Cost), Money(a.Expected),
			Money(a.Lower)+" .. "+Money(a.Upper), impact, a.Direction)
	}
	return t.write(w)
}
