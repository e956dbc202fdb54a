package web

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"

	"github.com/socle-dev/socle/internal/api"
	"strconv"
	"time"
)

// doraFigures are the four DORA measures as /api/v1/dora answers them
// (store.DORAFigures). JSON field names match whatever their case.
type doraFigures struct {
	Since             time.Time `json:"since"`
	Until             time.Time `json:"until"`
	Deployments       int       `json:"deployments"`
	DeploymentsPerDay float64   `json:"deploymentsPerDay"`
	LeadTime          durations `json:"leadTime"`
	Changes           int       `json:"changes"`
	Failures          int       `json:"failures"`
	ChangeFailureRate float64   `json:"changeFailureRate"`
	TimeToRestore     durations `json:"timeToRestore"`
	Unrestored        int       `json:"unrestored"`
	Emergencies       int       `json:"emergencies"`
}

type durations struct {
	N      int          `json:"n"`
	Median flexDuration `json:"median"`
	Mean   flexDuration `json:"mean"`
	Max    flexDuration `json:"max"`
}

// flexDuration reads a duration written as nanoseconds (Go's encoding of
// time.Duration) or as text ("1h2m", or seconds as a string).
type flexDuration time.Duration

func (d *flexDuration) UnmarshalJSON(b []byte) error {
	var n float64
	if json.Unmarshal(b, &n) == nil {
		*d = flexDuration(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if v, err := time.ParseDuration(s); err == nil {
		*d = flexDuration(v)
		return nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = flexDuration(secs * float64(time.Second))
	return nil
}

// D is the duration.
func (d flexDuration) D() time.Duration { return time.Duration(d) }

type doraView struct {
	App, Team, Env, Period string
	Periods                []string
	Teams, Envs            []string
	Figures                doraFigures
	Charts                 []Chart
	// SeriesError says why there are no charts.
	SeriesError string
}

// periods the DORA page offers, in hours as the API takes them.
var doraPeriods = []string{"168h", "720h", "2160h"}

func periodName(p string) string {
	switch p {
	case "168h":
		return "7 days"
	case "720h":
		return "30 days"
	case "2160h":
		return "90 days"
	}
	return p
}

func (p *portal) doraPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	in := r.URL.Query()
	v := doraView{App: in.Get("app"), Team: in.Get("team"), Env: in.Get("env"), Period: in.Get("period"), Periods: doraPeriods}
	if _, err := time.ParseDuration(v.Period); err != nil || v.Period == "" {
		v.Period = "720h"
	}
	q := nonEmpty(url.Values{"app": {v.App}, "team": {v.Team}, "env": {v.Env}, "period": {v.Period}})
	if err := s.api.Get(ctx, "/api/v1/dora?"+q.Encode(), &v.Figures); err != nil {
		p.fail(w, r, s, err)
		return
	}
	if plat, err := s.api.Platform(ctx); err == nil {
		for _, t := range plat.Teams {
			v.Teams = append(v.Teams, t.Name)
		}
		for _, e := range plat.Environments {
			v.Envs = append(v.Envs, e.Name)
		}
	}
	sq := nonEmpty(q)
	sq.Set("bucket", "week")
	var series api.DORASeries
	if err := s.api.Get(ctx, "/api/v1/dora/series?"+sq.Encode(), &series); err != nil {
		v.SeriesError = err.Error()
	} else {
		v.Charts = doraCharts(series.Points)
	}
	p.render(w, r, http.StatusOK, "dora", s, "DORA", v)
}

// doraCharts draws the four measures bucket by bucket. A bucket without
// deployments has no lead time, one without changes no failure rate, one
// without failures no time to restore: gaps, not zeros.
func doraCharts(points []api.DORAPoint) []Chart {
	labels := make([]string, len(points))
	deploys := make([]float64, len(points))
	lead := make([]float64, len(points))
	cfr := make([]float64, len(points))
	restore := make([]float64, len(points))
	for i, f := range points {
		labels[i] = f.Start.UTC().Format("01-02")
		deploys[i] = float64(f.Deployments)
		lead[i], cfr[i], restore[i] = math.NaN(), math.NaN(), math.NaN()
		if f.Deployments > 0 {
			lead[i] = f.LeadTimeP50
		}
		if f.Changes > 0 {
			cfr[i] = f.ChangeFailureRate * 100
		}
		if f.Failures > 0 && f.TimeToRestoreP50 > 0 {
			restore[i] = f.TimeToRestoreP50
		}
	}
	percent := func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + " %" }
	return []Chart{
		{Title: "Deployments per week", Kind: Bars, Labels: labels, LabelName: "Week of", Series: []Series{{Name: "deployments", Values: deploys}}},
		durationChart("Lead time for changes, median", labels, lead),
		{Title: "Change failure rate", Kind: Bars, Labels: labels, LabelName: "Week of", Series: []Series{{Name: "failure rate", Values: cfr}}, Format: percent},
		durationChart("Time to restore, median", labels, restore),
	}
}

// durationChart draws durations given in seconds in the unit that suits
// their largest value: seconds, minutes, hours or days.
func durationChart(title string, labels []string, secs []float64) Chart {
	top := 0.0
	for _, v := range secs {
		if !math.IsNaN(v) {
			top = max(top, v)
		}
	}
	unit, div := "s", 1.0
	switch {
	case top >= 2*86400:
		unit, div = "d", 86400
	case top >= 2*3600:
		unit, div = "h", 3600
	case top >= 120:
		unit, div = "min", 60
	}
	vals := make([]float64, len(secs))
	for i, v := range secs {
		vals[i] = v / div
	}
	return Chart{Title: title, Kind: Lines, Labels: labels, LabelName: "Week of", Series: []Series{{Name: "median", Values: vals}},
		Format: func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + " " + unit }}
}
