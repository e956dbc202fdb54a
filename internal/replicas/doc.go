// Package replicas runs units replica by replica behind socle's proxy: it
// is the unit runtime (runtime.UnitDriver) of environments whose runtime
// runs replicas one at a time (runtime.Driver: the local runtime, later a
// container runtime), so that the app kind drives them exactly as it
// drives Kubernetes. It plays the part a Deployment's controller and a
// Service play there: Apply starts the replicas a unit's releases should
// have, routes the ready ones through the proxy (by the weights of a
// canary step, to one release, or to every one), replaces a rolling
// release's predecessor as its replicas become ready (maxSurge at a time),
// and stops what is no longer wanted once the proxy has drained it; Health
// reports each release's replicas; an autoscaler sizes units between their
// minimum and maximum from their requests in flight. Unlike a Deployment it
// has no loop of its own: the engine applies a unit again whenever Drift
// says that applying it would change something (a replica became ready),
// which the runtime's events make prompt.
//
// It also reports what the proxy measured of each release (Stats), which a
// canary's analysis reads, and the address where the proxy serves a unit
// (URL). The proxy is reached through Router, which *proxy.Proxy
// implements; the runtime driver never sees the proxy.
package replicas
