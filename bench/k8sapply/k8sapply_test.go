package k8sapply

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socle-dev/socle/bench/internal/peak"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/kubernetes"
	"github.com/socle-dev/socle/internal/runtime/kubernetes/kubetest"
	"github.com/socle-dev/socle/internal/spec"
)

var (
	apps    = flag.Int("apps", 0, "apps per environment (two environments); 0 skips the bench")
	workers = flag.Int("workers", 64, "units handled at once")
	qps     = flag.Float64("qps", 0, "client QPS limit (0: the driver's default)")
	resyncs = flag.Int("resyncs", 3, "no-change resyncs to time")
	heap    = flag.String("heapprofile", "", "write a heap profile here after the resyncs")
)

const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// TestBench applies the units and observes them as the reconciler does: a
// rollout is one Apply then Health until healthy; a pass over an unchanged
// unit is one Drift (which finds it applied and unchanged) and one Health.
// It leaves out what the reconciler adds around the driver (reading the
// current release from the store), which is measured by bench/loadplan and
// the store's own benches.
func TestBench(t *testing.T) {
	if *apps == 0 {
		t.Skip("set -apps to run the bench")
	}
	c := kubetest.Start(t)
	d, err := kubernetes.New(kubernetes.Options{
		Kubeconfig: c.Kubeconfig, Context: c.Context, Secret: []byte("bench"), QPS: float32(*qps),
		Target: func(env string) kubernetes.Target {
			return kubernetes.Target{Namespace: "bench-" + env, Registry: "registry.bench:5000"}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	specs := units(t, *apps)
	ctx := t.Context()
	fmt.Printf("k8sapply: %d units (%d apps × 2 environments), %d at once, on kube-apiserver %s with kwok\n", len(specs), *apps, *workers, kubetest.KubeVersion)

	start := time.Now()
	each(specs, func(s runtime.UnitSpec) error { return d.Apply(ctx, s) }, t)
	applied := time.Since(start)
	for {
		var unhealthy atomic.Int64
		each(specs, func(s runtime.UnitSpec) error {
			hs, err := d.Health(ctx, s.App, s.Env)
			if err != nil {
				return err
			}
			if len(hs) != 1 || hs[0].State != runtime.WorkloadHealthy {
				unhealthy.Add(1)
			}
			return nil
		}, t)
		if unhealthy.Load() == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		time.Sleep(time.Second)
	}
	healthy := time.Since(start)
	fmt.Printf("  applied in %s; all healthy %s after the first apply\n", applied.Round(time.Millisecond), healthy.Round(time.Millisecond))

	for i := range *resyncs {
		start := time.Now()
		var changed atomic.Int64
		each(specs, func(s runtime.UnitSpec) error {
			dr, err := d.Drift(ctx, s)
			if err != nil {
				return err
			}
			if !dr.Applied || len(dr.Changes) > 0 {
				changed.Add(1)
			}
			_, err = d.Health(ctx, s.App, s.Env)
			return err
		}, t)
		if changed.Load() > 0 {
			t.Errorf("resync %d: %d units not as applied", i+1, changed.Load())
		}
		fmt.Printf("  no-change resync %d: %s\n", i+1, time.Since(start).Round(time.Millisecond))
	}
	if *heap != "" {
		f, err := os.Create(*heap)
		if err != nil {
			t.Fatal(err)
		}
		goruntime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	fmt.Printf("  peak RSS of the process %s; heap in use now %d MB\n", peak.String(), ms.HeapInuse>>20)
}

// units are copies of the demo's web app in dev, one replica each.
func units(t *testing.T, n int) []runtime.UnitSpec {
	repo, problems := spec.Load(os.DirFS("../../examples/platform"))
	if problems.Errors() > 0 {
		t.Fatalf("the demo does not load: %v", problems)
	}
	var web *plan.Unit
	for _, u := range plan.Desired(repo, "0123456789abcdef0123456789abcdef01234567", nil) {
		if u.App == "web" && u.Env == "dev" {
			web = &u
		}
	}
	var out []runtime.UnitSpec
	for _, env := range []string{"dev", "prod"} {
		for i := range n {
			u := *web
			u.App, u.Env = fmt.Sprintf("app-%04d", i), env
			u.Replicas = spec.Replicas{Min: 1, Max: 1}
			out = append(out, runtime.UnitSpec{App: u.App, Env: env, Workloads: []runtime.Workload{{Release: "r1", Unit: &u, Artifact: digest}}})
		}
	}
	return out
}

// each runs f on every unit, *workers at a time.
func each(specs []runtime.UnitSpec, f func(runtime.UnitSpec) error, t *testing.T) {
	next := make(chan runtime.UnitSpec)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range *workers {
		wg.Go(func() {
			for s := range next {
				if err := f(s); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, s := range specs {
		next <- s
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}
