// Package store records what socle has seen and decided: the revisions of the
// platform repository and whether they validated, the desired state of every
// (app, environment) unit, the plans computed from it and an append-only event
// log. It knows nothing about socle's spec types: desired state and plans are
// JSON documents with a few indexed columns beside them, so that the embedded
// SQLite implementation (package store/sqlite) and a PostgreSQL one can sit
// behind the same Store interface and pass the same conformance suite (package
// store/storetest).
package store
