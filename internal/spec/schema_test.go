package spec

import (
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/golden"
)

// TestSchemasUpToDate keeps the published schemas equal to what the Go types
// say: change a type, run `go test ./internal/spec -run Schemas -update`.
func TestSchemasUpToDate(t *testing.T) {
	got, err := GenerateSchemas(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range SchemaNames() {
		golden.Check(t, filepath.Join("schemas", name+".json"), got[name])
	}
}
