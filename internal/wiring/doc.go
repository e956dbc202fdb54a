// Package wiring is where socle's concrete parts are named and put
// together for the server and the CLI alike: the SQLite database of a data
// directory (its secrets sealed with the directory's key), the lease that
// makes one socle serve a data directory, the runtime types socle is built
// with (one registration line each), the loading of a platform repository
// with them, the published schemas they compose, and the opening of each
// environment's runtime. Only the wiring imports concrete stores and
// runtimes; everything else sees the store and runtime packages'
// interfaces, so that a second store (PostgreSQL) or a container runtime
// is added here.
package wiring
