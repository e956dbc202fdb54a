package wiring

import (
	"fmt"
	"io/fs"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/container"
	"github.com/socle-dev/socle/internal/runtime/kubernetes"
	"github.com/socle-dev/socle/internal/runtime/local"
	"github.com/socle-dev/socle/internal/spec"
)

// RuntimeOptions are the process's settings of the runtime types.
type RuntimeOptions struct {
	// Kubeconfig is the kubeconfig file of environments on Kubernetes;
	// empty: client-go's default loading rules.
	Kubeconfig string
}

// Runtimes returns the registry of the runtime types socle is built with.
// A runtime is added with its package and one line here.
func Runtimes(o RuntimeOptions) *runtime.Registry {
	reg, err := runtime.NewRegistry(
		local.Runtime(),
		container.Runtime(),
		kubernetes.Runtime(o.Kubeconfig),
	)
	if err != nil {
		// The built-in types are fixed at compile time, and
		// TestBuiltinRuntimes registers them: this is a bug, not input.
		panic(fmt.Sprintf("registering socle's runtime types: %v", err))
	}
	return reg
}

// Load reads a platform repository as socle validate and the server's
// revision pipeline both read it: spec's loader, with the runtime types of
// reg checking each environment's runtime block and decoding it into
// Runtime.Config.
func Load(fsys fs.FS, reg *runtime.Registry) (*spec.Repo, spec.Problems) {
	return spec.LoadWith(fsys, reg)
}

// Schema returns the published JSON Schema of a socle file kind (socle
// schema): spec's, with the runtime types of reg in the platform's.
func Schema(name string, reg *runtime.Registry) ([]byte, error) {
	return spec.SchemaWith(name, reg)
}

// Render returns what e's runtime applies for a unit, for people to read
// (socle render). An environment whose runtime applies nothing of the kind
// (local processes) is shown as it would run on Kubernetes, in its default
// namespace: what render has always printed for it.
func Render(reg *runtime.Registry, e *spec.Environment, us runtime.UnitSpec, o runtime.RenderOptions) (runtime.Rendered, error) {
	t, ok := reg.Lookup(string(e.Runtime.Type))
	config := e.Runtime.Config
	if !ok || t.Render == nil {
		if t, ok = reg.Lookup(kubernetes.TypeName); !ok || t.Render == nil {
			return runtime.Rendered{}, fmt.Errorf("runtime %s renders nothing, and no runtime type renders for it", e.Runtime.Type)
		}
		config = nil
	}
	return t.Render(config, us, o)
}
