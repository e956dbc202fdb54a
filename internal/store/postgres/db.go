package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

var _ store.Store = (*DB)(nil)

// DB is a store.Store kept in a PostgreSQL database. It is safe for
// concurrent use, by the goroutines of one process and by several
// processes (socle replicas) sharing the database.
type DB struct {
	pool *pgxpool.Pool
	// Clock is the time the store stamps what it records with, as
	// sqlite.DB's; the system's when nil. Set it before use.
	Clock clock.Clock
	// fence is the lease this view's writes are made under, nil for none
	// (see Fenced); refused counts the writes it refused, over every view.
	fence   *fence
	refused *atomic.Int64
}

func (db *DB) now() time.Time { return clock.Or(db.Clock).Now() }

// Open connects to the PostgreSQL database that url names
// ("postgres://user:password@host:port/db?sslmode=…", or pgx's key=value
// form) and brings its schema up to date. A database written by a newer
// socle, with a migration this binary does not know, is refused with an
// error wrapping ErrSchemaTooNew.
func Open(ctx context.Context, url string) (*DB, error) {
	migs, err := embeddedMigrations()
	if err != nil {
		return nil, err
	}
	return open(ctx, url, migs)
}

func open(ctx context.Context, url string, migs []migration) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("opening postgres store: the connection string does not parse")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening postgres store %s: %w", where(cfg), err)
	}
	db := &DB{pool: pool, refused: new(atomic.Int64)}
	if err := db.migrate(ctx, migs); err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening postgres store %s: %w", where(cfg), err)
	}
	return db, nil
}

// where names the database of cfg for messages, without its password.
func where(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Pool returns the connection pool, for packages that keep tables of their
// own in the same database. Do not close it: close the DB.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

// Close closes the pool's connections, those of every view Fenced made
// too.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Keys of the transaction-scoped advisory locks (pg_advisory_xact_lock,
// the one-bigint form) that serialise the appends to the logs. The values
// are arbitrary, chosen so as not to meet the keys of other programs
// sharing the database: "soclEVNT" and "soclAUDT" in ASCII.
const (
	eventsLock = 0x736f636c45564e54
	auditLock  = 0x736f636c41554454
)

// lock takes the advisory lock key for the rest of tx. Whatever tx reads
// after it, in statements of its own, sees what the lock's previous holder
// committed (READ COMMITTED takes a snapshot per statement).
func lock(ctx context.Context, tx pgx.Tx, key int64) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}

// write runs fn in a READ COMMITTED transaction that it commits if fn
// returns nil and rolls back otherwise.
func write(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}

// write is the package's write, checking first, in the transaction, the
// lease the DB's writes are made under, if any (see Fenced).
func (db *DB) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return write(ctx, db.pool, func(tx pgx.Tx) error {
		if err := db.checkFence(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// exec runs one writing statement: alone when the DB is not fenced, in a
// fenced transaction otherwise.
func (db *DB) exec(ctx context.Context, sql string, args ...any) error {
	if db.fence == nil {
		_, err := db.pool.Exec(ctx, sql, args...)
		return err
	}
	return db.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
}

// isUnique reports whether err is a unique violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// jsonArg passes a JSON document as text, and an absent one as NULL.
func jsonArg(doc json.RawMessage) any {
	if len(doc) == 0 {
		return nil
	}
	return string(doc)
}

// ts is how a time is kept: in UTC, to the microsecond.
func ts(t time.Time) time.Time { return contract.Time(t) }

// nullTime keeps a time, and the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ts(t)
}

// fromNull returns the time a nullable column held, the zero time for NULL.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullInt keeps an ID, and 0 as NULL.
func nullInt(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// scanner is what pgx.Row and pgx.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryOne returns the first row of the query, or an error wrapping
// store.ErrNotFound if there is none.
func queryOne[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	all, err := queryAll(ctx, q, scan, query, args...)
	if err != nil || len(all) == 0 {
		var zero T
		if err == nil {
			err = store.ErrNotFound
		}
		return zero, err
	}
	return all[0], nil
}

func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var all []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	return all, rows.Err()
}
