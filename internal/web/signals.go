package web

import (
	"context"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// signalsView is an app's golden signals in one environment, as charts.
type signalsView struct {
	// Now are the last minute's figures; Release the release that runs.
	Now     api.SignalFigures
	Release string
	// Charts are nil when the proxy counted no request in the period.
	Charts []Chart
}

// appSignals reads the app's signals of the last hour and draws them per
// environment: requests per second, error ratio and latency quantiles,
// with the releases that began as markers. An error (a server without
// signals) leaves the page without them, saying why.
func appSignals(ctx context.Context, s *session, app string) (map[string]*signalsView, string) {
	sig, err := s.api.Signals(ctx, app, "", "")
	if err != nil {
		return nil, err.Error()
	}
	step, _ := time.ParseDuration(sig.Step)
	out := map[string]*signalsView{}
	for _, e := range sig.Envs {
		v := &signalsView{Now: e.Now, Release: e.Release}
		if slices.ContainsFunc(e.Points, func(p api.SignalPoint) bool { return p.Requests > 0 }) {
			v.Charts = signalCharts(e, step)
		}
		out[e.Env] = v
	}
	return out, ""
}

// signalCharts draws one environment's signals.
func signalCharts(e api.EnvSignals, step time.Duration) []Chart {
	n := len(e.Points)
	labels := make([]string, n)
	rate, errs, p50, p95, p99 := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i, p := range e.Points {
		labels[i] = p.Start.UTC().Format("15:04")
		rate[i] = p.Rate
		if p.Requests == 0 { // no request: a gap, not a zero
			errs[i], p50[i], p95[i], p99[i] = math.NaN(), math.NaN(), math.NaN(), math.NaN()
			continue
		}
		errs[i] = 100 * p.ErrorRatio
		p50[i], p95[i], p99[i] = p.P50Ms, p.P95Ms, p.P99Ms
	}
	var marks []Marker
	if n > 0 && step > 0 {
		start := e.Points[0].Start
		for _, m := range e.Markers {
			i := int(m.Time.Sub(start) / step)
			text := m.Kind + " " + m.Release + " at " + m.Time.UTC().Format("15:04:05")
			if m.Author != "" {
				text += " by " + m.Author
			}
			if m.Reason != "" {
				text += ": " + m.Reason
			}
			marks = append(marks, Marker{Index: min(max(i, 0), n-1), Kind: m.Kind, Text: text})
		}
	}
	perSecond := func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "/s" }
	percent := func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "%" }
	millis := func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) + " ms" }
	return []Chart{
		{Title: "Requests per second", Kind: Lines, Labels: labels, LabelName: "Minute (UTC)", Series: []Series{{Name: "requests/s", Values: rate}}, Format: perSecond, Markers: marks},
		{Title: "Errors (5xx and unanswered)", Kind: Lines, Labels: labels, LabelName: "Minute (UTC)", Series: []Series{{Name: "errors", Values: errs}}, Format: percent, Markers: marks},
		{Title: "Latency", Kind: Lines, Labels: labels, LabelName: "Minute (UTC)", Series: []Series{{Name: "p50", Values: p50}, {Name: "p95", Values: p95}, {Name: "p99", Values: p99}}, Format: millis, Markers: marks},
	}
}

// ErrorPercent is the last minute's share of errors, in percent.
func (v signalsView) ErrorPercent() float64 { return 100 * v.Now.ErrorRatio }
