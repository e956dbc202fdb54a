package postgres

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// BenchmarkStores compares the two stores on what socle does most:
// appending an event, and listing a unit's releases (a page of 100 among
// 2,000, over 20 apps). Run with go test -bench Stores -run XXX. The
// PostgreSQL server is the tests' own, on loopback, with fsync off, and
// SQLite syncs every commit (synchronous=FULL): the figures compare code
// paths and round trips, not durable commits.
func BenchmarkStores(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			var st store.Store
			if kind == "sqlite" {
				db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "socle.db"))
				if err != nil {
					b.Fatal(err)
				}
				st = db
			} else {
				st = mustOpen(b, newDB(b))
			}
			b.Cleanup(func() { st.Close() })
			b.Run("AppendEvent", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if _, err := st.AppendEvent(b.Context(), store.Event{Kind: "bench.event", App: "web", Env: "dev", Message: fmt.Sprint(i)}); err != nil {
						b.Fatal(err)
					}
				}
			})
			for i := range 2000 {
				app := fmt.Sprint("app", i%20)
				r, err := st.BeginRelease(b.Context(), store.Release{App: app, Env: "prod", Revision: fmt.Sprint("r", i), Trigger: store.TriggerSync}, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := st.FinishRelease(b.Context(), r.ID, store.Succeeded, "", nil); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("ListReleases", func(b *testing.B) {
				for b.Loop() {
					rs, err := st.Releases(b.Context(), store.ReleaseFilter{App: "app7", Env: "prod", Limit: 100})
					if err != nil || len(rs) != 100 {
						b.Fatalf("Releases: %d, %v", len(rs), err)
					}
				}
			})
		})
	}
}
