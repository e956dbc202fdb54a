package kubernetes

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// objectCache holds the objects socle applied in the namespaces a driver
// serves, kept current by one watch per kind and namespace. Observing a
// unit that did not change (the steady state of every unit, every resync)
// then reads memory instead of asking the API server five or six times:
// with 2,000 units that is the difference between a resync in seconds and
// one in minutes. What changes the cluster (Apply, Prune, Restore) reads
// the inventory from the API server itself, since a cache a moment behind
// could make it forget an object it must prune; and drift that the cache
// suggests is confirmed against a fresh read before it is reported.
type objectCache struct {
	mu         sync.Mutex
	namespaces map[string]*nsCache
	stop       chan struct{}
	stopOnce   sync.Once
}

type nsCache struct {
	ready   chan struct{}
	err     error
	listers map[string]cache.GenericLister // by kind
}

// cacheKinds are the kinds the cache watches: the ConfigMaps are there for
// the inventories.
var cacheKinds = []string{"ConfigMap", "Secret", "Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"}

// cached returns the live object of kind and name in ns from the cache,
// nil when it does not exist. The first read of a namespace starts its
// watches and waits for them to list.
func (d *Driver) cached(ctx context.Context, ns, kind, name string) (*unstructured.Unstructured, error) {
	c, err := d.namespaceCache(ctx, ns)
	if err != nil {
		return nil, err
	}
	l, ok := c.listers[kind]
	if !ok {
		// Kinds of APIs a cluster may lack (HTTPRoute) are not watched:
		// a watch of a missing API would never sync.
		return d.get(ctx, ns, entry{Kind: kind, Name: name})
	}
	obj, err := l.ByNamespace(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s/%s: %w", kind, ns, name, err)
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("reading %s %s/%s: cached as %T", kind, ns, name, obj)
	}
	return u, nil
}

func (d *Driver) namespaceCache(ctx context.Context, ns string) (*nsCache, error) {
	d.cache.mu.Lock()
	c := d.cache.namespaces[ns]
	if c == nil {
		c = &nsCache{ready: make(chan struct{}), listers: map[string]cache.GenericLister{}}
		d.cache.namespaces[ns] = c
		go d.startCache(ns, c)
	}
	d.cache.mu.Unlock()
	select {
	case <-c.ready:
		return c, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the cache of namespace %s: %w", ns, ctx.Err())
	}
}

func (d *Driver) startCache(ns string, c *nsCache) {
	defer close(c.ready)
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(d.dyn, 0, ns, func(o *metav1.ListOptions) {
		o.LabelSelector = labelManagedBy + "=socle"
	})
	for _, kind := range cacheKinds {
		inf := f.ForResource(resources[kind])
		// Managed fields are half of an object's size and socle compares
		// its own fields only.
		if err := inf.Informer().SetTransform(func(obj any) (any, error) {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				u.SetManagedFields(nil)
			}
			return obj, nil
		}); err != nil {
			c.err = fmt.Errorf("caching namespace %s: %w", ns, err)
			return
		}
		c.listers[kind] = inf.Lister()
	}
	f.Start(d.cache.stop)
	for gvr, ok := range f.WaitForCacheSync(d.cache.stop) {
		if !ok {
			c.err = fmt.Errorf("caching %s of namespace %s: the driver closed", gvr.Resource, ns)
		}
	}
}

// Close stops the driver's watches. The driver must not be used after.
func (d *Driver) Close() error {
	d.cache.stopOnce.Do(func() { close(d.cache.stop) })
	return nil
}
