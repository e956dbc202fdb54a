// Package runtime is the boundary between socle's reconciler and the engines
// that run an application's replicas: a Driver starts, supervises, observes
// and stops replicas described by a ReplicaSpec, and hands back a Handle that
// survives a restart of socle. Drivers (package runtime/local today,
// containers and Kubernetes later) implement Driver and pass the conformance
// suite in package runtime/runtimetest; they never import the reconciler, and
// only the server wiring imports a concrete driver.
package runtime
