package cost_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// samplePath is the FinOps Foundation's FOCUS sample (testdata/focus at
// the repository's root).
var samplePath = filepath.Join("..", "..", "testdata", "focus", "focus_1.0_sample_1000.csv")

func sample(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(samplePath); err != nil {
		t.Fatalf("the FOCUS sample is missing (testdata/focus at the repository's root): %v", err)
	}
	return samplePath
}

// testRepo is a small platform: zones with accounts, environments, teams,
// apps with owners, tag keys, aliases and rules.
func testRepo() *spec.Repo {
	return &spec.Repo{
		Platform: spec.Platform{
			Zones: []spec.Zone{
				{Name: "apps-prod", Kind: spec.ZoneApplication, Provider: "aws", Account: "111111111111"},
				{Name: "apps-nonprod", Kind: spec.ZoneApplication, Provider: "aws", Account: "222222222222"},
				{Name: "sandbox", Kind: spec.ZoneSandbox, Provider: "azure", Account: "sandbox-sub"},
				{Name: "data", Kind: spec.ZoneApplication, Provider: "gcp", Account: "data-lake"},
			},
			Environments: []spec.Environment{
				{Name: "dev", Zone: "apps-nonprod"},
				{Name: "preprod", Zone: "apps-nonprod"},
				{Name: "prod", Zone: "apps-prod"},
				{Name: "sandbox", Zone: "sandbox"},
			},
			Costs: &spec.Costs{
				Currency: "EUR",
				Tags: &spec.TagKeys{
					Team:        []string{"team", "owner"},
					App:         []string{"app", "application"},
					Environment: []string{"env", "environment"},
				},
				Aliases: map[string]map[string]string{"environment": {"production": "prod", "development": "dev"}},
				Rules: []spec.AllocationRule{
					{Name: "shared-network", Match: spec.AllocationMatch{ResourceGroup: "net-*"}, Set: spec.Allocation{Team: "platform", App: "network"}},
					{Name: "data-projects", Match: spec.AllocationMatch{Project: "data-*"}, Set: spec.Allocation{Team: "data"}},
				},
			},
		},
		Teams: spec.Teams{Teams: []spec.Team{{Name: "bookings"}, {Name: "data"}, {Name: "platform"}}},
		Apps: []*spec.App{
			{Name: "booking-api", Config: spec.AppConfig{Owner: "bookings"}},
			{Name: "ingest", Config: spec.AppConfig{Owner: "data"}},
		},
		Budgets: &spec.Budgets{Budgets: []spec.Budget{
			{Name: "bookings", Team: "bookings", Amount: "1000", Currency: "EUR", Thresholds: []float64{50, 100}, Notify: []string{"finops"}},
			{Name: "prod", Environment: "prod", Amount: "5000", Currency: "EUR"},
		}},
	}
}

// newService returns a service over a new SQLite database, with a clock
// fixed at now.
func newService(t *testing.T, repo *spec.Repo, now time.Time) *cost.Service {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &cost.Service{
		Store: sqlite.NewCostStore(db),
		Repo:  func() *spec.Repo { return repo },
		Now:   func() time.Time { return now },
	}
}

// checkGolden compares got (a string as it is, anything else as indented
// JSON) with testdata/golden/name; -update rewrites it.
func checkGolden(t *testing.T, name string, got any) {
	t.Helper()
	b, ok := []byte(nil), false
	if s, isString := got.(string); isString {
		b, ok = []byte(s), true
	}
	if !ok {
		var err error
		if b, err = json.MarshalIndent(got, "", "  "); err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
	}
	golden.Check(t, filepath.Join("testdata", "golden", name), b)
}

// sum adds the rows of a batch per currency.
func sum(b *cost.Batch) map[string]cost.Amounts {
	out := map[string]cost.Amounts{}
	for _, p := range b.Periods {
		for _, r := range p.Rows {
			a := out[r.Currency]
			a.Add(r.Amounts)
			out[r.Currency] = a
		}
	}
	return out
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func parseJSONObject(s string) (map[string]string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out, nil
}
