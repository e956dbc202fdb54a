package server

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/kubernetes"
	"github.com/socle-dev/socle/internal/spec"
)

// kubeRuntimes gives the environments whose runtime is kubernetes their
// driver: one per kubeconfig context, opened when an environment first
// needs it, each with a client and rate limits of its own, so that a slow
// or unreachable cluster holds up only its own environments. The kubeconfig
// is Config.Kubeconfig, or found as kubectl finds it ($KUBECONFIG, then
// ~/.kube/config).
type kubeRuntimes struct {
	// env returns an environment of the revision in force, nil if none.
	env func(name string) *spec.Environment
	// envs returns every environment of the revision in force.
	envs func() []spec.Environment
	// registry is socle's own registry host, the default of an
	// environment's runtime.registry.
	registry         string
	kubeconfig       string
	secret           []byte
	pullToken        func(ctx context.Context, app, env string) (string, error)
	progressDeadline time.Duration
	log              *slog.Logger

	mu      sync.Mutex
	drivers map[string]*kubernetes.Driver // by context
	failed  map[string]failure            // by context
}

// failure is a context that could not be opened, retried after a while
// rather than on every pass of every unit.
type failure struct {
	err error
	at  time.Time
}

const kubeRetry = 30 * time.Second

// For returns the driver of env, nil for an environment that does not run
// on Kubernetes.
func (k *kubeRuntimes) For(env string) (runtime.UnitDriver, error) {
	e := k.env(env)
	if e == nil || e.Runtime.Type != spec.RuntimeKubernetes {
		return nil, nil
	}
	d, err := k.driver(e.Runtime.Context)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// All opens the driver of every kubernetes environment in force.
func (k *kubeRuntimes) All() []runtime.UnitDriver {
	seen := map[string]bool{}
	var out []runtime.UnitDriver
	for _, e := range k.envs() {
		if e.Runtime.Type != spec.RuntimeKubernetes || seen[e.Runtime.Context] {
			continue
		}
		seen[e.Runtime.Context] = true
		if d, err := k.driver(e.Runtime.Context); err == nil {
			out = append(out, d)
		}
	}
	return out
}

func (k *kubeRuntimes) driver(context string) (*kubernetes.Driver, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if d := k.drivers[context]; d != nil {
		return d, nil
	}
	if f, ok := k.failed[context]; ok && time.Since(f.at) < kubeRetry {
		return nil, f.err
	}
	d, err := kubernetes.New(kubernetes.Options{
		Kubeconfig: k.kubeconfig, Context: context, Target: k.target, Secret: k.secret, PullToken: k.pullToken,
		ProgressDeadline: k.progressDeadline, Logger: k.log.With("context", context),
	})
	if err != nil {
		k.failed[context] = failure{err: err, at: time.Now()}
		return nil, err
	}
	delete(k.failed, context)
	k.drivers[context] = d
	return d, nil
}

// target is where an environment's units go: its namespace, and the
// registry its cluster pulls from.
func (k *kubeRuntimes) target(env string) kubernetes.Target {
	e := k.env(env)
	if e == nil {
		return kubernetes.Target{}
	}
	return kubernetes.Target{Namespace: e.Runtime.Namespace, Registry: cmp.Or(e.Runtime.Registry, k.registry), Gateway: e.Runtime.Gateway}
}

// newKubeRuntimes wires the Kubernetes drivers to the revision in force.
func (s *Server) newKubeRuntimes(secret []byte, progressDeadline time.Duration) *kubeRuntimes {
	return &kubeRuntimes{
		env: func(name string) *spec.Environment {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.current == nil {
				return nil
			}
			return s.current.Environment(name)
		},
		envs: func() []spec.Environment {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.current == nil {
				return nil
			}
			return s.current.Platform.Environments
		},
		registry: s.ln.Addr().String(), kubeconfig: s.cfg.Kubeconfig, secret: secret, progressDeadline: progressDeadline, log: s.log,
		// Clusters pull socle's builds with a read-only token of the app.
		pullToken: newPullTokens(s.store, secret, time.Now).Token,
		drivers:   map[string]*kubernetes.Driver{}, failed: map[string]failure{},
	}
}
