package gate

import (
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/spec"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	paris, _ := time.LoadLocation("Europe/Paris")
	window, err := spec.ParseWindow("Tue,Thu 10:00-16:00 Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	prod := &spec.Environment{Name: "prod", Promotion: &spec.Promotion{From: "preprod", Soak: spec.Duration(time.Hour), Approvals: 1, Windows: []spec.Window{window}}}
	tue := time.Date(2026, 11, 24, 11, 0, 0, 0, paris) // a Tuesday, inside the window
	freeze := spec.Freeze{Name: "year-end", Environments: []string{"prod"}, Reason: "peak season",
		Start: spec.Time{Time: time.Date(2026, 12, 18, 18, 0, 0, 0, paris)}, End: spec.Time{Time: time.Date(2027, 1, 5, 8, 0, 0, 0, paris)}}
	ok := Input{Env: prod, Freezes: []spec.Freeze{freeze}, Now: tue, Source: true, HealthySince: tue.Add(-2 * time.Hour), Approvers: []string{"sofia"}, Author: "marco"}
	tests := []struct {
		name  string
		edit  func(in *Input)
		gates string // the closed gates, in order
		want  string // in the reason
		opens time.Time
	}{
		{name: "open", edit: func(*Input) {}},
		{name: "not in source", edit: func(in *Input) { in.Source = false }, gates: "source", want: "does not run healthy in preprod"},
		{name: "soaking", edit: func(in *Input) { in.HealthySince = tue.Add(-20 * time.Minute) }, gates: "soak", want: "20m0s of the 1h0m0s soak", opens: tue.Add(40 * time.Minute)},
		{name: "no approval", edit: func(in *Input) { in.Approvers = nil }, gates: "approvals", want: "0 of 1 approvals"},
		{name: "own approval", edit: func(in *Input) { in.Approvers = []string{"marco", "marco"} }, gates: "approvals", want: "other than the author marco"},
		{name: "outside window", edit: func(in *Input) { in.Now = time.Date(2026, 11, 25, 11, 0, 0, 0, paris) }, gates: "window",
			opens: time.Date(2026, 11, 26, 10, 0, 0, 0, paris)},
		{name: "freeze", edit: func(in *Input) { in.Now = time.Date(2026, 12, 22, 11, 0, 0, 0, paris) }, gates: "freeze", want: "freeze year-end: peak season", opens: freeze.End.Time},
		{name: "everything", edit: func(in *Input) {
			in.Now = time.Date(2026, 12, 20, 11, 0, 0, 0, paris) // a Sunday in the freeze
			in.HealthySince = in.Now.Add(-time.Minute)
			in.Approvers = nil
		}, gates: "soak,approvals,window,freeze"},
		{name: "rollback skips soak and approvals", edit: func(in *Input) {
			in.Rollback, in.Source, in.Approvers = true, false, nil
		}},
		{name: "rollback respects the freeze", edit: func(in *Input) {
			in.Rollback = true
			in.Now = time.Date(2026, 12, 22, 11, 0, 0, 0, paris)
		}, gates: "freeze"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := ok
			tt.edit(&in)
			r := Check(in)
			var gates []string
			for _, b := range r.Blocks {
				gates = append(gates, b.Gate)
			}
			if got := strings.Join(gates, ","); got != tt.gates {
				t.Fatalf("closed gates %q, want %q (%s)", got, tt.gates, r.Reason())
			}
			if r.Open() != (tt.gates == "") {
				t.Error("Open disagrees with the blocks")
			}
			if !strings.Contains(r.Reason(), tt.want) {
				t.Errorf("reason %q lacks %q", r.Reason(), tt.want)
			}
			if !tt.opens.IsZero() && !r.Blocks[0].Opens.Equal(tt.opens) {
				t.Errorf("opens %s, want %s", r.Blocks[0].Opens, tt.opens)
			}
		})
	}
}
