package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

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

// migrate applies the migrations of migs that the database lacks, in order,
// each in a transaction of its own with its row of schema_migrations. Two
// processes opening the same file at once apply each migration once: the
// second finds it recorded when its transaction gets the write lock.
func (db *DB) migrate(ctx context.Context, migs []migration) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL -- microseconds since the Unix epoch
	)`
	if err := db.writeMigrating(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, create)
		return err
	}); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	applied, err := queryAll(ctx, db.sql, func(s scanner) (v int, err error) { return v, s.Scan(&v) },
		`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("reading schema_migrations: %w", err)
	}
	for _, v := range applied {
		if !slices.ContainsFunc(migs, func(m migration) bool { return m.version == v }) {
			latest := 0
			if len(migs) > 0 {
				latest = migs[len(migs)-1].version
			}
			return fmt.Errorf("%w: the database has migration %04d, this socle knows none above %04d: use a newer socle",
				ErrSchemaTooNew, v, latest)
		}
	}
	for _, m := range migs {
		if !slices.Contains(applied, m.version) {
			if err := db.apply(ctx, m); err != nil {
				return fmt.Errorf("applying migration %s: %w", m.name, err)
			}
		}
	}
	return nil
}

// apply applies m unless it is recorded: another process may have applied it
// since migrate looked.
func (db *DB) apply(ctx context.Context, m migration) error {
	return db.writeMigrating(ctx, func(tx *sql.Tx) error {
		var done bool
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.version).Scan(&done)
		if err != nil || done {
			return err
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now().UnixMicro())
		return err
	})
}

// migrateBusyFor bounds how long Open waits for the write lock while other
// processes open the same new file: one of them may apply every migration,
// each synced to disk, while the others wait, which on a slow or busy disk
// takes longer than one write's busy timeout.
const migrateBusyFor = time.Minute

// writeMigrating is db.write, tried again while the database is busy, for
// up to migrateBusyFor.
func (db *DB) writeMigrating(ctx context.Context, fn func(*sql.Tx) error) error {
	return retryBusy(ctx, migrateBusyFor, func() error { return db.write(ctx, fn) })
}
