package server

import (
	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// unitRuntimes gives each environment of the revision in force the unit
// runtime the app kind drives: its Kubernetes driver, or for a local one
// socle's replica runtime over the local runtime and the proxy.
type unitRuntimes struct {
	kube  *kubeRuntimes
	local *replicas.Runtime
	// env returns an environment of the revision in force, nil if none.
	env func(name string) *spec.Environment
}

var _ apps.Runtimes = (*unitRuntimes)(nil)

// For returns env's runtime; nil for a runtime this socle does not have.
// An environment no longer in force is local: its units ran here, if
// anywhere, and are pruned from here.
func (u *unitRuntimes) For(env string) (runtime.UnitDriver, error) {
	e := u.env(env)
	switch {
	case e == nil || e.Runtime.Type == spec.RuntimeLocal || e.Runtime.Type == "":
		return u.local, nil
	case e.Runtime.Type == spec.RuntimeKubernetes:
		return u.kube.For(env)
	}
	return nil, nil
}

// All returns the local runtime and the Kubernetes drivers open now.
func (u *unitRuntimes) All() []runtime.UnitDriver {
	return append([]runtime.UnitDriver{u.local}, u.kube.All()...)
}

// inForce returns an environment of the revision in force, nil if none.
func (s *Server) inForce(name string) *spec.Environment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return nil
	}
	return s.current.Environment(name)
}
