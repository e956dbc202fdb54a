package server

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/socle-dev/socle/internal/secretref"
	"github.com/socle-dev/socle/internal/spec"
)

// SecretStoresDir is where, in the data directory, socle reads the
// credentials of secret stores that a store's configuration names
// file:NAME (a Vault token, an AppRole's role and secret IDs).
const SecretStoresDir = "secretstores"

// secretRefs resolves the references to secret managers that stand for
// secrets' values: for the pipeline, which checks them when it plans, and
// for the replica runtimes, which resolve them when a replica starts.
// Each value resolved joins the redactor before it is returned, so that
// it is redacted wherever it shows (a replica's log, an error) from the
// moment anything can print it. No value is kept anywhere else.
type secretRefs struct {
	s   *Server
	reg *secretref.Registry
}

func newSecretRefs(s *Server) *secretRefs {
	return &secretRefs{s: s, reg: secretref.NewRegistry(secretref.Credentials{Dir: filepath.Join(s.cfg.Data, SecretStoresDir)})}
}

// Resolve resolves ref with an environment's stores (pipeline.Resolver).
func (r *secretRefs) Resolve(ctx context.Context, stores spec.SecretStores, ref spec.SecretRef) (string, error) {
	v, err := r.reg.Resolve(ctx, stores, ref)
	if err != nil {
		return "", err
	}
	r.s.addSecretValues(v)
	return v, nil
}

// inForceRefs resolves with the stores of env in the revision in force
// (replicas.References).
type inForceRefs struct{ *secretRefs }

func (r inForceRefs) Resolve(ctx context.Context, env string, ref spec.SecretRef) (string, error) {
	repo := r.s.pipeline.Repo()
	if repo == nil {
		return "", errors.New("no revision in force yet")
	}
	return r.secretRefs.Resolve(ctx, repo.SecretStoresOf(env), ref)
}

// addSecretValues adds values to the redactor at once.
func (s *Server) addSecretValues(vs ...string) {
	s.secrets.mu.Lock()
	short := s.secrets.addLocked(vs)
	s.secrets.mu.Unlock()
	s.warnShort(short) // unlocked: the log's handler takes the redactor
}
