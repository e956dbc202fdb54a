package kubernetes

import (
	"cmp"
	_ "embed"
	"fmt"
	"log/slog"

	"github.com/socle-dev/socle/internal/runtime"
)

// TypeName is the runtime type of environments on Kubernetes.
const TypeName = "kubernetes"

// Config is the runtime block of an environment on Kubernetes, beside
// type: kubernetes.
type Config struct {
	// Context is the kubeconfig context of the cluster (default: the
	// kubeconfig's current context).
	Context string `json:"context,omitempty"`
	// Namespace is the Kubernetes namespace of the environment's apps;
	// each environment needs one of its own.
	Namespace string `json:"namespace" jsonschema:"required,pattern=^[a-z0-9]([-a-z0-9]*[a-z0-9])?$,maxLength=63"`
	// Registry is the registry host, with an optional path prefix, from
	// which the cluster pulls the images socle builds: pods run
	// <registry>/apps/<app>@sha256:…. Default: socle's own registry, at its
	// API address.
	Registry string `json:"registry,omitempty" jsonschema:"pattern=^[a-zA-Z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$"`
	// Gateway is a Gateway API Gateway that serves the environment's apps:
	// each app with ports gets an HTTPRoute for <app>.<domain> attached to
	// it, and canary steps split requests by weight through that route
	// rather than by numbers of pods.
	Gateway *Gateway `json:"gateway,omitempty"`
}

// Gateway names a Gateway API Gateway, which the platform team owns.
type Gateway struct {
	// Name of the Gateway.
	Name string `json:"name" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"`
	// Namespace of the Gateway (default: the environment's namespace).
	Namespace string `json:"namespace,omitempty"`
	// Domain under which apps are served: <app>.<domain>.
	Domain string `json:"domain" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"`
}

// configSchema is Config's JSON Schema (TestSchemaUpToDate keeps it).
//
//go:embed schema.json
var configSchema []byte

// Runtime is the kubernetes runtime type: environments whose units socle
// applies to a namespace of a cluster. One Driver serves every environment
// of a kubeconfig context, opened with kubeconfig (empty: client-go's
// default loading rules, $KUBECONFIG then ~/.kube/config).
func Runtime(kubeconfig string) runtime.Type {
	return runtime.Type{
		Name:        TypeName,
		Description: "A namespace of a Kubernetes cluster, named by its kubeconfig context: socle applies each unit's objects there with server-side apply.",
		Schema:      configSchema,
		Decode:      decodeConfig,
		Check:       checkNamespaces,
		InstanceOf:  func(c any) string { return c.(*Config).Context },
		Open: func(h runtime.Host, context string) (runtime.Instance, error) {
			log := cmp.Or(h.Logger, slog.Default())
			d, err := New(Options{
				Kubeconfig: kubeconfig, Context: context, Secret: h.Secret, PullToken: h.PullToken,
				ProgressDeadline: h.ProgressDeadline, Logger: log.With("context", context),
				Target: func(env string) Target { return target(h, env) },
			})
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		Render: render,
	}
}

func decodeConfig(fields map[string]any) (any, []runtime.FieldProblem) {
	var c Config
	if err := runtime.DecodeFields(fields, &c); err != nil {
		return nil, []runtime.FieldProblem{{Message: err.Error()}}
	}
	return &c, nil
}

// checkNamespaces refuses two environments in one namespace of a context:
// each one's inventories and objects would be the other's.
func checkNamespaces(envs []runtime.EnvConfig) []runtime.EnvProblem {
	var out []runtime.EnvProblem
	seen := map[[2]string]string{} // context, namespace → environment
	for i, e := range envs {
		c := e.Config.(*Config)
		k := [2]string{c.Context, c.Namespace}
		if other, ok := seen[k]; ok {
			out = append(out, runtime.EnvProblem{Env: i, FieldProblem: runtime.FieldProblem{Field: []string{"namespace"},
				Message: fmt.Sprintf("environment %q already runs in namespace %q of context %q: each environment needs a namespace of its own", other, c.Namespace, c.Context)}})
			continue
		}
		seen[k] = e.Env
	}
	return out
}

// target is where env's units go, by its config in force: its namespace,
// and the registry its cluster pulls from (socle's own unless it names one).
func target(h runtime.Host, env string) Target {
	c, _ := h.Config(env).(*Config)
	if c == nil {
		return Target{}
	}
	return Target{Namespace: c.Namespace, Registry: cmp.Or(c.Registry, h.Registry), Gateway: c.Gateway}
}

// render is socle render's view of a unit: the objects the driver applies,
// secrets redacted if asked, in the environment's namespace ("default" for
// an environment of another runtime).
func render(config any, us runtime.UnitSpec, o runtime.RenderOptions) (runtime.Rendered, error) {
	ns, registry := "default", o.DefaultRegistry
	if c, _ := config.(*Config); c != nil {
		ns, registry = c.Namespace, cmp.Or(c.Registry, registry)
	}
	objs, err := Render(us, RenderOptions{Namespace: ns, Registry: cmp.Or(o.Registry, registry), Redact: o.Redact})
	if err != nil {
		return runtime.Rendered{}, err
	}
	y, err := YAML(objs)
	if err != nil {
		return runtime.Rendered{}, err
	}
	maps := make([]map[string]any, len(objs))
	for i, o := range objs {
		maps[i] = o.Object
	}
	return runtime.Rendered{Objects: maps, YAML: y}, nil
}
