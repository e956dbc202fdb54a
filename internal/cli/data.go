package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// openData opens the store of a data directory that `socle up` made, for
// the commands that work on one without a server (--data). SQLite would
// make an empty database in a directory that is not one, and fails in its
// own words in a directory that does not exist: a wrong --data says so.
func openData(ctx context.Context, dir string) (*sqlite.DB, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, withCode(ExitUsage, fmt.Errorf("the data directory %s does not exist: socle up --data %s makes it on its first start", dir, dir))
	}
	db := filepath.Join(dir, server.DBFile)
	if _, err := os.Stat(db); err != nil {
		return nil, withCode(ExitUsage, fmt.Errorf("%s is not a socle data directory (it has no %s): socle up --data %s makes one on its first start", dir, server.DBFile, dir))
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	return st, nil
}
