package kubernetes

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/score-spec/score-go/types"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/kubernetes/kubetest"
	"github.com/socle-dev/socle/internal/spec"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var namespaces atomic.Int64

// open returns a driver on the shared test cluster whose environments all
// go to a namespace of the test's own.
func open(t *testing.T, deadline time.Duration) (*Driver, string, k8sclient.Interface) {
	t.Helper()
	return openWith(t, deadline, nil)
}

// openWith is open, with the environments' Gateway.
func openWith(t *testing.T, deadline time.Duration, gateway *Gateway) (*Driver, string, k8sclient.Interface) {
	t.Helper()
	c := kubetest.Shared(t)
	ns := fmt.Sprintf("t%d-%s", namespaces.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	ns = ns[:min(len(ns), 63)]
	d, err := New(Options{Kubeconfig: c.Kubeconfig, Context: c.Context, Secret: []byte("s"), ProgressDeadline: deadline, Simulated: true,
		Target: func(string) Target { return Target{Namespace: ns, Registry: "registry.test:5000", Gateway: gateway} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, ns, c.Client(t)
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitHealth waits until release rel's workload is in state want.
func waitHealth(t *testing.T, d *Driver, app, env, rel string, want runtime.WorkloadState) runtime.WorkloadHealth {
	t.Helper()
	ctx := ctxOf(t)
	var last []runtime.WorkloadHealth
	for ctx.Err() == nil {
		hs, err := d.Health(ctx, app, env)
		if err != nil {
			t.Fatal(err)
		}
		last = hs
		for _, h := range hs {
			if h.Release == rel && h.State == want {
				return h
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s of %s.%s never %s: %+v", rel, app, env, want, last)
	return runtime.WorkloadHealth{}
}

// waitDrift returns the unit's drift once ok holds for it: the driver reads
// from a cache that follows the cluster a moment behind.
func waitDrift(t *testing.T, d *Driver, spec runtime.UnitSpec, what string, ok func(runtime.Drift) bool) runtime.Drift {
	t.Helper()
	ctx := ctxOf(t)
	var last runtime.Drift
	for ctx.Err() == nil {
		dr, err := d.Drift(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if last = dr; ok(dr) {
			return dr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("drift never %s: last %+v", what, last)
	return last
}

func noDrift(dr runtime.Drift) bool { return dr.Applied && len(dr.Changes) == 0 }

func unitSpec(u *plan.Unit, rel string) runtime.UnitSpec {
	return runtime.UnitSpec{App: u.App, Env: u.Env, Workloads: []runtime.Workload{{Release: rel, Unit: u, Artifact: testDigest}}}
}

func fixedReplicas(u *plan.Unit, n int) *plan.Unit {
	c := *u
	c.Replicas = spec.Replicas{Min: n, Max: n}
	return &c
}

// TestApplyAndPrune: a unit's objects are applied under socle's field
// manager, become healthy, and pruning deletes exactly them: not another
// app's, not an object nobody applied through socle.
func TestApplyAndPrune(t *testing.T) {
	d, ns, kc := open(t, time.Minute)
	ctx := ctxOf(t)
	units := demoUnits(t)
	for _, app := range []string{"web", "api", "worker"} {
		if err := d.Apply(ctx, unitSpec(units[app], "r1")); err != nil {
			t.Fatalf("applying %s: %v", app, err)
		}
	}
	h := waitHealth(t, d, "web", "dev", "r1", runtime.WorkloadHealthy)
	t.Logf("web healthy: %+v", h)
	dep, err := kc.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(dep.ManagedFields, func(m metav1.ManagedFieldsEntry) bool {
		return m.Manager == FieldManager && m.Operation == metav1.ManagedFieldsOperationApply
	}) {
		t.Errorf("the Deployment is not applied by %s: %+v", FieldManager, dep.ManagedFields)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "registry.test:5000/apps/web@"+testDigest {
		t.Errorf("image %s, want the digest in the cluster's registry", img)
	}
	if _, err := kc.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("web has replicas 1..2 and no autoscaler: %v", err)
	}
	// Someone else's ConfigMap, labelled like web's.
	mine := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-notes", Labels: map[string]string{LabelApp: "web", LabelEnv: "dev"}}}
	if _, err := kc.CoreV1().ConfigMaps(ns).Create(ctx, mine, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	keys, err := d.Units(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"api", "web", "worker"} {
		if !slices.Contains(keys, runtime.UnitKey{App: app, Env: "dev"}) {
			t.Errorf("Units = %v, lacks %s", keys, app)
		}
	}

	n, err := d.Prune(ctx, "web", "dev")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned %d objects of web", n)
	for kind, get := range map[string]func(string) error{
		"Deployment": func(n string) error {
			_, err := kc.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{})
			return err
		},
		"Service": func(n string) error { _, err := kc.CoreV1().Services(ns).Get(ctx, n, metav1.GetOptions{}); return err },
		"HPA": func(n string) error {
			_, err := kc.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, n, metav1.GetOptions{})
			return err
		},
		"PDB": func(n string) error {
			_, err := kc.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, n, metav1.GetOptions{})
			return err
		},
		"Secret": func(n string) error {
			_, err := kc.CoreV1().Secrets(ns).Get(ctx, n, metav1.GetOptions{})
			return err
		},
	} {
		name := "web"
		if kind == "Secret" {
			name = inventoryName("web")
		}
		if err := get(name); !apierrors.IsNotFound(err) {
			t.Errorf("%s %s after the prune: %v, want not found", kind, name, err)
		}
		if kind != "Secret" && kind != "HPA" {
			if err := get("api"); err != nil {
				t.Errorf("%s api after web's prune: %v", kind, err)
			}
		}
	}
	if _, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, "web-notes", metav1.GetOptions{}); err != nil {
		t.Errorf("a ConfigMap socle never applied was deleted: %v", err)
	}
	if _, err := kc.CoreV1().Secrets(ns).Get(ctx, "api-r1-secrets", metav1.GetOptions{}); err != nil {
		t.Errorf("api's Secret after web's prune: %v", err)
	}
	if n, err := d.Prune(ctx, "web", "dev"); err != nil || n != 0 {
		t.Errorf("second prune = %d, %v; want nothing", n, err)
	}
}

// TestDrift: a hand scale and a hand edit of socle's fields are drift,
// which Apply corrects; an autoscaler's replicas are not socle's.
func TestDrift(t *testing.T) {
	d, ns, kc := open(t, time.Minute)
	ctx := ctxOf(t)
	units := demoUnits(t)
	fixed := unitSpec(fixedReplicas(units["web"], 2), "r1")
	if err := d.Apply(ctx, fixed); err != nil {
		t.Fatal(err)
	}
	waitDrift(t, d, fixed, "applied without change", noDrift)
	// kubectl scale deployment/web --replicas=5
	if _, err := kc.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 5},
	}, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
	dr := waitDrift(t, d, fixed, "the hand scale", func(dr runtime.Drift) bool { return len(dr.Changes) > 0 })
	if len(dr.Changes) != 1 || !strings.Contains(dr.Changes[0], "spec.replicas: 5, socle applies 2") {
		t.Fatalf("Drift after a hand scale = %+v", dr)
	}
	// kubectl edit: a variable changed. Like kubectl, read and write again
	// when the controller updated the object in between.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		dep, err := kc.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		env := dep.Spec.Template.Spec.Containers[0].Env
		i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "LOG_LEVEL" })
		if i < 0 {
			return fmt.Errorf("no LOG_LEVEL in %+v", env)
		}
		env[i].Value = "trace"
		_, err = kc.AppsV1().Deployments(ns).Update(ctx, dep, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	dr = waitDrift(t, d, fixed, "the hand edit", func(dr runtime.Drift) bool { return len(dr.Changes) > 1 })
	if len(dr.Changes) != 2 || !strings.Contains(dr.Changes[1], "env[LOG_LEVEL].value: trace, socle applies debug") {
		t.Fatalf("Drift after a hand edit = %+v; want the scale and the variable", dr)
	}
	t.Logf("drift: %q", dr.Changes)
	if err := d.Apply(ctx, fixed); err != nil {
		t.Fatal(err)
	}
	waitDrift(t, d, fixed, "corrected", noDrift)
	if dep, _ := kc.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d after the correction, want 2", *dep.Spec.Replicas)
	}

	// With an autoscaler (replicas 1..3) the count is the autoscaler's.
	scaled := unitSpec(units["web"], "r1")
	scaled.Workloads[0].Unit = func() *plan.Unit { c := *units["web"]; c.Replicas = spec.Replicas{Min: 1, Max: 3}; return &c }()
	if err := d.Apply(ctx, scaled); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 3},
	}, metav1.UpdateOptions{FieldManager: "horizontal-pod-autoscaler"}); err != nil {
		t.Fatal(err)
	}
	// The scale reaches the cache; it is never drift.
	waitUntilScaled := func() bool {
		dep, err := d.cached(ctx, ns, "Deployment", "web")
		r, _, _ := unstructuredInt(dep, "spec", "replicas")
		return err == nil && r == 3
	}
	for !waitUntilScaled() && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if dr, err := d.Drift(ctx, scaled); err != nil || !noDrift(dr) {
		t.Errorf("Drift with an autoscaler's replicas = %+v, %v; want none", dr, err)
	}
	if dr, err := d.Drift(ctx, fixed); err != nil || dr.Applied {
		t.Errorf("Drift of a spec other than the applied one = %+v, %v; want not applied", dr, err)
	}
}

// TestStuckRolloutRestored: a release whose pods can never be scheduled is
// Failed past its progress deadline, with the scheduler's reason; Restore
// brings back the release before it, and prunes the failed one's objects.
func TestStuckRolloutRestored(t *testing.T) {
	d, ns, kc := open(t, 3*time.Second)
	ctx := ctxOf(t)
	good := fixedReplicas(demoUnits(t)["api"], 1)
	if err := d.Apply(ctx, unitSpec(good, "r1")); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, d, "api", "dev", "r1", runtime.WorkloadHealthy)

	bad := *good
	c := bad.Containers["api"]
	huge := "1000"
	c.Resources = &types.ContainerResources{Requests: &types.ResourcesLimits{Cpu: &huge}}
	bad.Containers = map[string]types.Container{"api": c}
	next := unitSpec(&bad, "r2")
	next.Keep = []string{"r1"}
	if err := d.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	h := waitHealth(t, d, "api", "dev", "r2", runtime.WorkloadFailed)
	if !strings.Contains(h.Message, "Unschedulable") {
		t.Errorf("failed rollout says %q, want the scheduler's reason", h.Message)
	}
	t.Logf("failed: %s", h.Message)
	if _, err := kc.CoreV1().Secrets(ns).Get(ctx, "api-r1-secrets", metav1.GetOptions{}); err != nil {
		t.Errorf("r1's Secret, kept during r2's rollout: %v", err)
	}

	if err := d.Restore(ctx, "api", "dev", "r1"); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, d, "api", "dev", "r1", runtime.WorkloadHealthy)
	dep, err := kc.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rel := dep.Spec.Template.Labels[LabelRelease]; rel != "r1" {
		t.Errorf("Deployment runs %s after Restore, want r1", rel)
	}
	if _, err := kc.CoreV1().Secrets(ns).Get(ctx, "api-r2-secrets", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the failed release's Secret after Restore: %v, want pruned", err)
	}
	waitDrift(t, d, unitSpec(good, "r1"), "r1 applied as it was", noDrift)
}

// TestBlueGreenSwitch: a dedicated Deployment per release, the service's
// selector moved from the old release to the new one, the old one pruned.
func TestBlueGreenSwitch(t *testing.T) {
	d, ns, kc := open(t, time.Minute)
	ctx := ctxOf(t)
	u := fixedReplicas(demoUnits(t)["web"], 2)
	blue := runtime.Workload{Release: "r1", Unit: u, Artifact: testDigest, Dedicated: true}
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{blue}, Serve: "r1"}); err != nil {
		t.Fatal(err)
	}
	green := blue
	green.Release = "r2"
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{green}, Keep: []string{"r1"}, Serve: "r1"}); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, d, "web", "dev", "r2", runtime.WorkloadHealthy)
	selector := func() string {
		svc, err := kc.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return svc.Spec.Selector[LabelRelease]
	}
	if got := selector(); got != "r1" {
		t.Fatalf("service selects %q while green starts, want r1", got)
	}
	hs, _ := d.Health(ctx, "web", "dev")
	if len(hs) != 2 || hs[0].Release != "r2" || hs[1].Release != "r1" {
		t.Fatalf("Health = %+v, want r2 then r1", hs)
	}
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{green}, Serve: "r2"}); err != nil {
		t.Fatal(err)
	}
	if got := selector(); got != "r2" {
		t.Errorf("service selects %q after the switch, want r2", got)
	}
	if _, err := kc.AppsV1().Deployments(ns).Get(ctx, "web-r1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("blue's Deployment after the switch: %v, want pruned", err)
	}
}

func unstructuredInt(u *unstructured.Unstructured, path ...string) (int64, bool, error) {
	if u == nil {
		return 0, false, nil
	}
	return unstructured.NestedInt64(u.Object, path...)
}

// TestWeightedCanary: on a cluster that serves the Gateway API (its
// HTTPRoute definition installed from gateway-api v1.4.0; no controller
// routes anything here, the objects are what is checked), a canary step
// gives the new release exactly its weight through the unit's HTTPRoute,
// and the final step routes everything to the unit's service again.
func TestWeightedCanary(t *testing.T) {
	c := kubetest.Shared(t)
	installHTTPRoutes(t, c)
	d, ns, kc := openWith(t, time.Minute, &Gateway{Name: "public", Namespace: "gateways", Domain: "example.test"})
	ctx := ctxOf(t)
	u := fixedReplicas(demoUnits(t)["web"], 2)
	old := runtime.Workload{Release: "r1", Unit: u, Artifact: testDigest, Dedicated: true}
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{old}, Serve: "r1"}); err != nil {
		t.Fatal(err)
	}
	routes := d.dyn.Resource(resources["HTTPRoute"]).Namespace(ns)
	backends := func() string {
		r, err := routes.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		refs, _, _ := unstructured.NestedSlice(r.Object, "spec", "rules")
		var out []string
		for _, ref := range refs[0].(map[string]any)["backendRefs"].([]any) {
			m := ref.(map[string]any)
			out = append(out, fmt.Sprintf("%s=%v", m["name"], m["weight"]))
		}
		return strings.Join(out, ",")
	}
	if got := backends(); got != "web=100" {
		t.Errorf("steady route: %s, want web=100", got)
	}
	canary := old
	canary.Release, canary.Replicas = "r2", 1
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{canary}, Keep: []string{"r1"}, Weight: 10}); err != nil {
		t.Fatal(err)
	}
	if got := backends(); got != "web-r2=10,web=90" {
		t.Errorf("canary route: %s, want web-r2=10,web=90", got)
	}
	for name, rel := range map[string]string{"web": "r1", "web-r2": "r2"} {
		svc, err := kc.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || svc.Spec.Selector[LabelRelease] != rel {
			t.Errorf("service %s selects %v (%v), want release %s", name, svc.Spec.Selector, err, rel)
		}
	}
	final := canary
	final.Replicas = 0
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{final}, Serve: "r2"}); err != nil {
		t.Fatal(err)
	}
	if got := backends(); got != "web=100" {
		t.Errorf("route after the canary: %s, want web=100", got)
	}
	if _, err := kc.CoreV1().Services(ns).Get(ctx, "web-r2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the canary's own service after the canary: %v, want pruned", err)
	}
	waitDrift(t, d, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{final}, Serve: "r2"}, "applied without change", noDrift)
}

// installHTTPRoutes installs the Gateway API's HTTPRoute definition and
// waits until the API server serves it.
func installHTTPRoutes(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	b, err := os.ReadFile("testdata/gateway-api/gateway.networking.k8s.io_httproutes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(b, &crd.Object); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxOf(t)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Apply(ctx, crd.GetName(), &crd, metav1.ApplyOptions{FieldManager: "test", Force: true}); err != nil {
		t.Fatal(err)
	}
	kc := c.Client(t)
	for ctx.Err() == nil {
		if list, err := kc.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1"); err == nil &&
			slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == "httproutes" }) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the API server never served HTTPRoutes")
}
