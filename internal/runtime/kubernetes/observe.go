package kubernetes

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/socle-dev/socle/internal/runtime"
)

// Drift reports how the unit's objects differ from spec (see
// runtime.UnitDriver).
//
// It works in two steps. Every field socle applies is compared with the
// live object, which costs one read per object and no write; only when that
// finds a difference does a dry-run server-side apply confirm it, because
// the API server normalises some values (quantities, defaults inside lists)
// and only its own merge says whether applying would change anything.
// Fields socle does not apply (an autoscaler's replicas, a sidecar someone
// injects) are never compared.
func (d *Driver) Drift(ctx context.Context, spec runtime.UnitSpec) (runtime.Drift, error) {
	var dr runtime.Drift
	ns := d.Namespace(spec.Env)
	ro, err := d.renderOptions(ctx, spec, ns)
	if err != nil {
		return dr, err
	}
	objs, err := Render(spec, ro)
	if err != nil {
		return dr, err
	}
	inv, err := d.cachedInventory(ctx, ns, spec.App, spec.Env)
	if err != nil {
		return dr, err
	}
	if dr.Applied = inv.found && inv.Applied == Hash(objs); !dr.Applied {
		return dr, nil
	}
	for _, o := range objs {
		e := entry{Kind: o.GetKind(), Name: o.GetName()}
		l, err := d.cached(ctx, ns, e.Kind, e.Name)
		if err != nil {
			return dr, err
		}
		if l == nil {
			// Perhaps only not cached yet: ask the API server.
			if l, err = d.get(ctx, ns, e); err != nil {
				return dr, err
			}
		}
		if l == nil {
			dr.Changes = append(dr.Changes, fmt.Sprintf("%s %s was deleted", e.Kind, e.Name))
			continue
		}
		diffs := compareObject(e.Kind, o.Object, l.Object)
		if len(diffs) == 0 {
			continue
		}
		if confirmed, err := d.confirm(ctx, ns, o.Unstructured, e); err != nil {
			return dr, err
		} else if confirmed {
			for _, df := range diffs {
				dr.Changes = append(dr.Changes, fmt.Sprintf("%s %s: %s", e.Kind, e.Name, df))
			}
		}
	}
	return dr, nil
}

// Health reports the Deployments of the unit's inventory, newest release
// first.
func (d *Driver) Health(ctx context.Context, app, env string) ([]runtime.WorkloadHealth, error) {
	ns := d.Namespace(env)
	inv, err := d.cachedInventory(ctx, ns, app, env)
	if err != nil {
		return nil, err
	}
	var out []runtime.WorkloadHealth
	for _, e := range inv.Entries {
		if e.Kind != "Deployment" {
			continue
		}
		l, err := d.cached(ctx, ns, e.Kind, e.Name)
		if err != nil {
			return nil, err
		}
		h := runtime.WorkloadHealth{Name: e.Name, Release: e.Release, State: runtime.WorkloadProgressing, Message: "the Deployment does not exist"}
		if l != nil {
			h = d.health(ctx, ns, l)
		}
		out = append(out, h)
	}
	// Release names are r<id>: longer is newer, then by text.
	slices.SortFunc(out, func(a, b runtime.WorkloadHealth) int {
		return cmp.Or(cmp.Compare(len(b.Release), len(a.Release)), strings.Compare(b.Release, a.Release))
	})
	return out, nil
}

// get reads a live object; nil if it does not exist.
func (d *Driver) get(ctx context.Context, ns string, e entry) (*unstructured.Unstructured, error) {
	c, err := d.client(e.Kind, ns)
	if err != nil {
		return nil, err
	}
	l, err := c.Get(ctx, e.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s/%s: %w", e.Kind, ns, e.Name, err)
	}
	return l, nil
}

// confirm asks the API server, by a dry-run apply, whether applying obj
// would change the live object, read afresh.
func (d *Driver) confirm(ctx context.Context, ns string, obj *unstructured.Unstructured, e entry) (bool, error) {
	live, err := d.get(ctx, ns, e)
	if err != nil || live == nil {
		return live == nil && err == nil, err
	}
	var after *unstructured.Unstructured
	if err := d.apply(ctx, ns, obj, true, &after); err != nil {
		return false, err
	}
	return !reflect.DeepEqual(comparable(after.Object), comparable(live.Object)), nil
}

// comparable is an object without what changes on every write.
func comparable(obj map[string]any) map[string]any {
	c := k8sruntime.DeepCopyJSON(obj)
	delete(c, "status")
	if m, ok := c["metadata"].(map[string]any); ok {
		for _, k := range []string{"managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"} {
			delete(m, k)
		}
	}
	return c
}

// compareObject is compare, except that a Secret's values are never
// written out, base64 or not: only the names of the keys that differ.
func compareObject(kind string, want, live map[string]any) []string {
	if kind != "Secret" {
		return compare(want, live, "")
	}
	w, l := maps.Clone(want), maps.Clone(live)
	wd, _ := w["data"].(map[string]any)
	ld, _ := l["data"].(map[string]any)
	delete(w, "data")
	delete(w, "stringData")
	delete(l, "data")
	delete(l, "stringData")
	out := compare(w, l, "")
	for _, k := range slices.Sorted(maps.Keys(wd)) {
		switch lv, ok := ld[k]; {
		case !ok:
			out = append(out, fmt.Sprintf("data[%s]: removed", k))
		case !sameScalar(wd[k], lv):
			out = append(out, fmt.Sprintf("data[%s]: changed (value not shown)", k))
		}
	}
	return out
}

// compare lists how live differs from want in the fields want sets:
// "spec.replicas: 5, socle applies 2". Lists of named elements (containers,
// ports, variables) are matched by name; live elements want does not name
// belong to someone else.
func compare(want, live any, path string) []string {
	switch w := want.(type) {
	case map[string]any:
		l, _ := live.(map[string]any)
		var out []string
		for _, k := range slices.Sorted(maps.Keys(w)) {
			if path == "" && (k == "status" || k == "metadata") {
				continue
			}
			out = append(out, compare(w[k], l[k], join(path, k))...)
		}
		if path == "" {
			wm, _ := w["metadata"].(map[string]any)
			lm, _ := l["metadata"].(map[string]any)
			for _, k := range []string{"labels", "annotations"} {
				out = append(out, compare(wm[k], lm[k], "metadata."+k)...)
			}
		}
		if l == nil && len(w) > 0 && len(out) == 0 {
			out = append(out, path+": missing")
		}
		return out
	case []any:
		l, _ := live.([]any)
		var out []string
		for i, we := range w {
			name, named := elementName(we)
			var le any
			switch {
			case named:
				for _, x := range l {
					if n, ok := elementName(x); ok && n == name {
						le = x
					}
				}
				if le == nil {
					out = append(out, fmt.Sprintf("%s[%s]: removed", path, name))
					continue
				}
				out = append(out, compare(we, le, fmt.Sprintf("%s[%s]", path, name))...)
			case i < len(l):
				out = append(out, compare(we, l[i], fmt.Sprintf("%s[%d]", path, i))...)
			default:
				out = append(out, fmt.Sprintf("%s[%d]: missing", path, i))
			}
		}
		return out
	case nil:
		return nil
	default:
		if sameScalar(w, live) {
			return nil
		}
		if live == nil {
			return []string{fmt.Sprintf("%s: removed, socle applies %v", path, w)}
		}
		return []string{fmt.Sprintf("%s: %v, socle applies %v", path, live, w)}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// elementName is the key Kubernetes merges a list element by: its name, or
// for ports its number.
func elementName(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	if n, ok := m["name"].(string); ok {
		return n, true
	}
	if p, ok := m["containerPort"]; ok {
		return fmt.Sprint(p), true
	}
	return "", false
}

// sameScalar compares JSON values as the API server stores them: numbers
// whatever their Go type, quantities by value ("0.5" is "500m").
func sameScalar(a, b any) bool {
	if fmt.Sprint(a) == fmt.Sprint(b) {
		return true
	}
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok {
		qa, errA := resource.ParseQuantity(as)
		qb, errB := resource.ParseQuantity(bs)
		return errA == nil && errB == nil && qa.Cmp(qb) == 0
	}
	return false
}

// health reads a Deployment's rollout from its status, as kubectl rollout
// status does; a stuck one is Failed with the reason its pods give.
func (d *Driver) health(ctx context.Context, ns string, obj *unstructured.Unstructured) runtime.WorkloadHealth {
	var dep appsv1.Deployment
	h := runtime.WorkloadHealth{Name: obj.GetName(), Release: obj.GetLabels()[LabelRelease], State: runtime.WorkloadProgressing}
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &dep); err != nil {
		h.Message = "reading the Deployment: " + err.Error()
		return h
	}
	st := dep.Status
	h.Desired = 1
	if dep.Spec.Replicas != nil {
		h.Desired = int(*dep.Spec.Replicas)
	}
	h.Updated, h.Ready, h.Available = int(st.UpdatedReplicas), int(st.ReadyReplicas), int(st.AvailableReplicas)
	var progressing *appsv1.DeploymentCondition
	for i := range st.Conditions {
		if st.Conditions[i].Type == appsv1.DeploymentProgressing {
			progressing = &st.Conditions[i]
		}
	}
	switch {
	case st.ObservedGeneration < dep.Generation:
		h.Message = "waiting for the Deployment controller to see the new spec"
		return h
	case progressing != nil && progressing.Reason == "ProgressDeadlineExceeded":
		h.State = runtime.WorkloadFailed
		h.Message = fmt.Sprintf("no progress for %ds (progressDeadlineSeconds): %d of %d pods updated, %d ready", deref(dep.Spec.ProgressDeadlineSeconds), h.Updated, h.Desired, h.Ready)
	case h.Updated < h.Desired:
		h.Message = fmt.Sprintf("%d of %d pods updated", h.Updated, h.Desired)
	case int(st.Replicas) > h.Updated:
		h.Message = fmt.Sprintf("%d old pods still terminating", int(st.Replicas)-h.Updated)
	case h.Available < h.Desired:
		h.Message = fmt.Sprintf("%d of %d pods available", h.Available, h.Desired)
	default:
		h.State, h.Message = runtime.WorkloadHealthy, ""
		return h
	}
	if why := d.podReason(ctx, ns, &dep); why != "" {
		h.Message += "; " + why
	}
	return h
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// podReason says why the newest pods of a Deployment are not ready, in the
// words of the scheduler or the kubelet.
func (d *Driver) podReason(ctx context.Context, ns string, dep *appsv1.Deployment) string {
	sel := labels.Set(dep.Spec.Template.Labels).String()
	pods, err := d.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		if why := podWhy(&p); why != "" {
			return fmt.Sprintf("pod %s: %s", p.Name, why)
		}
	}
	return ""
}

func podWhy(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			why := w.Reason
			if w.Message != "" {
				why += ": " + w.Message
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				why += fmt.Sprintf(" (last exit code %d, %s)", t.ExitCode, t.Reason)
			}
			return why
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && c.Message != "" {
			return c.Message
		}
	}
	return ""
}
