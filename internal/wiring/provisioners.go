package wiring

import (
	"log/slog"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/static"
)

// ProvisionerOptions are the process's settings of the provisioner
// drivers.
type ProvisionerOptions struct {
	// Data is socle's data directory (absolute): a driver that runs
	// services keeps their state under it.
	Data   string
	Logger *slog.Logger
}

// Provisioners returns the provisioner drivers socle is built with, by
// the name provisioner files give them. A driver is added with its
// package and one line here.
func Provisioners(o ProvisionerOptions) map[string]provision.Driver {
	drivers := []provision.Driver{
		static.New(),
		// process.New(process.Config{Data: o.Data, Logger: o.Logger}), // h-process: the process driver (postgres, redis) plugs in here when it lands
	}
	out := make(map[string]provision.Driver, len(drivers))
	for _, d := range drivers {
		out[d.Name()] = d
	}
	return out
}
