// Package wiring is where socle's concrete parts are named and put
// together for the server and the CLI alike: the runtime types socle is
// built with (one registration line each), the loading of a platform
// repository with them, the published schemas they compose, and the
// opening of each environment's runtime. Only the wiring imports concrete
// runtimes; everything else sees the runtime package's interfaces.
package wiring
