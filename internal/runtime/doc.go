// Package runtime is the boundary between socle's reconciler and the engines
// that run an application's replicas: a Driver starts, supervises, observes
// and stops replicas described by a ReplicaSpec, and hands back a Handle that
// survives a restart of socle; a UnitDriver takes whole units from it, for
// engines that keep replicas themselves. Drivers (runtime/local,
// runtime/kubernetes) pass the conformance suite in package
// runtime/runtimetest; they never import the reconciler, and only the wiring
// imports a concrete driver.
//
// Runtimes register by type (Type, Registry): each runtime's package gives
// the name an environment's runtime.type uses, the schema and decoding of
// the rest of its block, and the constructor of its driver, and the wiring
// (package wiring) lists the types socle is built with.
package runtime
