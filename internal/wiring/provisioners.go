package wiring

import (
	"log/slog"
	"path/filepath"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/fromstack"
	"github.com/socle-dev/socle/internal/provision/process"
	"github.com/socle-dev/socle/internal/provision/static"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// ProvisionerOptions are the process's settings of the provisioner
// drivers.
type ProvisionerOptions struct {
	// Data is socle's data directory (absolute): a driver that runs
	// services keeps their state under it (the process driver, as root
	// under a private parent, only where they live: process.Config.Shared).
	Data   string
	Logger *slog.Logger
	// Seal seals the credentials a driver keeps (the data directory's
	// key); nil keeps them in files readable by socle alone.
	Seal *seal.Key
	// StackOutputs reads the outputs of the stacks' applies, and Repo
	// returns the revision in force: with them, the stack driver serves
	// stack provisioners (nil: socle runs no stacks, and has no stack
	// driver).
	StackOutputs stack.Outputs
	Repo         func() *spec.Repo
}

// Provisioners returns the provisioner drivers socle is built with, by
// the name provisioner files give them. A driver is added with its
// package and one line here.
func Provisioners(o ProvisionerOptions) map[string]provision.Driver {
	drivers := []provision.Driver{
		static.New(),
		process.New(process.Config{Dir: filepath.Join(o.Data, "resources"), Logger: o.Logger, Seal: o.Seal}),
	}
	if o.StackOutputs != nil {
		drivers = append(drivers, &fromstack.Driver{Repo: o.Repo, Outputs: o.StackOutputs})
	}
	out := make(map[string]provision.Driver, len(drivers))
	for _, d := range drivers {
		out[d.Name()] = d
	}
	return out
}
