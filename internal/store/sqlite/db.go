package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/store"
)

var _ store.Store = (*DB)(nil)

// connParams configure every connection of the pool. A 5 s busy timeout lets
// writers of other processes, and of this one through SQL, wait for the
// write lock instead of failing; _txlock=immediate takes the write lock at
// BEGIN, so that a transaction never fails half-way because it cannot upgrade
// a read lock. synchronous=FULL makes a commit durable on power loss, not only
// on a crash of the process. WAL mode is not here: it is a property of the
// file, set once by Open.
const connParams = "_busy_timeout=5000&_foreign_keys=1&_synchronous=FULL&_txlock=immediate"

// busyTimeout is connParams' busy timeout.
const busyTimeout = 5 * time.Second

// DB is a store.Store kept in a SQLite file. It is safe for concurrent use:
// its writes are serialized in the process, and readers never wait for them.
type DB struct {
	sql *sql.DB
	// path and file are the database file and its identity (device and
	// inode) when it was opened; see CheckFile.
	path string
	file os.FileInfo
	// wlock holds a token while this process writes: writers queue here, in
	// Go, rather than on SQLite's busy handler.
	wlock chan struct{}
	// Clock is the time the store stamps what it records with (releases'
	// start and end, audit records, events, approvals, tokens): socle's
	// clock, so that a soak measured from a release's end and the clock
	// that checks it agree. The system's when nil; set it before use.
	Clock clock.Clock
	// appended tells the process's event streams that events were
	// committed (WatchEvents).
	appended store.Signal
}

// WatchEvents implements store.EventWatcher: SQLite is written by one
// process, whose writes fire it after they commit.
func (db *DB) WatchEvents(ctx context.Context, wake func()) error {
	return db.appended.WatchEvents(ctx, wake)
}

func (db *DB) now() time.Time { return clock.Or(db.Clock).Now() }

// Open opens the SQLite database at path, creating the file if needed, and
// brings its schema up to date. A database written by a newer socle, with a
// migration this binary does not know, is refused with an error wrapping
// ErrSchemaTooNew.
func Open(ctx context.Context, path string) (*DB, error) {
	migs, err := embeddedMigrations()
	if err != nil {
		return nil, err
	}
	return open(ctx, path, migs)
}

func open(ctx context.Context, path string, migs []migration) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("opening sqlite store: %q is not a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	abs = filepath.ToSlash(abs)
	if !strings.HasPrefix(abs, "/") { // a Windows drive letter
		abs = "/" + abs
	}
	// A file: URI, so that a path with '?' or '#' in it is escaped rather
	// than cut.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: connParams}).String()
	conn := &connector{dsn: dsn}
	sqlDB := sql.OpenDB(conn)
	db := &DB{sql: sqlDB, wlock: make(chan struct{}, 1), path: path}
	if err := db.init(ctx, migs); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	conn.db.Store(db)
	return db, nil
}

// connector opens the pool's connections, each only while the database
// file is still the one opened: a new connection to a path whose file was
// removed would create an empty database there, and a read on it would fail
// with "no such table" (or find nothing) instead of ErrFileGone. Reads on
// connections already open go on reading the file they hold.
type connector struct {
	dsn string
	// db is the store once Open has made its file, whose CheckFile each
	// new connection passes; until then (while Open creates and migrates
	// the file) connections are not checked.
	db atomic.Pointer[DB]
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	if db := c.db.Load(); db != nil {
		if err := db.CheckFile(); err != nil {
			return nil, err
		}
	}
	return c.Driver().Open(c.dsn)
}

func (c *connector) Driver() driver.Driver { return sqliteDriver }

// sqliteDriver is the driver modernc.org/sqlite registers as "sqlite",
// with whatever it was registered with; sql.Open connects to nothing.
var sqliteDriver = func() driver.Driver {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		panic(err) // the import registers it
	}
	defer db.Close()
	return db.Driver()
}()

func (db *DB) init(ctx context.Context, migs []migration) error {
	mode, err := setWAL(ctx, db.sql)
	if err != nil {
		return fmt.Errorf("setting WAL mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not WAL: is the file on a network file system?", mode)
	}
	// The file exists now (setting WAL mode wrote to it) and the pool holds
	// it open: this is the file every write checks it still goes to.
	if db.file, err = os.Stat(db.path); err != nil {
		return err
	}
	return db.migrate(ctx, migs)
}

// setWAL puts the database in WAL mode and returns the journal mode it is
// in. Leaving the rollback journal of a new file takes an exclusive lock,
// and SQLite reports SQLITE_BUSY at once rather than call its busy handler
// where waiting could deadlock, so processes opening a new file at the same
// time retry here, for as long as the busy timeout.
func setWAL(ctx context.Context, db *sql.DB) (mode string, err error) {
	err = retryBusy(ctx, busyTimeout, func() error {
		return db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
	})
	return mode, err
}

// retryBusy calls try again, after a short pause, while it fails with
// SQLITE_BUSY, for up to within; it returns try's last error, or ctx's.
func retryBusy(ctx context.Context, within time.Duration, try func() error) error {
	deadline := time.Now().Add(within)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err := try()
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (or one of its
// extended codes): another connection holds the lock.
func isBusy(err error) bool {
	var e *msqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// SQL returns the underlying database handle, for packages that keep tables
// of their own in the same file (created by their own migration files, see
// the package documentation). Every transaction begun on it takes SQLite's
// write lock at BEGIN, and waits up to 5 s for it; keep transactions short.
// Do not close it: close the DB.
func (db *DB) SQL() *sql.DB { return db.sql }

// ErrFileGone is returned, wrapped, by CheckFile and by every write once
// the database file is no longer the one opened: removed, or replaced by
// another file. SQLite goes on writing into the file it holds open, which
// nothing will read after a restart, so writes are refused instead.
var ErrFileGone = errors.New("the database file was removed or replaced while socle runs")

// CheckFile reports whether the database file at the path opened is still
// the file the store writes to, by identity (device and inode). It costs a
// stat: the store checks it around every write and before each new
// connection of its pool, the server periodically and for its readiness.
func (db *DB) CheckFile() error {
	fi, err := os.Stat(db.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s no longer exists; restore it (and its -wal) from a backup and restart socle", ErrFileGone, db.path)
	case err != nil:
		return fmt.Errorf("checking the database file: %w", err)
	case !os.SameFile(fi, db.file):
		return fmt.Errorf("%w: %s is another file than the one opened; restart socle to use it", ErrFileGone, db.path)
	}
	return nil
}

// Close closes the database. Data committed before is on disk whether or not
// Close is called.
func (db *DB) Close() error { return db.sql.Close() }

// write runs fn in a transaction that it commits if fn returns nil and rolls
// back otherwise. Writers of this DB run one at a time.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case db.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-db.wlock }()
	return checkedWrite(ctx, db.sql, db.CheckFile, fn)
}

// checkedWrite runs fn in a transaction of sqlDB, checking the database
// file before (nothing is written into a file gone) and after the commit
// (a file removed meanwhile lost the write: the caller hears of it).
func checkedWrite(ctx context.Context, sqlDB *sql.DB, check func() error, fn func(tx *sql.Tx) error) error {
	if err := check(); err != nil {
		return err
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, rollback(tx))
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return check()
}

// rollback rolls tx back; a transaction already ended, by a cancelled
// context, is no error.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rolling back: %w", err)
	}
	return nil
}
