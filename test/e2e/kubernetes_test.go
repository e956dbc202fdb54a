package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sclient "k8s.io/client-go/kubernetes"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/runtime/kubernetes/kubetest"
)

// kubePlatform writes a platform whose dev runs locally and whose kube and
// prod environments run on the test cluster: the demo's web (two replicas,
// rolling) and worker apps.
func kubePlatform(t *testing.T, kubeContext string) string {
	t.Helper()
	worker := `apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -o "$SOCLE_OUT/worker" .
replicas: {min: 1}
`
	// mailer is the demo's worker under another name.
	return newRepo(t, "web and worker", demoApp(t, "web", "web"), demoApp(t, "worker", "worker"), demoApp(t, "worker", "mailer"), files{
		"socle.yaml": fmt.Sprintf(`apiVersion: socle.dev/v1
kind: Platform
metadata: {name: e2e}
environments:
  - {name: dev, runtime: {type: local}, sync: auto}
  - {name: kube, runtime: {type: kubernetes, context: %[1]s, namespace: socle-kube}, sync: auto}
  - {name: canary, runtime: {type: kubernetes, context: %[1]s, namespace: socle-canary}, sync: auto}
  - name: prod
    runtime: {type: kubernetes, context: %[1]s, namespace: socle-prod}
    sync: manual
    promotion: {from: dev}
`, kubeContext),
		"teams.yaml":         "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: web\n    members: [{user: ann, email: ann@example.com, role: admin}]\n",
		"releases/prod.yaml": "apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps: {}\n",
		"apps/web/socle.yaml": `apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -o "$SOCLE_OUT/web" .
replicas: {min: 2}
environments:
  prod: {rollout: {strategy: blueGreen}}
  canary: {rollout: {strategy: canary, steps: [{weight: 50, pause: 1s}]}}
`,
		"apps/worker/socle.yaml": worker,
		"apps/mailer/socle.yaml": worker,
	})
}

// TestKubernetes runs the demo's apps on a real API server (kwok plays the
// kubelet, so pods become ready without running): they deploy to a
// kubernetes environment with the digest socle built; a promotion from the
// local dev to a kubernetes prod carries that digest; a hand `kubectl
// scale` is corrected; an app removed from Git is pruned and nothing else
// is touched, also when it was removed while socle was stopped; a release
// whose pods can never be scheduled is rolled back, rolling and blue/green.
func TestKubernetes(t *testing.T) {
	cluster := kubetest.Start(t)
	kc := cluster.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	repo, data := kubePlatform(t, cluster.Context), t.TempDir()
	s := start(t, repo, data, "--resync", "1s", "--kubeconfig", cluster.Kubeconfig, "--progress-deadline", "5s")
	defer func() { s.stop(t) }()

	dev := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })
	kube := s.waitUnit(t, "web", "kube", synced(dev.Artifact))
	s.waitUnit(t, "worker", "kube", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })
	t.Logf("web @ kube: %s (%s)", kube.Phase, kube.Replicas[0].Message)
	dep, err := kc.AppsV1().Deployments("socle-kube").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, "/apps/web@"+dev.Artifact) {
		t.Errorf("web @ kube runs %s, want the digest dev runs, %s", img, dev.Artifact)
	}
	if *dep.Spec.Replicas != 2 || dep.Status.ReadyReplicas != 2 {
		t.Errorf("web @ kube: %d replicas, %d ready; want 2", *dep.Spec.Replicas, dep.Status.ReadyReplicas)
	}
	// Someone else's object in socle's namespace.
	if _, err := kc.CoreV1().ConfigMaps("socle-kube").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "not-socles"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// kubectl scale by hand: drift, corrected at the next pass.
	runKubectl(t, cluster, ctx, "-n", "socle-kube", "scale", "deployment/web", "--replicas=5")
	waitUntil(t, ctx, "web @ kube scaled back to 2", func() bool {
		d, err := kc.AppsV1().Deployments("socle-kube").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 2
	})

	// A new version: a canary beside the running release, then alone.
	first := s.waitUnit(t, "web", "canary", synced(dev.Artifact))
	commitVersion(t, repo, "web: a new version")
	s.hook(t)
	dev = s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced && u.Artifact != dev.Artifact })
	canary := s.waitUnit(t, "web", "canary", synced(dev.Artifact))
	checkServes(t, ctx, kc, "socle-canary", canary.Release)
	t.Logf("web @ canary: %s replaced %s", releaseLabel(canary.Release), releaseLabel(first.Release))
	s.waitUnit(t, "web", "kube", synced(dev.Artifact))

	// A promotion from the local dev to the kubernetes prod: the same digest.
	if out, code := s.cli(t, "promote", "web", "--to", "prod", "--user", "ann"); code != 0 {
		t.Fatalf("promote web to prod: %d\n%s", code, out)
	}
	green := s.waitUnit(t, "web", "prod", synced(dev.Artifact))
	// Blue/green in prod: a Deployment per release, the service on it.
	prod, err := kc.AppsV1().Deployments("socle-prod").Get(ctx, "web-"+releaseLabel(green.Release), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := prod.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, "@"+dev.Artifact) {
		t.Errorf("web @ prod runs %s, want %s", img, dev.Artifact)
	}

	// worker removed from Git: pruned from kube, nothing else touched.
	gitRun(t, repo, "rm", "-rq", "apps/worker")
	gitCommit(t, repo, "remove worker")
	s.hook(t)
	waitUntil(t, ctx, "worker pruned from socle-kube", func() bool {
		_, err := kc.AppsV1().Deployments("socle-kube").Get(ctx, "worker", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	// The inventory goes last, once what it lists is gone (a socle killed
	// midway still knows what to prune).
	waitUntil(t, ctx, "worker's inventory removed after its objects", func() bool {
		_, err := kc.CoreV1().Secrets("socle-kube").Get(ctx, "socle-inventory-worker", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	for _, obj := range []func() error{
		func() error {
			_, err := kc.AppsV1().Deployments("socle-kube").Get(ctx, "web", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := kc.CoreV1().Services("socle-kube").Get(ctx, "web", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := kc.CoreV1().ConfigMaps("socle-kube").Get(ctx, "not-socles", metav1.GetOptions{})
			return err
		},
	} {
		if err := obj(); err != nil {
			t.Errorf("after worker's prune: %v", err)
		}
	}

	// A release whose pods can never be scheduled: Failed past the
	// progress deadline, and the previous release restored.
	before := s.waitUnit(t, "web", "kube", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })
	score := filepath.Join(repo, "apps/web/score.yaml")
	b, err := os.ReadFile(score)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "cpu: 50m") || !strings.Contains(string(b), "cpu: 500m") {
		t.Fatalf("the demo's web no longer requests cpu: 50m up to 500m:\n%s", b)
	}
	huge := strings.NewReplacer("cpu: 50m", `cpu: "1000"`, "cpu: 500m", `cpu: "1000"`).Replace(string(b))
	if err := os.WriteFile(score, []byte(huge), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCommit(t, repo, "web: ask for a thousand CPUs")
	s.hook(t)
	failed := s.waitUnit(t, "web", "kube", func(u api.UnitStatus) bool { return u.Phase == api.PhaseFailed })
	t.Logf("web @ kube: %s", failed.Message)
	if !strings.Contains(failed.Message, "Unschedulable") || failed.Release != before.Release {
		t.Errorf("failed rollout: release %d, %q; want release %d still running and the scheduler's reason", failed.Release, failed.Message, before.Release)
	}
	waitUntil(t, ctx, "web @ kube back on its previous release", func() bool {
		d, err := kc.AppsV1().Deployments("socle-kube").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Labels["socle.dev/release"] == releaseLabel(before.Release) &&
			d.Status.UpdatedReplicas == 2 && d.Status.ReadyReplicas == 2 && d.Status.Replicas == 2
	})

	failed = s.waitUnit(t, "web", "canary", func(u api.UnitStatus) bool { return u.Phase == api.PhaseFailed })
	t.Logf("web @ canary: %s", failed.Message)
	checkServes(t, ctx, kc, "socle-canary", canary.Release)

	// The same release promoted to prod, blue/green: its Deployment never
	// becomes ready while the service stays on the running one; then it
	// goes, and the running one stays.
	dev = s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced && u.Release != dev.Release })
	if out, code := s.cli(t, "promote", "web", "--to", "prod", "--user", "ann"); code != 0 {
		t.Fatalf("promote the unschedulable web to prod: %d\n%s", code, out)
	}
	failed = s.waitUnit(t, "web", "prod", func(u api.UnitStatus) bool { return u.Phase == api.PhaseFailed })
	t.Logf("web @ prod: %s", failed.Message)
	if failed.Release != green.Release {
		t.Errorf("after the failed blue/green, release %d runs in prod, want %d", failed.Release, green.Release)
	}
	checkServes(t, ctx, kc, "socle-prod", green.Release)

	// mailer removed from Git while socle is stopped: the restarted socle
	// finds its inventory in the cluster and prunes it.
	s.waitUnit(t, "mailer", "kube", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })
	s.stop(t)
	gitRun(t, repo, "rm", "-rq", "apps/mailer")
	gitCommit(t, repo, "remove mailer")
	s = start(t, repo, data, "--resync", "1s", "--kubeconfig", cluster.Kubeconfig, "--progress-deadline", "5s")
	waitUntil(t, ctx, "mailer pruned after the restart", func() bool {
		_, err := kc.AppsV1().Deployments("socle-kube").Get(ctx, "mailer", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if _, err := kc.AppsV1().Deployments("socle-kube").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("web after mailer's prune: %v", err)
	}
}

// checkServes checks that web's only Deployment in ns is release id's own,
// and that its service selects it.
func checkServes(t *testing.T, ctx context.Context, kc k8sclient.Interface, ns string, id int64) {
	t.Helper()
	rel := releaseLabel(id)
	waitUntil(t, ctx, "only web-"+rel+" left in "+ns, func() bool {
		deps, err := kc.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "socle.dev/app=web"})
		return err == nil && len(deps.Items) == 1 && deps.Items[0].Name == "web-"+rel
	})
	svc, err := kc.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector["socle.dev/release"] != rel {
		t.Errorf("web's service in %s selects %v (%v), want %s", ns, svc.Spec.Selector, err, rel)
	}
}

func releaseLabel(id int64) string { return "r" + strconv.FormatInt(id, 10) }

func runKubectl(t *testing.T, c *kubetest.Cluster, ctx context.Context, args ...string) {
	t.Helper()
	if out, err := c.Kubectl(ctx, args...).CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func gitRun(t *testing.T, repo string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitFor polls cond until it holds.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
