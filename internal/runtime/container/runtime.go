package container

import (
	_ "embed"
	"path/filepath"

	"github.com/socle-dev/socle/internal/runtime"
)

// TypeName is the container runtime's runtime.type.
const TypeName = "container"

// Config is the runtime block of an environment whose apps run in
// containers on this machine, with Podman: nothing beside type: container,
// as every such environment shares the machine, its Podman and socle's
// proxy.
type Config struct{}

// configSchema is Config's JSON Schema (TestSchemaUpToDate keeps it).
//
//go:embed schema.json
var configSchema []byte

// Runtime is the container runtime type: one Driver for every environment
// of the type, its state in the data directory's container/.
func Runtime() runtime.Type {
	return runtime.Type{
		Name:        TypeName,
		Description: "OCI images run by Podman on this machine (any image, socle's builds pulled from socle's registry), served by socle's proxy at <app>.<env>.localhost.",
		Schema:      configSchema,
		Decode:      func(map[string]any) (any, []runtime.FieldProblem) { return &Config{}, nil },
		Open: func(h runtime.Host, _ string) (runtime.Instance, error) {
			d, err := New(Options{
				StateDir: filepath.Join(h.Data, "container"), Registry: h.Registry, PullToken: h.PullToken,
				Logger: h.Logger, Clock: h.Clock,
			})
			if err != nil {
				return nil, err
			}
			return d, nil
		},
	}
}
