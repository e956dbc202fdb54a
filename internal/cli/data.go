package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/wiring"
)

// openData opens the store of a data directory that `socle up` made, for
// the commands that work on one without a server (--data). SQLite would
// make an empty database in a directory that is not one, and fails in its
// own words in a directory that does not exist: a wrong --data says so.
// When SOCLE_STORE names a PostgreSQL database, as for socle up, that
// database is the store.
func openData(ctx context.Context, dir string) (*wiring.Stores, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, withCode(ExitUsage, fmt.Errorf("the data directory %s does not exist: socle up --data %s makes it on its first start", dir, dir))
	}
	if url := os.Getenv("SOCLE_STORE"); url != "" {
		if !wiring.IsPostgres(url) {
			return nil, withCode(ExitUsage, errors.New("SOCLE_STORE: want a postgres:// or postgresql:// URL (or none: the SQLite file of the data directory)"))
		}
		st, err := wiring.OpenPostgres(ctx, url, clock.System)
		if err != nil {
			return nil, withCode(ExitError, err)
		}
		return st, nil
	}
	db := filepath.Join(dir, wiring.DBFile)
	if _, err := os.Stat(db); err != nil {
		return nil, withCode(ExitUsage, fmt.Errorf("%s is not a socle data directory (it has no %s): socle up --data %s makes one on its first start", dir, wiring.DBFile, dir))
	}
	st, err := wiring.OpenDB(ctx, db, clock.System)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	return st, nil
}
