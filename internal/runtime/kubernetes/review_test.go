package kubernetes

import (
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// withSecret is u with a secret variable API_TOKEN of value v in its first
// container; it returns the key of the variable in the release's Secret.
func withSecret(u *plan.Unit, v string) (*plan.Unit, string) {
	c := *u
	name := slices.Sorted(maps.Keys(u.Containers))[0]
	ct := u.Containers[name]
	ct.Variables = maps.Clone(ct.Variables)
	if ct.Variables == nil {
		ct.Variables = map[string]string{}
	}
	ct.Variables["API_TOKEN"] = v
	c.Containers = maps.Clone(u.Containers)
	c.Containers[name] = ct
	c.Secrets = append(slices.Clone(u.Secrets), "API_TOKEN")
	return &c, name + ".API_TOKEN"
}

// TestSecretsStayInSecrets: a secret variable's value is in no ConfigMap
// (the inventory included), a drifted Secret is reported by its keys
// alone, and Restore still brings the value back exactly.
func TestSecretsStayInSecrets(t *testing.T) {
	d, ns, kc := open(t, time.Minute)
	ctx := ctxOf(t)
	const v1, v2, hand = "tok-s3cr3t-one", "tok-s3cr3t-two", "hand-typed-s3cr3t"
	u1, key := withSecret(fixedReplicas(demoUnits(t)["web"], 1), v1)
	u2, _ := withSecret(fixedReplicas(demoUnits(t)["web"], 1), v2)
	r1 := unitSpec(u1, "r1")
	if err := d.Apply(ctx, r1); err != nil {
		t.Fatal(err)
	}
	noValue := func(what string) {
		t.Helper()
		cms, err := kc.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range cms.Items {
			for k, x := range cm.Data {
				for _, v := range []string{v1, v2, base64.StdEncoding.EncodeToString([]byte(v1))} {
					if strings.Contains(x, v) {
						t.Errorf("%s: ConfigMap %s, key %s, holds a secret value", what, cm.Name, k)
					}
				}
			}
		}
	}
	noValue("after r1")
	if _, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, inventoryName("web"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the inventory readable as a ConfigMap: %v", err)
	}

	// kubectl edit secret: drift, told without the values.
	s, err := kc.CoreV1().Secrets(ns).Get(ctx, "web-r1-secrets", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data[key] = []byte(hand)
	if _, err := kc.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	dr := waitDrift(t, d, r1, "the hand edit", func(dr runtime.Drift) bool { return len(dr.Changes) > 0 })
	all := strings.Join(dr.Changes, "\n")
	t.Logf("drift: %q", dr.Changes)
	if !strings.Contains(all, key) {
		t.Errorf("drift %q does not name the key %s", all, key)
	}
	for _, v := range []string{v1, hand} {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(all, form) {
				t.Errorf("drift %q shows a secret value (%s)", all, form)
			}
		}
	}

	next := unitSpec(u2, "r2")
	next.Keep = []string{"r1"}
	if err := d.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	noValue("after r2")
	if err := d.Restore(ctx, "web", "dev", "r1"); err != nil {
		t.Fatal(err)
	}
	if s, err := kc.CoreV1().Secrets(ns).Get(ctx, "web-r1-secrets", metav1.GetOptions{}); err != nil || string(s.Data[key]) != v1 {
		t.Errorf("r1's secret after Restore: %q (%v), want the value r1 was applied with", s.Data[key], err)
	}
	waitDrift(t, d, r1, "r1 restored as it was applied", noDrift)
}

func ranged(u *plan.Unit, lo, hi int) *plan.Unit {
	c := *u
	c.Replicas = spec.Replicas{Min: lo, Max: hi}
	return &c
}

// TestAutoscaledStartsAtMinimum: an autoscaled Deployment starts at the
// autoscaler's minimum, new or handed over from a fixed count, and keeps
// what the autoscaler scaled it to.
func TestAutoscaledStartsAtMinimum(t *testing.T) {
	d, ns, kc := open(t, time.Minute)
	ctx := ctxOf(t)
	web := demoUnits(t)["web"]
	replicas := func(name string) int32 {
		t.Helper()
		dep, err := kc.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *dep.Spec.Replicas
	}
	if err := d.Apply(ctx, unitSpec(fixedReplicas(web, 2), "r1")); err != nil {
		t.Fatal(err)
	}
	// Fixed 2 to 3..5: up to 3, and not down to 1 when socle lets go of
	// the count.
	scaled := unitSpec(ranged(web, 3, 5), "r1")
	for i := range 2 {
		if err := d.Apply(ctx, scaled); err != nil {
			t.Fatal(err)
		}
		if n := replicas("web"); n != 3 {
			t.Fatalf("apply %d of 3..5 after a fixed 2: %d replicas, want 3", i+1, n)
		}
	}
	// The autoscaler scales to 4: socle keeps it, and sees no drift.
	if _, err := kc.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 4},
	}, metav1.UpdateOptions{FieldManager: "horizontal-pod-autoscaler"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, unitSpec(ranged(web, 2, 5), "r1")); err != nil {
		t.Fatal(err)
	}
	if n := replicas("web"); n != 4 {
		t.Errorf("after the autoscaler's 4 and an apply of 2..5: %d replicas, want 4", n)
	}
	waitDrift(t, d, unitSpec(ranged(web, 2, 5), "r1"), "none with the autoscaler's count", noDrift)

	// A blue/green release's own Deployment starts at the minimum.
	green := runtime.Workload{Release: "r2", Unit: ranged(web, 3, 5), Artifact: testDigest, Dedicated: true}
	bg := runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{green}, Keep: []string{"r1"}, Serve: "r1"}
	for range 2 {
		if err := d.Apply(ctx, bg); err != nil {
			t.Fatal(err)
		}
		if n := replicas("web-r2"); n != 3 {
			t.Fatalf("a new autoscaled Deployment of 3..5: %d replicas, want 3", n)
		}
	}
	h := waitHealth(t, d, "web", "dev", "r2", runtime.WorkloadHealthy)
	if h.Ready < 3 {
		t.Errorf("r2 healthy at %d ready, want at least 3", h.Ready)
	}
}

// TestNoTakeOver: an object of the same name that socle did not apply for
// the unit (Helm's, by hand) is neither taken over nor pruned.
func TestNoTakeOver(t *testing.T) {
	d, ns, kc := open(t, time.Minute)
	ctx := ctxOf(t)
	web := fixedReplicas(demoUnits(t)["web"], 1)
	if err := d.ensureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web", labelManagedBy: "Helm"}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := d.Apply(ctx, unitSpec(web, "r1"))
	if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "Service") {
		t.Fatalf("Apply beside Helm's Service web = %v, want ErrNotOwned naming it", err)
	}
	t.Logf("refused: %v", err)
	if _, err := d.Prune(ctx, "web", "dev"); err != nil {
		t.Fatal(err)
	}
	live, err := kc.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || live.Labels[labelManagedBy] != "Helm" || live.Labels[LabelApp] != "" {
		t.Fatalf("Helm's Service after the refused apply and a prune: %+v, %v", live, err)
	}

	// A hand-made Deployment named like a blue/green release's.
	if err := kc.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	sel := map[string]string{"app": "web-r2"}
	hand := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web-r2"}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: sel},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}},
	}}
	if _, err := kc.AppsV1().Deployments(ns).Create(ctx, hand, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	blue := runtime.Workload{Release: "r1", Unit: web, Artifact: testDigest, Dedicated: true}
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{blue}, Serve: "r1"}); err != nil {
		t.Fatal(err)
	}
	green := blue
	green.Release = "r2"
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{green}, Keep: []string{"r1"}, Serve: "r1"}); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Apply of r2 beside a hand-made web-r2 = %v, want ErrNotOwned", err)
	}
	// The unit goes on with r1 and is pruned; the hand-made one stays.
	if _, err := d.Prune(ctx, "web", "dev"); err != nil {
		t.Fatal(err)
	}
	dep, err := kc.AppsV1().Deployments(ns).Get(ctx, "web-r2", metav1.GetOptions{})
	if err != nil || dep.Labels[LabelApp] != "" {
		t.Errorf("the hand-made web-r2 after socle's prune: %+v, %v", dep.Labels, err)
	}
	if _, err := kc.AppsV1().Deployments(ns).Get(ctx, "web-r1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("socle's web-r1 after the prune: %v, want pruned", err)
	}
}

// TestLegacyInventory: an inventory kept in a ConfigMap, as socle wrote
// them before, is found, becomes a Secret at the next apply, and its
// objects are pruned.
func TestLegacyInventory(t *testing.T) {
	d, ns, kc := open(t, time.Minute)
	ctx := ctxOf(t)
	u := fixedReplicas(demoUnits(t)["web"], 1)
	blue := runtime.Workload{Release: "r1", Unit: u, Artifact: testDigest, Dedicated: true}
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{blue}, Serve: "r1"}); err != nil {
		t.Fatal(err)
	}
	// Turn the inventory back into a ConfigMap.
	s, err := kc.CoreV1().Secrets(ns).Get(ctx, inventoryName("web"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: s.Labels, Annotations: s.Annotations}, Data: map[string]string{}}
	for k, v := range s.Data {
		cm.Data[k] = string(v)
	}
	if _, err := kc.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kc.CoreV1().Secrets(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if keys, err := d.Units(ctx); err != nil || !slices.Contains(keys, runtime.UnitKey{App: "web", Env: "dev"}) {
		t.Fatalf("Units = %v, %v; want web.dev from its former inventory", keys, err)
	}
	green := blue
	green.Release = "r2"
	if err := d.Apply(ctx, runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{green}, Serve: "r2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.AppsV1().Deployments(ns).Get(ctx, "web-r1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("r1's Deployment, listed by the former inventory: %v, want pruned", err)
	}
	if _, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, inventoryName("web"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the former inventory after an apply: %v, want deleted", err)
	}
	if _, err := kc.CoreV1().Secrets(ns).Get(ctx, inventoryName("web"), metav1.GetOptions{}); err != nil {
		t.Errorf("the inventory after an apply: %v", err)
	}
}
