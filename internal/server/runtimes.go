package server

import (
	"io/fs"
	"time"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

var _ reconcile.UnitRuntimes = (*wiring.Drivers)(nil)

// newRuntimes wires the runtimes of the registry to the revision in force:
// each environment's runtime is opened when the engine first needs it
// (one Kubernetes driver per kubeconfig context, each with a client and
// rate limits of its own, so that a slow or unreachable cluster holds up
// only its own environments).
func (s *Server) newRuntimes(secret []byte, progressDeadline time.Duration) *wiring.Drivers {
	return wiring.NewDrivers(wiring.DriversConfig{
		Registry: s.runtimeTypes,
		Host: runtime.Host{
			Data: s.cfg.Data, Registry: s.ln.Addr().String(), Secret: secret, ProgressDeadline: progressDeadline, Logger: s.log,
			// Clusters pull socle's builds with a read-only token of the app.
			PullToken: newPullTokens(s.store, secret, time.Now).Token,
		},
		Env: func(name string) *spec.Environment {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.current == nil {
				return nil
			}
			return s.current.Environment(name)
		},
		Envs: func() []spec.Environment {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.current == nil {
				return nil
			}
			return s.current.Platform.Environments
		},
	})
}

// load reads a revision with the runtime types socle is built with, as
// socle validate does.
func (s *Server) load(fsys fs.FS) (*spec.Repo, spec.Problems) {
	return wiring.Load(fsys, s.runtimeTypes)
}
