package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/store/internal/migfile"
)

// ErrSchemaTooNew is returned, wrapped, by Open when the database has a
// migration this binary does not know: it was written by a newer socle.
var ErrSchemaTooNew = errors.New("database schema is newer than this socle")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// A migration is one step of the schema, read from NNNN_name.sql.
type migration struct {
	version int
	name    string // the file name
	sql     string
}

func embeddedMigrations() ([]migration, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	return loadMigrations(sub)
}

// loadMigrations reads the *.sql files at the top of fsys, in version order
// (see package migfile).
func loadMigrations(fsys fs.FS) ([]migration, error) {
	files, err := migfile.Load(fsys)
	if err != nil {
		return nil, err
	}
	migs := make([]migration, len(files))
	for i, f := range files {
		migs[i] = migration{version: f.Version, name: f.Name, sql: f.SQL}
	}
	return migs, nil
}

// migrateLock is the advisory lock key under which migrations are applied
// ("soclMIGR"): replicas started together against an empty database apply
// each migration once, the others waiting for it.
const migrateLock = 0x736f636c4d494752

// migrate applies the migrations of migs that the database lacks, in order,
// each in a transaction of its own with its row of schema_migrations
// (PostgreSQL's DDL is transactional: a migration that fails leaves
// nothing behind). Each transaction takes the migration lock first and then
// reads what is applied, so that processes opening the same database at
// once apply each migration once.
func (db *DB) migrate(ctx context.Context, migs []migration) error {
	latest := 0
	if len(migs) > 0 {
		latest = migs[len(migs)-1].version
	}
	applied := func(ctx context.Context, tx pgx.Tx) ([]int, error) {
		if err := lock(ctx, tx, migrateLock); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return nil, fmt.Errorf("creating schema_migrations: %w", err)
		}
		vs, err := queryAll(ctx, tx, func(s scanner) (v int, err error) { return v, s.Scan(&v) },
			`SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
		for _, v := range vs {
			if !slices.ContainsFunc(migs, func(m migration) bool { return m.version == v }) {
				return nil, fmt.Errorf("%w: the database has migration %04d, this socle knows none above %04d: use a newer socle",
					ErrSchemaTooNew, v, latest)
			}
		}
		return vs, nil
	}
	if err := db.write(ctx, func(tx pgx.Tx) error { _, err := applied(ctx, tx); return err }); err != nil {
		return err
	}
	for _, m := range migs {
		err := db.write(ctx, func(tx pgx.Tx) error {
			vs, err := applied(ctx, tx)
			if err != nil || slices.Contains(vs, m.version) {
				return err
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("applying migration %s: %w", m.name, err)
		}
	}
	return nil
}

// ErrSchemaBehind is returned, wrapped, by CheckSchema when the database
// lacks a migration this binary needs.
var ErrSchemaBehind = errors.New("database schema is older than this socle")

// CheckSchema reports whether the database holds every migration this
// binary knows (nil: it does). One that holds newer ones too is current:
// a rolling upgrade runs old replicas on the new schema for a while, and
// each migration keeps the previous socle working.
func (db *DB) CheckSchema(ctx context.Context) error {
	migs, err := embeddedMigrations()
	if err != nil {
		return err
	}
	vs, err := queryAll(ctx, db.pool, func(s scanner) (v int, err error) { return v, s.Scan(&v) },
		`SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	for _, m := range migs {
		if !slices.Contains(vs, m.version) {
			return fmt.Errorf("%w: migration %s is not applied; restart socle to apply it", ErrSchemaBehind, m.name)
		}
	}
	return nil
}
