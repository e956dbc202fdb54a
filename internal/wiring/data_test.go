package wiring

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/test/pgtest"
)

// TestOpenDataPostgres opens a data directory's stores on a real
// PostgreSQL server, as socle up --store does: the database is migrated,
// the store's secret variables are sealed at rest with the data
// directory's secret as on SQLite, the cost store is there, and Check
// asks the server.
func TestOpenDataPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	name := srv.CreateDB(t, "")
	url := srv.URL(name)
	ctx := context.Background()
	st, secret, err := OpenData(ctx, t.TempDir(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(secret) < 32 {
		t.Fatalf("data secret of %d bytes", len(secret))
	}
	if err := st.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, _, ok, err := st.Costs.Span(ctx); err != nil || ok {
		t.Fatalf("the cost store of a new database: span %v, %v", ok, err)
	}

	u := plan.Unit{App: "web", Env: "dev", Secrets: []string{"API_KEY"}, Containers: map[string]types.Container{
		"web": {Image: ".", Variables: types.ContainerVariables{"API_KEY": "s3cret-at-rest"}}}}
	spec, _ := json.Marshal(u)
	if err := st.Store.PutRevision(ctx, store.Revision{SHA: "r1", Valid: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Store.ApplyDesired(ctx, "r1", []store.Desired{{App: "web", Env: "dev", Hash: u.Hash(), Spec: spec}}, nil, store.Plan{}, nil); err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := srv.Connect(t, name).QueryRow(ctx, `SELECT spec::text FROM desired`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, "s3cret-at-rest") || !strings.Contains(raw, "socle-sealed:v1:") {
		t.Errorf("the database holds %s", raw)
	}
	d, err := st.Store.DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"})
	if err != nil || !strings.Contains(string(d.Spec), "s3cret-at-rest") {
		t.Errorf("DesiredUnit = %s, %v; want the secret opened", d.Spec, err)
	}

	srv.Stop(t)
	if err := st.Check(); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("Check with the server stopped: %v", err)
	}
}

func TestOpenDataRefusesOtherStores(t *testing.T) {
	_, _, err := OpenData(context.Background(), t.TempDir(), "mysql://ada:pw@db/socle", nil)
	if err == nil || !strings.Contains(err.Error(), "want a postgres:// URL") || strings.Contains(err.Error(), ":pw@") {
		t.Fatalf("OpenData(mysql://…) = %v", err)
	}
}
