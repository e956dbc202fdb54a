package kubernetes

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/socle-dev/socle/internal/runtime"
)

// The inventory of a unit is a Secret beside its objects,
// socle-inventory-<app>, labelled with the unit. A Secret, not a ConfigMap:
// the workloads it keeps hold the values of secret variables, which whoever
// may only view a namespace (the view role reads ConfigMaps, not Secrets)
// must not read. It lives in the cluster
// rather than in socle's store because it must say what the cluster holds:
// it is written before the objects it names are applied, so a socle killed
// midway, restored from an old backup, or replaced by another socle finds
// every object it must prune, and a cluster shared by two socles, or a
// namespace cleaned by hand, never sees objects deleted on an outdated
// record. It also keeps each release's workload as applied, so that a
// failed rollout is undone exactly (Restore) without asking Git.
type inventory struct {
	Entries []entry
	// Releases are the workloads as applied, by release.
	Releases map[string]runtime.Workload
	// Applied is the hash of the objects last applied whole (see Hash);
	// empty while an apply is under way or after one failed.
	Applied string
	found   bool
	// legacy: read from the ConfigMap that held inventories before they
	// became Secrets; deleted once the Secret is written.
	legacy bool
}

// entry names one applied object and the release it belongs to ("" for
// the objects the unit's releases share).
type entry struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Release string `json:"release,omitempty"`
}

func inventoryName(app string) string { return "socle-inventory-" + app }

const (
	keyEntries        = "entries"
	keyReleases       = "releases"
	annotationApplied = "socle.dev/applied"
)

// next is the inventory once spec's objects are applied: theirs, and those
// of the releases spec keeps.
func (inv *inventory) next(spec runtime.UnitSpec, objs []Object) *inventory {
	n := &inventory{Releases: map[string]runtime.Workload{}, Applied: Hash(objs), found: true}
	for _, o := range objs {
		n.add(entry{Kind: o.GetKind(), Name: o.GetName(), Release: o.Release})
	}
	for _, rel := range spec.Keep {
		for _, e := range inv.Entries {
			if e.Release == rel {
				n.add(e)
			}
		}
		if w, ok := inv.Releases[rel]; ok {
			n.Releases[rel] = w
		}
	}
	for _, w := range spec.Workloads {
		n.Releases[w.Release] = w
	}
	return n
}

func (inv *inventory) clone() *inventory {
	c := *inv
	c.Entries = slices.Clone(inv.Entries)
	c.Releases = maps.Clone(inv.Releases)
	return &c
}

// add adds entries, once each (by kind and name), in kind then name order.
func (inv *inventory) add(es ...entry) {
	for _, e := range es {
		if !inv.has(e) {
			inv.Entries = append(inv.Entries, e)
		}
	}
	slices.SortFunc(inv.Entries, func(a, b entry) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name)) })
}

func (inv *inventory) has(e entry) bool {
	return slices.ContainsFunc(inv.Entries, func(x entry) bool { return x.Kind == e.Kind && x.Name == e.Name })
}

// readInventory returns the unit's inventory as the API server has it,
// empty if it has none. A namespace that holds the inventory of the same
// app in another environment is an error: two environments cannot share a
// namespace's object names.
func (d *Driver) readInventory(ctx context.Context, ns, app, env string) (*inventory, error) {
	s, err := d.cs.CoreV1().Secrets(ns).Get(ctx, inventoryName(app), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err := d.cs.CoreV1().ConfigMaps(ns).Get(ctx, inventoryName(app), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return &inventory{Releases: map[string]runtime.Workload{}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the inventory of %s.%s: %w", app, env, err)
		}
		return parseLegacyInventory(cm, ns, app, env)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the inventory of %s.%s: %w", app, env, err)
	}
	return parseInventory(s, ns, app, env)
}

// parseLegacyInventory reads an inventory kept in a ConfigMap, as socle
// wrote them before.
func parseLegacyInventory(cm *corev1.ConfigMap, ns, app, env string) (*inventory, error) {
	if cm.Labels[LabelInventory] != "true" {
		return &inventory{Releases: map[string]runtime.Workload{}}, nil // someone else's ConfigMap
	}
	s := &corev1.Secret{ObjectMeta: cm.ObjectMeta, Data: map[string][]byte{}}
	for k, v := range cm.Data {
		s.Data[k] = []byte(v)
	}
	inv, err := parseInventory(s, ns, app, env)
	if inv != nil {
		inv.legacy = true
	}
	return inv, err
}

// dropLegacyInventory deletes the ConfigMap an inventory was kept in
// before it became a Secret.
func (d *Driver) dropLegacyInventory(ctx context.Context, ns, app string) error {
	err := d.cs.CoreV1().ConfigMaps(ns).Delete(ctx, inventoryName(app), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the former inventory of %s: %w", app, err)
	}
	return nil
}

// cachedInventory is readInventory from the driver's cache: for observing,
// never for changing the cluster.
func (d *Driver) cachedInventory(ctx context.Context, ns, app, env string) (*inventory, error) {
	u, err := d.cached(ctx, ns, "Secret", inventoryName(app))
	if err != nil {
		return nil, err
	}
	if u == nil {
		l, err := d.cached(ctx, ns, "ConfigMap", inventoryName(app))
		if err != nil || l == nil {
			return &inventory{Releases: map[string]runtime.Workload{}}, err
		}
		var cm corev1.ConfigMap
		if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(l.Object, &cm); err != nil {
			return nil, fmt.Errorf("reading the inventory of %s.%s: %w", app, env, err)
		}
		return parseLegacyInventory(&cm, ns, app, env)
	}
	var s corev1.Secret
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
		return nil, fmt.Errorf("reading the inventory of %s.%s: %w", app, env, err)
	}
	return parseInventory(&s, ns, app, env)
}

func parseInventory(s *corev1.Secret, ns, app, env string) (*inventory, error) {
	if other := s.Labels[LabelEnv]; other != env {
		return nil, fmt.Errorf("%w: namespace %s already runs %s for environment %s; give each environment a namespace of its own", runtime.ErrInvalidUnit, ns, app, other)
	}
	inv := &inventory{Applied: s.Annotations[annotationApplied], found: true}
	if err := json.Unmarshal(s.Data[keyEntries], &inv.Entries); err != nil {
		return nil, fmt.Errorf("reading the inventory of %s.%s: %w", app, env, err)
	}
	if err := json.Unmarshal([]byte(cmp.Or(string(s.Data[keyReleases]), "{}")), &inv.Releases); err != nil {
		return nil, fmt.Errorf("reading the inventory of %s.%s: %w", app, env, err)
	}
	return inv, nil
}

func (d *Driver) writeInventory(ctx context.Context, ns, app, env string, inv *inventory) error {
	entries, err := json.Marshal(inv.Entries)
	if err != nil {
		return err
	}
	releases, err := json.Marshal(inv.Releases)
	if err != nil {
		return err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: inventoryName(app), Namespace: ns,
			Labels:      map[string]string{LabelInventory: "true", LabelApp: app, LabelEnv: env, labelManagedBy: "socle"},
			Annotations: map[string]string{annotationApplied: inv.Applied},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{keyEntries: entries, keyReleases: releases},
	}
	s.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return d.apply(ctx, ns, toUnstructured(s), false, nil)
}
