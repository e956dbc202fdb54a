package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/cost/costtest"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/storetest"
	"github.com/socle-dev/socle/test/pgtest"
)

// server is the package's PostgreSQL server, shared by its tests, each
// with databases of its own.
var server *pgtest.Server

// template is a database migrated once, that tests copy.
const template = "socle_template"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	s, err := pgtest.Launch()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	server = s
	ctx := context.Background()
	if err := s.Exec(ctx, "CREATE DATABASE "+template+" TEMPLATE template0"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db, err := Open(ctx, s.URL(template))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db.Close()
	return m.Run()
}

// newDB returns the URL of a database of t's own, migrated.
func newDB(t testing.TB) string {
	t.Helper()
	return server.URL(server.CreateDB(t, template))
}

func mustOpen(t testing.TB, url string) *DB {
	t.Helper()
	db, err := Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		url := newDB(t)
		return mustOpen(t, url), func() store.Store { return mustOpen(t, url) }
	})
}

func TestCostStoreConformance(t *testing.T) {
	costtest.Run(t, func(t *testing.T) cost.Store {
		db := mustOpen(t, newDB(t))
		t.Cleanup(func() { db.Close() })
		return NewCostStore(db)
	})
}
