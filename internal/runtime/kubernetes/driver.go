package kubernetes

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/socle-dev/socle/internal/runtime"
)

// FieldManager is the name socle applies under: the fields it sets are
// socle's, and a change of them by anyone else is drift.
const FieldManager = "socle"

// Options opens a Driver.
type Options struct {
	// Kubeconfig is the kubeconfig file; empty means client-go's default
	// loading rules ($KUBECONFIG, then ~/.kube/config).
	Kubeconfig string
	// Context is the kubeconfig context; empty means its current one.
	Context string
	// Target returns where an environment's units go in the cluster: its
	// namespace (empty: the context's namespace, else "default") and the
	// registry the cluster pulls socle's images from (see RenderOptions).
	Target func(env string) Target
	// Secret derives the credentials of resources (see RenderOptions).
	Secret []byte
	// PullToken returns the token with which the cluster pulls app's
	// images from socle's registry in env (see RenderOptions.PullToken);
	// nil when the registry needs none. It is asked at every render of a
	// unit that runs socle's build, so it must return the same token until
	// it rotates it.
	PullToken func(ctx context.Context, app, env string) (string, error)
	// ProgressDeadline is each Deployment's progressDeadlineSeconds.
	ProgressDeadline time.Duration
	// QPS and Burst limit the requests to this cluster (default 100 and
	// 200): every context has a client and limits of its own, so that a
	// slow cluster does not hold up the others.
	QPS   float32
	Burst int
	// Simulated says the cluster's nodes are simulated (kwok): pods become
	// ready without running (see runtime.Capabilities).
	Simulated bool
	Logger    *slog.Logger
}

// Target is where an environment's units go in a cluster.
type Target struct {
	Namespace string
	Registry  string
	// Gateway, when set and the cluster serves the Gateway API, gives each
	// unit an HTTPRoute and canaries weights (see RenderOptions).
	Gateway *Gateway
}

// Driver runs units on one cluster, as one kubeconfig context names it.
type Driver struct {
	opts        Options
	dyn         dynamic.Interface
	cs          kubernetes.Interface
	defaultNS   string
	log         *slog.Logger
	mu          sync.Mutex
	namespaces  map[string]bool // namespaces known to exist
	unitLocks   map[runtime.UnitKey]*sync.Mutex
	unitLocksMu sync.Mutex
	cache       objectCache
	gateway     struct {
		ok bool
		at time.Time
	}
}

var _ runtime.UnitDriver = (*Driver)(nil)

// New opens a driver on the cluster of opts' context. It asks the cluster
// nothing: an unreachable cluster shows in the units' status, not here.
func New(opts Options) (*Driver, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if opts.Kubeconfig != "" {
		rules.ExplicitPath = opts.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: opts.Context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: kubeconfig context %q: %w", runtime.ErrUnitDriver, opts.Context, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return NewForConfig(cfg, ns, opts)
}

// NewForConfig opens a driver with a REST configuration of its own.
func NewForConfig(cfg *rest.Config, defaultNS string, opts Options) (*Driver, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	if cfg.QPS <= 0 {
		cfg.QPS = 100
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 2 * int(cfg.QPS)
	}
	cfg.UserAgent = "socle"
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", runtime.ErrUnitDriver, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", runtime.ErrUnitDriver, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Driver{opts: opts, dyn: dyn, cs: cs, defaultNS: defaultNS, log: opts.Logger,
		namespaces: map[string]bool{}, unitLocks: map[runtime.UnitKey]*sync.Mutex{},
		cache: objectCache{namespaces: map[string]*nsCache{}, stop: make(chan struct{})}}, nil
}

// Name is "kubernetes".
func (d *Driver) Name() string { return "kubernetes" }

// Capabilities of the Kubernetes driver.
func (d *Driver) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{ExecProbes: true, Reattach: true, Units: true, Simulated: d.opts.Simulated}
}

// Namespace is the namespace of an environment's units.
func (d *Driver) Namespace(env string) string {
	if d.opts.Target != nil {
		if ns := d.opts.Target(env).Namespace; ns != "" {
			return ns
		}
	}
	return d.defaultNS
}

// renderOptions renders spec's unit into namespace ns. A Gateway is used
// only where the cluster serves the Gateway API; elsewhere canaries split
// by numbers of pods, as without one. A unit that runs socle's build gets
// its pull token.
func (d *Driver) renderOptions(ctx context.Context, spec runtime.UnitSpec, ns string) (RenderOptions, error) {
	o := RenderOptions{Namespace: ns, Secret: d.opts.Secret, ProgressDeadline: d.opts.ProgressDeadline}
	if d.opts.Target != nil {
		t := d.opts.Target(spec.Env)
		o.Registry = t.Registry
		if t.Gateway != nil && d.gatewayAPI() {
			o.Gateway = t.Gateway
		}
	}
	if d.opts.PullToken != nil && slices.ContainsFunc(spec.Workloads, runsBuild) {
		tok, err := d.opts.PullToken(ctx, spec.App, spec.Env)
		if err != nil {
			return o, err
		}
		o.PullToken = tok
	}
	return o, nil
}

// gatewayAPI reports whether the cluster serves HTTPRoutes. A yes is kept;
// a no is asked again after a minute, since the API can be installed later.
func (d *Driver) gatewayAPI() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gateway.ok || time.Since(d.gateway.at) < time.Minute {
		return d.gateway.ok
	}
	d.gateway.at = time.Now()
	list, err := d.cs.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
	d.gateway.ok = err == nil && slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == "httproutes" })
	if !d.gateway.ok {
		d.log.Info("the cluster does not serve the Gateway API: canaries split by numbers of pods", "err", err)
	}
	return d.gateway.ok
}

// lock serialises the work on one unit: its inventory is read, changed and
// written back.
func (d *Driver) lock(app, env string) func() {
	d.unitLocksMu.Lock()
	k := runtime.UnitKey{App: app, Env: env}
	m := d.unitLocks[k]
	if m == nil {
		m = &sync.Mutex{}
		d.unitLocks[k] = m
	}
	d.unitLocksMu.Unlock()
	m.Lock()
	return m.Unlock
}

// resources maps the kinds socle applies to their API resources.
var resources = map[string]schema.GroupVersionResource{
	"ConfigMap":               {Version: "v1", Resource: "configmaps"},
	"Secret":                  {Version: "v1", Resource: "secrets"},
	"Service":                 {Version: "v1", Resource: "services"},
	"Deployment":              {Group: "apps", Version: "v1", Resource: "deployments"},
	"PodDisruptionBudget":     {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	"HorizontalPodAutoscaler": {Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
	"HTTPRoute":               {Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
}

func (d *Driver) client(kind, ns string) (dynamic.ResourceInterface, error) {
	gvr, ok := resources[kind]
	if !ok {
		return nil, fmt.Errorf("socle applies no %s", kind)
	}
	return d.dyn.Resource(gvr).Namespace(ns), nil
}

// Apply applies spec's objects with server-side apply, records them in the
// unit's inventory and prunes the objects the inventory holds that spec no
// longer has (see runtime.UnitDriver).
func (d *Driver) Apply(ctx context.Context, spec runtime.UnitSpec) error {
	defer d.lock(spec.App, spec.Env)()
	ns := d.Namespace(spec.Env)
	ro, err := d.renderOptions(ctx, spec, ns)
	if err != nil {
		return err
	}
	objs, err := Render(spec, ro)
	if err != nil {
		return err
	}
	if err := d.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	inv, err := d.readInventory(ctx, ns, spec.App, spec.Env)
	if err != nil {
		return err
	}
	// An object the unit does not hold yet must not belong to anyone
	// else: applying it would take it over, and a later prune delete it.
	for _, o := range objs {
		if err := d.unowned(ctx, ns, spec.App, spec.Env, inv, o); err != nil {
			return err
		}
	}
	// The inventory holds what is applied before it is applied: socle
	// killed in the middle leaves objects it knows of, never orphans.
	next := inv.next(spec, objs)
	union := next.clone()
	union.add(inv.Entries...)
	union.Applied = ""
	if err := d.writeInventory(ctx, ns, spec.App, spec.Env, union); err != nil {
		return err
	}
	if inv.legacy {
		if err := d.dropLegacyInventory(ctx, ns, spec.App); err != nil {
			return err
		}
	}
	for _, o := range objs {
		if err := d.applyObject(ctx, ns, o, objs); err != nil {
			return err
		}
	}
	var errs []error
	for _, e := range inv.Entries {
		if !next.has(e) {
			if err := d.delete(ctx, ns, spec.App, spec.Env, e); err != nil {
				errs = append(errs, err)
				next.add(e) // kept in the inventory, pruned at the next apply
			}
		}
	}
	if len(errs) > 0 {
		next.Applied = ""
	}
	errs = append(errs, d.writeInventory(ctx, ns, spec.App, spec.Env, next))
	return errors.Join(errs...)
}

// ErrNotOwned is returned, wrapped, when a unit's object would replace
// one of the same name that socle did not apply for the unit.
var ErrNotOwned = errors.New("not the unit's")

// unowned refuses o when the unit's inventory does not hold it yet and an
// object of its kind and name exists that is not the unit's: made by hand,
// by another tool (Helm, Argo CD), or by socle for another unit.
func (d *Driver) unowned(ctx context.Context, ns, app, env string, inv *inventory, o Object) error {
	e := entry{Kind: o.GetKind(), Name: o.GetName()}
	if inv.has(e) {
		return nil
	}
	live, err := d.get(ctx, ns, e)
	if err != nil || live == nil {
		return err
	}
	if l := live.GetLabels(); l[labelManagedBy] == "socle" && l[LabelApp] == app && l[LabelEnv] == env {
		return nil // the unit's, from an inventory lost or written before it was applied
	}
	by := cmp.Or(live.GetLabels()[labelManagedBy], "someone else")
	return fmt.Errorf("%s %s/%s exists and is %w (managed by %s): socle does not take it over for %s.%s; delete or rename it",
		e.Kind, ns, e.Name, ErrNotOwned, by, app, env)
}

// fieldManagerReplicas keeps an autoscaled Deployment's replicas at the
// autoscaler's minimum when socle creates it or hands the count over: it
// owns spec.replicas beside the autoscaler, never against it.
const fieldManagerReplicas = "socle-replicas"

// applyObject applies one of objs. A Deployment that an autoscaler of objs
// scales is applied without spec.replicas, so that the autoscaler owns the
// count; but it must not start, nor fall when socle stops owning the
// count, below the autoscaler's minimum (a new blue/green or canary
// Deployment would otherwise be created with one pod, declared healthy and
// take over). Its replicas are then set to max(minimum, live) under a field
// manager of their own, which the autoscaler's scaling takes over.
func (d *Driver) applyObject(ctx context.Context, ns string, o Object, objs []Object) error {
	lo, scaled := autoscaledMin(o, objs)
	if !scaled {
		return d.apply(ctx, ns, o.Unstructured, false, nil)
	}
	live, err := d.get(ctx, ns, entry{Kind: o.GetKind(), Name: o.GetName()})
	if err != nil {
		return err
	}
	if live == nil {
		first := o.DeepCopy()
		if err := unstructured.SetNestedField(first.Object, lo, "spec", "replicas"); err != nil {
			return err
		}
		if err := d.apply(ctx, ns, first, false, nil); err != nil {
			return err
		}
		return d.applyReplicas(ctx, ns, o.Unstructured, lo)
	}
	cur, _, _ := unstructured.NestedInt64(live.Object, "spec", "replicas")
	if cur < lo || ownsReplicas(live, FieldManager) {
		if err := d.applyReplicas(ctx, ns, o.Unstructured, max(cur, lo)); err != nil {
			return err
		}
	}
	return d.apply(ctx, ns, o.Unstructured, false, nil)
}

func (d *Driver) applyReplicas(ctx context.Context, ns string, o *unstructured.Unstructured, n int64) error {
	c, err := d.client(o.GetKind(), ns)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": o.GetAPIVersion(), "kind": o.GetKind(),
		"metadata": map[string]any{"name": o.GetName(), "namespace": ns},
		"spec":     map[string]any{"replicas": n},
	}}
	if _, err := c.Apply(ctx, o.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManagerReplicas, Force: true}); err != nil {
		return fmt.Errorf("scaling %s %s/%s to %d: %w", o.GetKind(), ns, o.GetName(), n, err)
	}
	return nil
}

// autoscaledMin returns the minimum of the autoscaler of objs that scales
// Deployment o, if one does.
func autoscaledMin(o Object, objs []Object) (int64, bool) {
	if o.GetKind() != "Deployment" {
		return 0, false
	}
	if _, set, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas"); set {
		return 0, false
	}
	for _, h := range objs {
		if h.GetKind() != "HorizontalPodAutoscaler" {
			continue
		}
		if name, _, _ := unstructured.NestedString(h.Object, "spec", "scaleTargetRef", "name"); name != o.GetName() {
			continue
		}
		lo, ok, _ := unstructured.NestedInt64(h.Object, "spec", "minReplicas")
		return max(lo, 1), ok
	}
	return 0, false
}

// ownsReplicas reports whether manager applied obj's spec.replicas.
func ownsReplicas(obj *unstructured.Unstructured, manager string) bool {
	for _, m := range obj.GetManagedFields() {
		if m.Manager != manager || m.Operation != metav1.ManagedFieldsOperationApply || m.FieldsV1 == nil {
			continue
		}
		var f map[string]any
		if json.Unmarshal(m.FieldsV1.Raw, &f) == nil {
			if spec, ok := f["f:spec"].(map[string]any); ok {
				if _, ok := spec["f:replicas"]; ok {
					return true
				}
			}
		}
	}
	return false
}

// apply server-side applies one object; with dryRun the cluster computes
// the result and keeps nothing.
func (d *Driver) apply(ctx context.Context, ns string, obj *unstructured.Unstructured, dryRun bool, into **unstructured.Unstructured) error {
	c, err := d.client(obj.GetKind(), ns)
	if err != nil {
		return err
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	out, err := c.Apply(ctx, obj.GetName(), obj, opts)
	if err != nil {
		return fmt.Errorf("applying %s %s/%s: %w", obj.GetKind(), ns, obj.GetName(), err)
	}
	if into != nil {
		*into = out
	}
	return nil
}

// delete deletes an object of a unit's inventory, if it still belongs to
// the unit: an object someone else took over (its labels changed) is left
// alone.
func (d *Driver) delete(ctx context.Context, ns, app, env string, e entry) error {
	c, err := d.client(e.Kind, ns)
	if err != nil {
		return err
	}
	live, err := c.Get(ctx, e.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s/%s: %w", e.Kind, ns, e.Name, err)
	}
	if l := live.GetLabels(); l[LabelApp] != app || l[LabelEnv] != env {
		d.log.Warn("not pruning an object that no longer belongs to its unit", "kind", e.Kind, "namespace", ns, "name", e.Name, "app", app, "env", env)
		return nil
	}
	uid := live.GetUID()
	policy := metav1.DeletePropagationBackground
	err = c.Delete(ctx, e.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting %s %s/%s: %w", e.Kind, ns, e.Name, err)
	}
	return nil
}

// ensureNamespace creates an environment's namespace the first time it is
// used, labelled as socle's; it is never pruned.
func (d *Driver) ensureNamespace(ctx context.Context, ns string) error {
	d.mu.Lock()
	known := d.namespaces[ns]
	d.mu.Unlock()
	if known {
		return nil
	}
	_, err := d.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: ns, Labels: map[string]string{labelManagedBy: "socle"},
		}}, metav1.CreateOptions{FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	// Pods are refused in a namespace until its default ServiceAccount
	// exists, which a controller creates a moment after the namespace.
	for {
		_, err := d.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s: waiting for its default service account: %w", ns, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.mu.Lock()
	d.namespaces[ns] = true
	d.mu.Unlock()
	return nil
}

// Restore makes release the one that runs, as it was applied: its stored
// workload is applied again (for a rolling Deployment this brings back the
// pod template of its ReplicaSet, as kubectl rollout undo does), the
// service serves it, and the failed release's objects are pruned.
func (d *Driver) Restore(ctx context.Context, app, env, release string) error {
	ns := d.Namespace(env)
	unlock := d.lock(app, env)
	inv, err := d.readInventory(ctx, ns, app, env)
	unlock()
	if err != nil {
		return err
	}
	w, ok := inv.Releases[release]
	if !ok {
		return fmt.Errorf("restoring %s.%s to %s: the inventory does not hold that release", app, env, release)
	}
	spec := runtime.UnitSpec{App: app, Env: env, Workloads: []runtime.Workload{w}}
	if w.Dedicated {
		spec.Serve = release
	}
	return d.Apply(ctx, spec)
}

// Prune deletes the unit's objects, then its inventory.
func (d *Driver) Prune(ctx context.Context, app, env string) (int, error) {
	defer d.lock(app, env)()
	ns := d.Namespace(env)
	inv, err := d.readInventory(ctx, ns, app, env)
	if err != nil || !inv.found {
		return 0, err
	}
	var errs []error
	n := 0
	for _, e := range slices.Backward(inv.Entries) {
		if err := d.delete(ctx, ns, app, env, e); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if len(errs) > 0 {
		return n, errors.Join(errs...)
	}
	err = d.cs.CoreV1().Secrets(ns).Delete(ctx, inventoryName(app), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return n, fmt.Errorf("deleting the inventory of %s.%s: %w", app, env, err)
	}
	if inv.legacy {
		return n, d.dropLegacyInventory(ctx, ns, app)
	}
	return n, nil
}

// Units lists the units whose inventory the cluster holds, in every
// namespace socle may read.
func (d *Driver) Units(ctx context.Context) ([]runtime.UnitKey, error) {
	opts := metav1.ListOptions{LabelSelector: LabelInventory + "=true"}
	list, err := d.cs.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing inventories: %w", err)
	}
	metas := make([]metav1.ObjectMeta, 0, len(list.Items))
	for _, s := range list.Items {
		metas = append(metas, s.ObjectMeta)
	}
	// Inventories socle kept in ConfigMaps before, not rewritten yet.
	legacy, err := d.cs.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing inventories: %w", err)
	}
	for _, cm := range legacy.Items {
		metas = append(metas, cm.ObjectMeta)
	}
	var out []runtime.UnitKey
	for _, m := range metas {
		k := runtime.UnitKey{App: m.Labels[LabelApp], Env: m.Labels[LabelEnv]}
		// An environment moved to another namespace leaves its old
		// inventories behind; they are not this environment's units.
		if k.App != "" && k.Env != "" && d.Namespace(k.Env) == m.Namespace && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}
