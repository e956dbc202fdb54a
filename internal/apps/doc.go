// Package apps is the app kind of unit: a Score workload in an
// environment. It builds the app's image when the desired state names no
// artifact, records every rollout as a release, and rolls new releases out
// by their strategy (rolling, blue/green, canary with analysis and
// automatic rollback) as a persisted state machine that the engine
// (package reconcile) drives one step per pass: each step is saved before
// it is taken, pauses and waits are requeues, and a restarted socle
// resumes a rollout at its step; a target that failed is not tried again
// until the desired state changes. Between rollouts it keeps the running
// release applied, healed or reported as drift.
//
// It drives every environment's runtime through one interface,
// runtime.UnitDriver: Kubernetes, and socle's replica runtime (package
// replicas) for environments whose runtime runs replicas one by one.
// Canary analysis by error rate and latency is a capability of runtimes
// whose requests cross socle's proxy (Proxied); elsewhere a canary step
// passes when its workload stays healthy.
package apps
