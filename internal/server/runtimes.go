package server

import (
	"io/fs"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

// newRuntimes wires the runtimes of the registry to the revision in force:
// each environment's runtime is opened when the engine first needs it
// (one Kubernetes driver per kubeconfig context, each with a client and
// rate limits of its own, so that a slow or unreachable cluster holds up
// only its own environments); a runtime of replicas is driven through
// replicas.
func (s *Server) newRuntimes(progressDeadline time.Duration, replicas func(runtime.Driver) runtime.UnitDriver) *wiring.Drivers {
	return wiring.NewDrivers(wiring.DriversConfig{
		Registry: s.runtimeTypes,
		Host: runtime.Host{
			Data: s.cfg.Data, Registry: s.ln.Addr().String(), Secret: s.secret, ProgressDeadline: progressDeadline, Logger: s.log, Clock: s.clock,
			Sandbox: s.sandbox,
			// Clusters pull socle's builds with a read-only token of the app.
			PullToken: newPullTokens(s.store, s.secret, s.clock.Now).Token,
		},
		Env: func(name string) *spec.Environment {
			if repo := s.pipeline.Repo(); repo != nil {
				return repo.Environment(name)
			}
			return nil
		},
		Envs: func() []spec.Environment {
			if repo := s.pipeline.Repo(); repo != nil {
				return repo.Platform.Environments
			}
			return nil
		},
		Replicas: replicas,
		Clock:    s.clock,
	})
}

// load reads a revision with the runtime types socle is built with, as
// socle validate does.
func (s *Server) load(fsys fs.FS) (*spec.Repo, spec.Problems) {
	return wiring.Load(fsys, s.runtimeTypes)
}
