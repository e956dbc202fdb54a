package kubetest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/socle-dev/socle/internal/runtime/kubernetes/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// image is addressed by digest, as socle deploys releases; kwok runs no
// containers, so nothing is pulled.
const image = "registry.example.com/socle/demo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestDeployment shows the cluster does what the Kubernetes driver needs:
// a Deployment becomes Available with Ready pods on the kwok Node, scales
// through the scale subresource and kubectl, and deleting it deletes its
// pods.
func TestDeployment(t *testing.T) {
	c := kubetest.Shared(t)
	t.Logf("API server ready %s after launch, cluster ready after %s", c.APIServerReady.Round(time.Millisecond), c.Ready.Round(time.Millisecond))
	client := c.Client(t)
	ctx := t.Context()

	ns := createNamespace(t, client, "deployment")
	start := time.Now()
	d, err := client.AppsV1().Deployments(ns).Create(ctx, deployment("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "2 ready replicas", func() error {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas != 2 {
			err = fmt.Errorf("%d ready", d.Status.ReadyReplicas)
		}
		return err
	})
	t.Logf("Deployment reports 2 ready replicas %s after create", time.Since(start).Round(time.Millisecond))
	waitReady(t, client, ns, d.Name, 2)
	t.Logf("Deployment Available with 2 ready replicas %s after create", time.Since(start).Round(time.Millisecond))

	pods := podsOf(t, client, ns, "web")
	if len(pods) != 2 {
		t.Fatalf("pods: got %d, want 2", len(pods))
	}
	for _, p := range pods {
		if p.Spec.NodeName != c.Nodes[0] || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			t.Errorf("pod %s: node %q phase %s IP %q, want Running on %s with an IP", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, c.Nodes[0])
		}
		if got := p.Spec.Containers[0].Image; got != image {
			t.Errorf("pod %s image %q, want %q", p.Name, got, image)
		}
	}

	// What `kubectl scale` does through client-go: the scale subresource.
	_, err = client.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       autoscalingv1.ScaleSpec{Replicas: 4},
	}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, client, ns, "web", 4)

	// And kubectl itself, as a person would, from the same binary.
	if out, err := c.Kubectl(ctx, "-n", ns, "scale", "deployment/web", "--replicas=1").CombinedOutput(); err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	waitReady(t, client, ns, "web", 1)
	waitPods(t, client, ns, "web", 1)
	out, err := c.Kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}").CombinedOutput()
	if err != nil || string(out) != "1" {
		t.Fatalf("kubectl get: %q, %v", out, err)
	}

	foreground := metav1.DeletePropagationForeground
	if err := client.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &foreground}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, ns, "web", 0)
	poll(t, "deployment web deleted", func() error {
		_, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// TestStartStop shows a cluster of its own starts with a kubeconfig
// whose context reaches it, and that Stop leaves nothing serving.
func TestStartStop(t *testing.T) {
	c := kubetest.Start(t)
	out, err := c.Kubectl(t.Context(), "get", "nodes", "-o", "name").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "node/"+c.Nodes[0] {
		t.Fatalf("kubectl get nodes: %q, %v", out, err)
	}
	// kubectl and client-go refuse a server without a proper version.
	v, err := c.Client(t).Discovery().ServerVersion()
	if err != nil || v.GitVersion != kubetest.KubeVersion {
		t.Fatalf("server version: %+v, %v", v, err)
	}
	if out, err := c.Kubectl(t.Context(), "version").CombinedOutput(); err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}

	c.Stop()
	client := &http.Client{Timeout: time.Second}
	if resp, err := client.Get(c.Server + "/readyz"); err == nil {
		resp.Body.Close()
		t.Fatalf("API server still answers after Stop: %s", resp.Status)
	}
}

// BenchmarkDeploymentReady measures the time from creating a Deployment of
// two replicas to both pods Ready, on the shared cluster.
func BenchmarkDeploymentReady(b *testing.B) {
	c := kubetest.Shared(b)
	client := c.Client(b)
	ns := createNamespace(b, client, "bench")
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("web-%d", i)
		if _, err := client.AppsV1().Deployments(ns).Create(b.Context(), deployment(name, 2), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitReady(b, client, ns, name, 2)
	}
}

func createNamespace(t testing.TB, client kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "main",
						Image: image,
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
							HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)},
						}},
					}},
				},
			},
		},
	}
}

// waitReady waits until the Deployment's controller has seen its latest
// spec and reports it Available with exactly replicas Ready.
func waitReady(t testing.TB, client kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	poll(t, fmt.Sprintf("deployment %s with %d ready replicas", name, replicas), func() error {
		d, err := client.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.ReadyReplicas != replicas || s.UpdatedReplicas != replicas || s.Replicas != replicas {
			return fmt.Errorf("generation %d observed %d, replicas %d updated %d ready %d", d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas)
		}
		for _, cond := range s.Conditions {
			if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not Available")
	})
}

// waitPods waits until exactly n pods of the app exist, terminating ones
// included.
func waitPods(t testing.TB, client kubernetes.Interface, ns, app string, n int) {
	t.Helper()
	poll(t, fmt.Sprintf("%d pods of %s", n, app), func() error {
		if got := len(podsOf(t, client, ns, app)); got != n {
			return fmt.Errorf("%d pods", got)
		}
		return nil
	})
}

func podsOf(t testing.TB, client kubernetes.Interface, ns, app string) []corev1.Pod {
	t.Helper()
	pods, err := client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// poll retries check every 10ms for up to a minute: long enough for a
// loaded machine, short enough that a real bug fails the test.
func poll(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
