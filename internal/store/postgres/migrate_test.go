package postgres

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/socle-dev/socle/internal/store"
)

func embedded(t *testing.T) []migration {
	t.Helper()
	migs, err := embeddedMigrations()
	if err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	return migs
}

func appliedVersions(t *testing.T, db *DB) []int {
	t.Helper()
	vs, err := queryAll(t.Context(), db.pool, func(s scanner) (v int, err error) { return v, s.Scan(&v) },
		`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return vs
}

func versions(migs []migration) []int {
	var vs []int
	for _, m := range migs {
		vs = append(vs, m.version)
	}
	return vs
}

// TestConcurrentOpenMigratesOnce: replicas started together on an empty
// database all open it, and each migration is applied once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	url := server.URL(server.CreateDB(t, ""))
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = Open(t.Context(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	if got, want := appliedVersions(t, dbs[0]), versions(embedded(t)); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
}

// TestUpgradeAppliesWhatIsMissing opens a database with the first
// migration only, then with all: the second Open applies the rest and
// keeps what the first recorded.
func TestUpgradeAppliesWhatIsMissing(t *testing.T) {
	url := server.URL(server.CreateDB(t, ""))
	migs := embedded(t)
	old, err := open(t.Context(), url, migs[:1])
	if err != nil {
		t.Fatal(err)
	}
	if err := old.PutRevision(t.Context(), store.Revision{SHA: "r1", Valid: true}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db := mustOpen(t, url)
	defer db.Close()
	if got, want := appliedVersions(t, db), versions(migs); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
	if _, err := db.Revision(t.Context(), "r1"); err != nil {
		t.Errorf("the revision recorded before the upgrade: %v", err)
	}
}

// TestFutureVersionIsRefused: a database with a migration this binary
// does not know was written by a newer socle.
func TestFutureVersionIsRefused(t *testing.T) {
	url := newDB(t)
	db := mustOpen(t, url)
	if _, err := db.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(t.Context(), url); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
}

// TestFailedMigrationChangesNothing: a migration that fails half-way
// leaves neither its first statements nor its row behind.
func TestFailedMigrationChangesNothing(t *testing.T) {
	url := newDB(t)
	bad, err := loadMigrations(fstest.MapFS{
		"0090_bad.sql": {Data: []byte("CREATE TABLE half (x integer);\nSELECT no_such_function();")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if db, err := open(t.Context(), url, append(embedded(t), bad...)); err == nil {
		db.Close()
		t.Fatal("a failing migration was applied")
	}
	db := mustOpen(t, url)
	defer db.Close()
	if vs := appliedVersions(t, db); slices.Contains(vs, 90) {
		t.Errorf("schema_migrations records the failed migration: %v", vs)
	}
	var exists bool
	if err := db.pool.QueryRow(t.Context(), `SELECT to_regclass('half') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("the failed migration's table exists: %v, %v", exists, err)
	}
}
