package runtimetest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/invopop/jsonschema"

	"github.com/socle-dev/socle/internal/golden"
)

// CheckSchema keeps a runtime type's schema (runtime.Type.Schema), the file
// at path, equal to what its config's Go type and doc comments say, as
// spec's schemas are kept: config is the type's zero value, declared in the
// package whose tests call this from its directory; -update rewrites the
// file. Definitions are given in place, as a runtime block's schema needs.
func CheckSchema(t *testing.T, config any, path string) {
	t.Helper()
	typ := reflect.TypeOf(config)
	r := &jsonschema.Reflector{RequiredFromJSONSchemaTags: true, DoNotReference: true}
	if err := r.AddGoComments(typ.PkgPath(), "."); err != nil {
		t.Fatal(err)
	}
	s := r.ReflectFromType(typ)
	s.Version, s.ID = "", "" // it stands inside the platform's schema, which names the draft
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, path, append(b, '\n'))
}
