package api

import (
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/golden"
)

// TestOpenAPIGolden keeps the API's contract in testdata/openapi.json, so
// that a change to a route, a wire type or an access level shows in review
// as a change to the document (go test ./internal/api -run OpenAPI -args -update).
func TestOpenAPIGolden(t *testing.T) {
	b, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "openapi.json"), b)
}
