package local

import (
	_ "embed"
	"path/filepath"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// Config is the runtime block of an environment on this machine: nothing
// beside type: local, as every local environment shares the machine and
// socle's proxy.
type Config struct{}

// configSchema is Config's JSON Schema (TestSchemaUpToDate keeps it).
//
//go:embed schema.json
var configSchema []byte

// Runtime is the local runtime type: one Driver for every environment on
// this machine, its state in the data directory's runtime/ (where it has
// always been: a socle upgraded in place finds its replicas there).
func Runtime() runtime.Type {
	return runtime.Type{
		Name:        string(spec.RuntimeLocal),
		Description: "Supervised processes on this machine, served by socle's proxy at <app>.<env>.localhost: nothing to install.",
		Schema:      configSchema,
		Decode:      func(map[string]any) (any, []runtime.FieldProblem) { return &Config{}, nil },
		Open: func(h runtime.Host, _ string) (runtime.Instance, error) {
			d, err := New(Options{StateDir: filepath.Join(h.Data, "runtime"), Logger: h.Logger, Clock: h.Clock, Sandbox: h.Sandbox})
			if err != nil {
				return nil, err
			}
			return d, nil
		},
	}
}
