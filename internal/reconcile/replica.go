package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
)

// replicaSpec is what every replica of a release runs: the image's
// entrypoint, or the Score container's command and args; the image's
// environment, then the container's variables with placeholders resolved;
// the service ports and the probes. socle runs one container per replica:
// a workload with several containers runs its first one (in name order) and
// the status says so.
func (w *worker) replicaSpec(ctx context.Context, d *plan.Unit, rel, digest string) (runtime.ReplicaSpec, error) {
	names := slices.Sorted(maps.Keys(d.Containers))
	if len(names) == 0 {
		return runtime.ReplicaSpec{}, fmt.Errorf("the workload has no container")
	}
	c := d.Containers[names[0]]
	pins, err := w.e.cfg.Images.Pins(ctx, *d, digest)
	if err != nil {
		return runtime.ReplicaSpec{}, fmt.Errorf("reading the images of %s: %w", short(digest), err)
	}
	img, err := w.e.cfg.Images.Unpack(ctx, c.Image, pins[names[0]])
	if err != nil {
		return runtime.ReplicaSpec{}, fmt.Errorf("unpacking the image of container %s (%s): %w", names[0], short(pins[names[0]]), err)
	}
	vars, err := resolveVariables(d, c.Variables, w.e.cfg.Secret)
	if err != nil {
		return runtime.ReplicaSpec{}, err
	}
	env := make(map[string]string, len(img.Env)+len(vars))
	for _, kv := range img.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	maps.Copy(env, vars)
	s := runtime.ReplicaSpec{
		Ref:        runtime.Ref{App: d.App, Env: d.Env, Release: rel},
		Root:       img.Root,
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
