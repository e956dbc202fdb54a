package server

import (
	"path/filepath"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/resource"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

// openResources makes the engine's kind of resource units, where socle
// provisions resources (Config.ProvisionResources): the provisioner
// drivers of the configuration, else the wiring's, and the resources'
// outputs sealed in <data>/resource-outputs.
func (s *Server) openResources() error {
	if !s.cfg.ProvisionResources {
		return nil
	}
	drivers := s.cfg.Provisioners
	if drivers == nil {
		drivers = wiring.Provisioners(wiring.ProvisionerOptions{Data: s.cfg.Data, Logger: s.log})
	}
	k, err := resource.New(resource.Config{Dir: filepath.Join(s.cfg.Data, "resource-outputs"), Secret: s.secret, Drivers: drivers,
		Serves: s.readsOutputs, OnOutputs: s.outputsKept, Logger: s.log})
	if err != nil {
		return err
	}
	s.resources = k
	return nil
}

// readsOutputs reports whether env's runtime gives apps the outputs of
// provisioned resources: the local one does (through replicas); the
// Kubernetes one renders made-up outputs still (runtime.ResourceOutputs),
// so socle provisions nothing for its environments yet.
func (s *Server) readsOutputs(env string) bool {
	repo := s.pipeline.Repo()
	if repo == nil {
		return false
	}
	e := repo.Environment(env)
	return e != nil && e.Runtime.Type == spec.RuntimeLocal
}

// outputsKept makes the redactor learn the secret outputs of a resource
// just provisioned, before any app reads them.
func (s *Server) outputsKept() {
	s.secretsChanged()
	s.rebuildRedactor()
}

// resourceOutputs is what the replica runtime reads provisioned outputs
// from: nil when socle provisions no resource.
func (s *Server) resourceOutputs() replicas.Resources {
	if s.resources == nil {
		return nil
	}
	return s.resources
}

// resourceHash identifies the outputs of a unit's provisioned resources,
// which the app kind compares: new outputs roll its replicas.
func (s *Server) resourceHash(u *plan.Unit) string {
	if s.resources == nil {
		return ""
	}
	return s.resources.OutputsHash(u)
}

// resourceSecrets are the secret outputs of every resource provisioned
// here.
func (s *Server) resourceSecrets() []string {
	if s.resources == nil {
		return nil
	}
	return s.resources.SecretValues()
}
