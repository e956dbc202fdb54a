// Package migfile reads the migration files of a store's schema,
// NNNN_lower_case_name.sql, in version order: the naming rules every store
// (sqlite, postgres) holds its embedded migrations to. Applying them is
// each store's own business.
package migfile

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
)

// A File is one step of a schema, read from NNNN_name.sql.
type File struct {
	Version int
	Name    string // the file name
	SQL     string
}

var name = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// Load reads the *.sql files at the top of fsys, in version order.
// Versions may leave gaps (each feature has a range of its own) but not
// repeat, and start at 0001.
func Load(fsys fs.FS) ([]File, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var files []File
	for _, n := range names {
		m := name.FindStringSubmatch(n)
		if m == nil {
			return nil, fmt.Errorf("migration %s: name is not NNNN_lower_case_name.sql", n)
		}
		v, _ := strconv.Atoi(m[1]) // four digits
		if v == 0 {
			return nil, fmt.Errorf("migration %s: versions start at 0001", n)
		}
		text, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Version: v, Name: n, SQL: string(text)})
	}
	slices.SortFunc(files, func(a, b File) int { return a.Version - b.Version })
	for i := 1; i < len(files); i++ {
		if files[i].Version == files[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", files[i-1].Name, files[i].Name)
		}
	}
	return files, nil
}
