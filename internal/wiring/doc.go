// Package wiring is the one place that chooses socle's concrete stores and
// drivers: the SQLite database of a data directory (its secrets sealed
// with the directory's key), the lease that makes one socle serve a data
// directory, the local runtime, and the Kubernetes driver of each
// kubeconfig context. The server and the CLI both open what they need
// through it, so that neither imports a concrete implementation, and a
// second one (PostgreSQL, a container runtime) is added here.
package wiring
