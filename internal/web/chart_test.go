package web

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/web -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from its golden file; got:\n%s", name, got)
	}
}

func TestChartSVG(t *testing.T) {
	weeks := []string{"10-05", "10-12", "10-19", "10-26", "11-02", "11-09"}
	for _, tc := range []struct {
		name  string
		chart Chart
	}{
		{"bars.svg", Chart{Title: "Deployments per week", Kind: Bars, Labels: weeks, LabelName: "Week of",
			Series: []Series{{Name: "deployments", Values: []float64{3, 7, 0, 12, 5, 9}}}}},
		{"bars-two-series.svg", Chart{Title: "Cost by team (EUR)", Kind: Bars, Labels: []string{"bookings", "guest-experience", "platform"},
			Series: []Series{{Name: "Sep", Values: []float64{1200.5, 830, 4100}}, {Name: "Oct", Values: []float64{1350, 790.25, 3980}}},
			Format: func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }}},
		{"lines-gap.svg", Chart{Title: "Lead time p50 (hours)", Kind: Lines, Labels: weeks,
			Series: []Series{{Name: "p50", Values: []float64{1.5, 2.25, math.NaN(), 0.75, 4, 3.1}}}}},
		{"lines-limit.svg", Chart{Title: "Budget <bookings> & burn", Kind: Lines, Labels: []string{"1", "2", "3", "4", "5"},
			Series: []Series{{Name: "actual", Values: []float64{100, 210, 330, 420, 560}}},
			Limit:  500, LimitLabel: "budget 500 EUR", Width: 400, Height: 180}},
		{"empty.svg", Chart{Title: "Time to restore", Kind: Bars}},
		{"zeros.svg", Chart{Title: "Change failure rate", Kind: Bars, Labels: []string{"a", "b"}, Series: []Series{{Name: "rate", Values: []float64{0, 0}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, filepath.Join("charts", tc.name), []byte(string(tc.chart.SVG())+"\n"))
			// The same figures as a table, for whoever cannot see the chart.
			golden(t, filepath.Join("charts", strings.TrimSuffix(tc.name, ".svg")+".table.html"), []byte(string(tc.chart.Table())+"\n"))
		})
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		top  float64
		want []float64
	}{
		{0, []float64{0, 1}},
		{1, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{7, []float64{0, 2, 4, 6, 8}},
		{12, []float64{0, 5, 10, 15}},
		{560, []float64{0, 200, 400, 600}},
		{0.3, []float64{0, 0.1, 0.2, 0.3}},
	} {
		got := niceTicks(tc.top)
		if len(got) != len(tc.want) {
			t.Errorf("niceTicks(%g) = %v, want %v", tc.top, got, tc.want)
			continue
		}
		for i := range got {
			if math.Abs(got[i]-tc.want[i]) > 1e-9 {
				t.Errorf("niceTicks(%g) = %v, want %v", tc.top, got, tc.want)
				break
			}
		}
	}
}
