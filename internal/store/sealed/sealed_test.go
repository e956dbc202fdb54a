package sealed

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// TestSealedStore: secret values go in sealed and come back in clear; a
// unit without secrets is stored as it is; another key cannot open them.
func TestSealedStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, _ := Wrap(db, []byte("key one"))
	other, _ := Wrap(db, []byte("key two"))
	secretUnit := plan.Unit{App: "web", Env: "dev", Secrets: []string{"API_KEY"}, Containers: map[string]types.Container{
		"web": {Image: ".", Variables: types.ContainerVariables{"API_KEY": "s3cret-at-rest", "LOG": "debug", "DB": "${resources.db.password}"}}}}
	plainUnit := plan.Unit{App: "api", Env: "dev", Containers: map[string]types.Container{"api": {Image: ".", Variables: types.ContainerVariables{"LOG": "info"}}}}
	var set []store.Desired
	for _, u := range []plan.Unit{secretUnit, plainUnit} {
		b, _ := json.Marshal(u)
		set = append(set, store.Desired{App: u.App, Env: u.Env, Revision: "r1", Hash: u.Hash(), Spec: b})
	}
	if err := db.PutRevision(ctx, store.Revision{SHA: "r1", Valid: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyDesired(ctx, "r1", set, nil, store.Plan{}, nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := db.DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"})
	if strings.Contains(string(raw.Spec), "s3cret-at-rest") || !strings.Contains(string(raw.Spec), sealedPrefix) || !strings.Contains(string(raw.Spec), `"LOG":"debug"`) {
		t.Errorf("stored: %s", raw.Spec)
	}
	rows, err := st.Desired(ctx)
	if err != nil || len(rows) != 2 {
		t.Fatalf("Desired = %v, %v", rows, err)
	}
	for _, r := range rows {
		var u plan.Unit
		if err := json.Unmarshal(r.Spec, &u); err != nil {
			t.Fatal(err)
		}
		want := map[string]plan.Unit{"web": secretUnit, "api": plainUnit}[u.App]
		if u.Hash() != want.Hash() {
			t.Errorf("%s came back as %+v", u.App, u.Containers)
		}
	}
	if _, err := other.DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"}); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("another key opened the secrets: %v", err)
	}
}
