package container

import (
	"testing"

	"github.com/socle-dev/socle/internal/runtime/runtimetest"
)

// TestSchemaUpToDate keeps schema.json equal to what Config says.
func TestSchemaUpToDate(t *testing.T) {
	runtimetest.CheckSchema(t, Config{}, "schema.json")
}
