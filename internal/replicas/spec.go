package replicas

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/score-spec/score-go/framework"
	"github.com/score-spec/score-go/types"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// Images unpacks the images replicas run.
type Images interface {
	// Unpack returns the unpacked filesystem and configuration of the
	// image of a container whose Score image is image ("." for socle's
	// build), pinned to digest ("" for the image as written).
	Unpack(ctx context.Context, image, digest string) (Image, error)
}

// Image is an unpacked image, ready for a runtime that runs host executables.
type Image struct {
	Root       string
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=value
	WorkingDir string
}

// replicaSpec is what every replica of workload wl runs: the image's
// entrypoint, or the Score container's command and args; the image's
// environment, then the container's variables with placeholders resolved;
// the service ports and the probes. A replica runs one container: a
// workload with several runs its first one (in name order), which
// Capabilities says.
func (r *Runtime) replicaSpec(ctx context.Context, wl runtime.Workload) (runtime.ReplicaSpec, error) {
	d := wl.Unit
	names := slices.Sorted(maps.Keys(d.Containers))
	if len(names) == 0 {
		return runtime.ReplicaSpec{}, fmt.Errorf("the workload has no container: %w", runtime.ErrInvalidUnit)
	}
	c := d.Containers[names[0]]
	pin := wl.Images[names[0]]
	if wl.Images == nil && c.Image == "." {
		pin = wl.Artifact
	}
	img, err := r.cfg.Images.Unpack(ctx, c.Image, pin)
	if err != nil {
		return runtime.ReplicaSpec{}, fmt.Errorf("unpacking the image of container %s (%s): %w", names[0], short(pin), err)
	}
	vars, err := resolveVariables(d, c.Variables, r.cfg.Secret, r.cfg.Resources)
	if err != nil {
		return runtime.ReplicaSpec{}, err
	}
	if err := r.resolveRefs(ctx, d, vars); err != nil {
		return runtime.ReplicaSpec{}, err
	}
	env := make(map[string]string, len(img.Env)+len(vars))
	for _, kv := range img.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	maps.Copy(env, vars)
	limits, err := limitsOf(c.Resources)
	if err != nil {
		return runtime.ReplicaSpec{}, fmt.Errorf("container %s: %w: %w", names[0], err, runtime.ErrInvalidUnit)
	}
	s := runtime.ReplicaSpec{
		Ref:        runtime.Ref{App: d.App, Env: d.Env, Release: wl.Release},
		Image:      r.imageRef(d.App, c.Image, pin),
		Root:       img.Root,
		Limits:     limits,
		Command:    slices.Clone(img.Entrypoint),
		Args:       slices.Clone(img.Cmd),
		Variables:  env,
		WorkingDir: img.WorkingDir,
		// Replicas of a release fail alike: a short backoff finds a crash
		// loop fast, and a rollout stops waiting for it.
		Restart:     runtime.RestartPolicy{Backoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second, CrashLoopAfter: 3},
		GracePeriod: 10 * time.Second,
	}
	if len(c.Command) > 0 {
		s.Command, s.Args = slices.Clone(c.Command), slices.Clone(c.Args)
	} else if len(c.Args) > 0 {
		s.Args = slices.Clone(c.Args)
	}
	if d.Service != nil {
		for _, name := range slices.Sorted(maps.Keys(d.Service.Ports)) {
			p := d.Service.Ports[name]
			port := p.Port
			if p.TargetPort != nil {
				port = *p.TargetPort
			}
			s.Ports = append(s.Ports, runtime.Port{Name: name, Port: port})
		}
	}
	s.Readiness = probe(c.ReadinessProbe)
	s.Liveness = probe(c.LivenessProbe)
	return s, nil
}

// References resolves a reference to a secret manager in an
// environment (the server's reads the stores of the revision in force,
// and tells its redactor of the value).
type References interface {
	Resolve(ctx context.Context, env string, ref spec.SecretRef) (string, error)
}

// resolveRefs replaces the value of each of the unit's secrets that is a
// reference to a secret manager with the value it refers to, read now:
// it goes to the replica's environment, and nowhere else. A reference that
// does not resolve keeps the replica from starting (the pipeline checked
// it when it planned: one that fails now, the store went away since).
func (r *Runtime) resolveRefs(ctx context.Context, u *plan.Unit, vars map[string]string) error {
	for _, n := range u.Secrets {
		ref, ok, err := spec.ParseSecretRef(vars[n])
		if !ok {
			continue
		}
		if err == nil && r.cfg.References == nil {
			err = fmt.Errorf("%s: socle resolves no references here", ref)
		}
		if err == nil {
			var v string
			if v, err = r.cfg.References.Resolve(ctx, u.Env, ref); err == nil {
				vars[n] = v
				continue
			}
		}
		return fmt.Errorf("secret %s of %s @ %s not resolved: %w", n, u.App, u.Env, err)
	}
	return nil
}

func probe(p *types.ContainerProbe) *runtime.Probe {
	if p == nil {
		return nil
	}
	out := &runtime.Probe{Period: 250 * time.Millisecond} // a new replica joins within a period of being ready
	if g := p.HttpGet; g != nil {
		h := &runtime.HTTPGetAction{Path: g.Path, Port: g.Port}
		if g.Scheme != nil {
			h.Scheme = string(*g.Scheme)
		}
		for _, hd := range g.HttpHeaders {
			h.Headers = append(h.Headers, runtime.Header{Name: hd.Name, Value: hd.Value})
		}
		out.HTTPGet = h
		return out
	}
	if e := p.Exec; e != nil {
		out.Exec = &runtime.ExecAction{Command: slices.Clone(e.Command)}
		return out
	}
	return nil
}

// Resources are the outputs of the resources socle provisions for units.
type Resources interface {
	// Outputs returns the outputs of u's resources that socle provisions,
	// by the resource's name in u's workload. A resource it leaves out is
	// not provisioned by socle: it reads the outputs
	// runtime.ResourceOutputs makes up.
	Outputs(u *plan.Unit) (map[string]provision.Outputs, error)
}

// resolveVariables fills a container's ${metadata…} and ${resources…}
// placeholders, with Score's own substitution: a resource socle provisions
// gives its outputs, one it does not the outputs runtime.ResourceOutputs
// makes up (a host, a port, a derived password of nothing that exists).
func resolveVariables(u *plan.Unit, vars map[string]string, secret []byte, res Resources) (map[string]string, error) {
	meta := map[string]any(u.Metadata)
	if meta == nil {
		meta = map[string]any{"name": u.App}
	}
	lookups := runtime.ResourceOutputs(u, secret, func(string) string { return "127.0.0.1" })
	provisioned, err := provisionedOutputs(u, res)
	if err != nil {
		return nil, err
	}
	for name, o := range provisioned {
		lookups[name] = outputLookup(name, u.Resources[name].Type, o.Values)
	}
	score := framework.BuildSubstitutionFunction(meta, lookups)
	// socle's port placeholders stay as written: the driver expands them
	// once it has chosen the replica's ports (runtime.PortPlaceholder).
	fn := func(ref string) (string, error) {
		if ref == "socle.port" || strings.HasPrefix(ref, "socle.port.") {
			return "${" + ref + "}", nil
		}
		return score(ref)
	}
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		r, err := framework.SubstituteString(v, fn)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
}

func provisionedOutputs(u *plan.Unit, res Resources) (map[string]provision.Outputs, error) {
	if res == nil || len(u.Resources) == 0 {
		return nil, nil
	}
	return res.Outputs(u)
}

// outputLookup reads the outputs of a provisioned resource.
func outputLookup(name, typ string, values map[string]string) framework.OutputLookupFunc {
	have := func() string { return strings.Join(slices.Sorted(maps.Keys(values)), ", ") }
	return func(keys ...string) (any, error) {
		if len(keys) != 1 {
			return nil, fmt.Errorf("resource %s (%s) has outputs %s", name, typ, have())
		}
		v, ok := values[keys[0]]
		if !ok {
			return nil, fmt.Errorf("resource %s (%s) has no output %q (it has %s)", name, typ, keys[0], have())
		}
		return v, nil
	}
}

// SecretValues returns the values a unit's replicas see that are secret:
// its secret variables as resolved, the secret outputs of the resources
// socle provisions for it, and the made-up password of those it does not.
// The server redacts them from what it shows.
func SecretValues(u *plan.Unit, secret []byte, res Resources) []string {
	var out []string
	provisioned, _ := provisionedOutputs(u, res) // a resource not provisioned yet has no secret to hide
	for name := range u.Resources {
		if o, ok := provisioned[name]; ok {
			out = append(out, o.Secrets()...)
			continue
		}
		vals, err := resolveVariables(u, map[string]string{"p": "${resources." + name + ".password}"}, secret, nil)
		if err == nil {
			out = append(out, vals["p"])
		}
	}
	names := u.SecretVariables()
	if len(names) == 0 {
		return out
	}
	// Each variable on its own: one that does not resolve (a resource not
	// provisioned yet) leaves the others redacted.
	for _, c := range u.Containers {
		for _, n := range names {
			raw, ok := c.Variables[n]
			if !ok {
				continue
			}
			if vals, err := resolveVariables(u, map[string]string{n: raw}, secret, res); err == nil {
				out = append(out, vals[n])
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// imageRef is the reference by which a runtime that pulls images pulls the
// image of a container whose Score image is image, pinned to digest ("":
// the image as written): socle's build from socle's registry, under the
// app's repository (where its pull token reads), an external image from
// its own repository. It is what the Kubernetes runtime renders.
func (r *Runtime) imageRef(app, image, digest string) string {
	switch {
	case digest == "":
		return image
	case image == ".":
		return strings.TrimSuffix(r.cfg.Registry, "/") + "/apps/" + app + "@" + digest
	}
	repo, _, _ := strings.Cut(image, "@")
	slash := strings.LastIndex(repo, "/")
	if colon := strings.LastIndex(repo, ":"); colon > slash {
		repo = repo[:colon] // a tag
	}
	return repo + "@" + digest
}

// limitsOf reads the Score container's resources.limits: cpu and memory as
// Kubernetes quantities ("500m", "2", "256Mi").
func limitsOf(res *types.ContainerResources) (runtime.Limits, error) {
	var l runtime.Limits
	if res == nil || res.Limits == nil {
		return l, nil
	}
	if v := res.Limits.Cpu; v != nil {
		q, err := resource.ParseQuantity(*v)
		if err != nil || q.Sign() < 0 {
			return l, fmt.Errorf("resources.limits.cpu: %q is not a quantity of CPU (500m, 2)", *v)
		}
		l.MilliCPU = q.MilliValue()
	}
	if v := res.Limits.Memory; v != nil {
		q, err := resource.ParseQuantity(*v)
		if err != nil || q.Sign() < 0 {
			return l, fmt.Errorf("resources.limits.memory: %q is not a quantity of memory (256Mi, 1Gi)", *v)
		}
		l.Memory = q.Value()
	}
	return l, nil
}
