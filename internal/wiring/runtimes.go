package wiring

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/kubernetes"
	"github.com/socle-dev/socle/internal/runtime/local"
	"github.com/socle-dev/socle/internal/spec"
)

// KubeRuntimes gives the environments whose runtime is kubernetes their
// driver: one per kubeconfig context, opened when an environment first
// needs it, each with a client and rate limits of its own, so that a slow
// or unreachable cluster holds up only its own environments. The kubeconfig
// is Kubeconfig, or found as kubectl finds it ($KUBECONFIG, then
// ~/.kube/config).
type KubeRuntimes struct {
	// Env returns an environment of the revision in force, nil if none.
	Env func(name string) *spec.Environment
	// Envs returns every environment of the revision in force.
	Envs func() []spec.Environment
	// Registry is socle's own registry host, the default of an
	// environment's runtime.registry.
	Registry   string
	Kubeconfig string
	// Secret derives the credentials of the resources socle provides.
	Secret []byte
	// PullToken is the token with which a cluster pulls an app's images
	// from socle's registry.
	PullToken        func(ctx context.Context, app, env string) (string, error)
	ProgressDeadline time.Duration
	Log              *slog.Logger

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

var _ reconcile.UnitRuntimes = (*KubeRuntimes)(nil)

// For returns the driver of env, nil for an environment that does not run
// on Kubernetes.
func (k *KubeRuntimes) For(env string) (runtime.UnitDriver, error) {
	e := k.Env(env)
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
func (k *KubeRuntimes) All() []runtime.UnitDriver {
	seen := map[string]bool{}
	var out []runtime.UnitDriver
	for _, e := range k.Envs() {
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

func (k *KubeRuntimes) driver(context string) (*kubernetes.Driver, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.drivers == nil {
		k.drivers, k.failed = map[string]*kubernetes.Driver{}, map[string]failure{}
	}
	if d := k.drivers[context]; d != nil {
		return d, nil
	}
	if f, ok := k.failed[context]; ok && time.Since(f.at) < kubeRetry {
		return nil, f.err
	}
	d, err := kubernetes.New(kubernetes.Options{
		Kubeconfig: k.Kubeconfig, Context: context, Target: k.target, Secret: k.Secret, PullToken: k.PullToken,
		ProgressDeadline: k.ProgressDeadline, Logger: k.Log.With("context", context),
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
func (k *KubeRuntimes) target(env string) kubernetes.Target {
	e := k.Env(env)
	if e == nil {
		return kubernetes.Target{}
	}
	return kubernetes.Target{Namespace: e.Runtime.Namespace, Registry: cmp.Or(e.Runtime.Registry, k.Registry), Gateway: e.Runtime.Gateway}
}

// LocalDriver opens the local runtime, its state kept in stateDir.
func LocalDriver(stateDir string, log *slog.Logger) (runtime.Driver, error) {
	return local.New(local.Options{StateDir: stateDir, Logger: log})
}

// Rendered is what the Kubernetes driver applies for a unit: its objects,
// and the same as a YAML stream that kubectl reads.
type Rendered struct {
	Objects []map[string]any
	YAML    []byte
}

// RenderKubernetes renders what a unit runs as on Kubernetes, in
// namespace, pulling from registry, its secret values redacted: socle
// render, offline.
func RenderKubernetes(us runtime.UnitSpec, namespace, registry string) (Rendered, error) {
	objs, err := kubernetes.Render(us, kubernetes.RenderOptions{Namespace: namespace, Registry: registry, Redact: true})
	if err != nil {
		return Rendered{}, err
	}
	out := Rendered{Objects: make([]map[string]any, len(objs))}
	for i, o := range objs {
		out.Objects[i] = o.Object
	}
	out.YAML, err = kubernetes.YAML(objs)
	return out, err
}
