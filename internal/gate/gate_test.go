package gate

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
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
	lenient := *prod
	lenient.Emergency = &spec.Emergency{Approvals: new(0)}
	tests := []struct {
		name    string
		edit    func(in *Input)
		gates   string // the closed gates, in order
		want    string // in the reason
		opens   time.Time
		skipped string // the closed gates an emergency passed
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
		{name: "emergency passes soak, window and freeze", edit: func(in *Input) {
			in.Now = time.Date(2026, 12, 20, 11, 0, 0, 0, paris) // a Sunday in the freeze
			in.HealthySince = in.Now.Add(-time.Minute)
			in.Emergency = true
		}, skipped: "soak,window,freeze"},
		{name: "emergency still needs the approvals", edit: func(in *Input) {
			in.HealthySince, in.Approvers, in.Emergency = tue.Add(-time.Minute), nil, true
		}, gates: "approvals", want: "0 of 1 approvals (by an approver other than the author marco) for an emergency change", skipped: "soak"},
		{name: "emergency approvals of the environment", edit: func(in *Input) {
			in.Env, in.Approvers, in.Emergency = &lenient, nil, true
		}},
		{name: "emergency needs the artifact in the source", edit: func(in *Input) {
			in.Source, in.Emergency = false, true
		}, gates: "source", want: "does not run healthy in preprod"},
		{name: "emergency rollback in a freeze", edit: func(in *Input) {
			in.Rollback, in.Emergency, in.Approvers = true, true, nil
			in.Now = time.Date(2026, 12, 22, 11, 0, 0, 0, paris)
		}, skipped: "freeze"},
		{name: "emergency in an environment without promotion", edit: func(in *Input) {
			in.Env = &spec.Environment{Name: "prod"}
			in.Now, in.Emergency = time.Date(2026, 12, 22, 11, 0, 0, 0, paris), true
		}, skipped: "freeze"},
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
			var skipped []string
			for _, b := range r.Skipped {
				skipped = append(skipped, b.Gate)
			}
			if got := strings.Join(skipped, ","); got != tt.skipped {
				t.Errorf("skipped gates %q, want %q (%s)", got, tt.skipped, r.Passed())
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

func TestDeclare(t *testing.T) {
	t.Parallel()
	repo, problems := spec.Load(fstest.MapFS{
		"socle.yaml": {Data: []byte(`apiVersion: socle.dev/v1
kind: Platform
metadata: {name: acme}
environments:
  - {name: dev, runtime: {type: local}, sync: auto}
  - name: preprod
    runtime: {type: local}
    sync: manual
    promotion: {from: dev}
  - name: prod
    runtime: {type: local}
    sync: manual
    promotion: {from: preprod}
    emergency: {roles: [approver]}
`)},
		"teams.yaml": {Data: []byte(`apiVersion: socle.dev/v1
kind: Teams
teams:
  - name: shop
    members:
      - {user: ann, role: developer}
      - {user: sofia, role: approver}
  - name: other
    members:
      - {user: ines, role: approver}
  - name: platform
    members:
      - {user: lena, role: admin}
`)},
		"apps/cart/score.yaml": {Data: []byte("apiVersion: score.dev/v1b1\nmetadata: {name: cart}\ncontainers:\n  main:\n    image: nginx@sha256:0123456789012345678901234567890123456789012345678901234567890123\n")},
		"apps/cart/socle.yaml": {Data: []byte("apiVersion: socle.dev/v1\nkind: App\nowner: shop\n")},
	})
	if problems.Errors() > 0 {
		t.Fatal(problems.Err())
	}
	tests := []struct {
		user, env, reason string
		want              error
	}{
		{"lena", "prod", "INC-4711 checkout down", nil},
		{"lena", "preprod", "INC-4711", nil}, // admins anywhere
		{"sofia", "prod", "INC-4711", nil},   // emergency.roles
		{"sofia", "preprod", "INC-4711", ErrDeclarer},
		{"ann", "prod", "INC-4711", ErrDeclarer},  // may not deploy to prod at all
		{"ines", "prod", "INC-4711", ErrDeclarer}, // an approver of another team
		{"mallory", "prod", "INC-4711", ErrDeclarer},
		{"lena", "prod", "  ", ErrReason},
		{"lena", "prod", "two\nlines", ErrReason},
		{"lena", "prod", strings.Repeat("é", MaxReason+1), ErrReason},
		{"lena", "prod", strings.Repeat("é", MaxReason), nil},
		{"lena", "qa", "INC-4711", ErrDeclarer},
	}
	for _, tt := range tests {
		err := Declare(repo, "cart", tt.env, tt.user, tt.reason)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s in %s (%.20q): %v, want %v", tt.user, tt.env, tt.reason, err, tt.want)
		}
	}
	if err := Declare(repo, "cart", "prod", "ann", "x"); err == nil || !strings.Contains(err.Error(), "roles admin, approver") {
		t.Errorf("the refusal does not name the roles: %v", err)
	}
}
