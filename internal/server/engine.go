package server

import (
	"slices"

	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

// unitRuntimes gives each environment the unit runtime the app kind
// drives: the wiring's, for an environment of the revision in force; the
// local runtime for one no longer in force, whose units ran here, if
// anywhere, and are pruned from here.
type unitRuntimes struct {
	*wiring.Drivers
	// inForce returns the revision in force, nil before the first.
	inForce func() *spec.Repo
}

var _ apps.Runtimes = unitRuntimes{}

// For returns env's runtime; nil for a runtime this socle does not have.
func (u unitRuntimes) For(env string) (runtime.UnitDriver, error) {
	if repo := u.inForce(); repo == nil || repo.Environment(env) == nil {
		return u.Drivers.Units(string(spec.RuntimeLocal))
	}
	return u.Drivers.For(env)
}

// appStatus is the status of the engine's app units: the matrix, the
// status and promotions speak of apps; stacks have their own routes.
func (s *Server) appStatus() []reconcile.UnitStatus {
	all := s.engine.Status()
	return slices.DeleteFunc(all, func(u reconcile.UnitStatus) bool { return u.Kind != apps.ID })
}

// appUnits is the engine as promotions see it: its app units.
type appUnits struct{ s *Server }

func (a appUnits) Status() []reconcile.UnitStatus { return a.s.appStatus() }
