package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/cost/costtest"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

func TestCostStoreConformance(t *testing.T) {
	costtest.Run(t, func(t *testing.T) cost.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return sqlite.NewCostStore(db)
	})
}
