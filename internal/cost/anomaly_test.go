package cost_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
)

// TestAnomalies stores two months of a weekly pattern (weekdays 100,
// weekends 20, with noise), a spike and a drop, and a tiny app whose jumps
// stay under the absolute floor.
func TestAnomalies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newService(t, testRepo(), mustTime("2024-09-23T00:00:00Z"))
	web := bookingsProd
	web.App = "web"
	daily(t, s, "AWS:1", "2024-07-22", "2024-09-22", web, func(d cost.Day) money.Amount {
		switch d {
		case day("2024-09-18"):
			return u(300) // a Wednesday
		case day("2024-09-19"):
			return u(10) // a Thursday
		}
		base := int64(100)
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			base = 20 // the weekend is quiet: no anomaly, thanks to the weekly baseline
		}
		return u(base + int64(d)%5) // noise
	})
	tiny := bookingsProd
	tiny.App = "tiny"
	daily(t, s, "AWS:2", "2024-07-22", "2024-09-22", tiny, func(d cost.Day) money.Amount {
		if d == day("2024-09-17") {
			return u(5) // five times the usual, but 4 of impact: under the floor of 10
		}
		return u(1)
	})
	rep, err := s.Anomalies(ctx, cost.AnomalyRequest{Dims: []cost.Dim{cost.DimApp}, From: day("2024-09-16"), To: day("2024-09-23")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Anomalies) != 2 {
		t.Fatalf("anomalies: %+v", rep.Anomalies)
	}
	spike, drop := rep.Anomalies[0], rep.Anomalies[1]
	if spike.Day != day("2024-09-18") || spike.Value != "web" || spike.Direction != "spike" || spike.Impact.Cmp(u(190)) < 0 || spike.Impact.Cmp(u(200)) > 0 ||
		spike.Baseline != 8 || spike.Currency != "EUR" {
		t.Errorf("spike: %+v", spike)
	}
	if drop.Day != day("2024-09-19") || drop.Direction != "drop" || drop.Impact.Cmp(u(-90)) > 0 {
		t.Errorf("drop: %+v", drop)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	checkGolden(t, "anomalies.txt", text.String())

	// with the default window, the last 14 days, and every default dimension
	rep, err = s.Anomalies(ctx, cost.AnomalyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != day("2024-09-09") || rep.To != day("2024-09-22") || len(rep.Anomalies) < 2 {
		t.Errorf("default window %s..%s: %d anomalies", rep.From, rep.To, len(rep.Anomalies))
	}
}

// TestAnomaliesNeedHistory: a series without three weeks of history has
// no baseline, so a new app's first days are not anomalies.
func TestAnomaliesNeedHistory(t *testing.T) {
	t.Parallel()
	s := newService(t, testRepo(), mustTime("2024-09-23T00:00:00Z"))
	daily(t, s, "AWS:1", "2024-09-05", "2024-09-22", bookingsProd, func(d cost.Day) money.Amount { return u(int64(d % 97 * 10)) })
	rep, err := s.Anomalies(context.Background(), cost.AnomalyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Anomalies) != 0 {
		t.Errorf("anomalies without a baseline: %+v", rep.Anomalies)
	}
}
