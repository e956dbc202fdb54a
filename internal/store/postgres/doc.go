// Package postgres is the shared implementation of store.Store: a
// PostgreSQL database that several socle replicas use at once, through
// pgx's connection pool. Its schema is a sequence of versioned migrations,
// the files migrations/NNNN_name.sql embedded in the binary: Open applies
// the ones a database lacks, in order, each in its own transaction (DDL is
// transactional in PostgreSQL) under an advisory lock, so that replicas
// started together apply each once, and records them in schema_migrations.
// Versions follow store/sqlite's ranges: 0001–0009 for the store, 0010–0019
// for the cost tables, 0020– for the leases.
//
// # Ordering of the logs
//
// The contract says event IDs increase in the order events become visible,
// so that "events after ID n" is a safe cursor. A sequence alone does not
// give that: transaction A takes ID 7, B takes 8 and commits first, a
// reader sees 8 and moves its cursor past 7, which A then commits. Every
// transaction that appends events therefore takes a transaction-scoped
// advisory lock (pg_advisory_xact_lock) just before its inserts and holds
// it to its commit: IDs are taken in the order of the commits, and
// PostgreSQL makes a transaction visible before it releases its locks, so
// whoever sees ID n sees every smaller ID that will ever exist. Appending
// is thereby serialised, for the few milliseconds from the insert to the
// commit; socle appends tens of events a minute, not thousands a second.
// A commit-ordered cursor (pg_current_xact_id and pg_snapshot_xmin on each
// row, readers holding back what is not yet below every snapshot's xmin)
// lets writers run in parallel but makes every reader's query and cursor
// more complex, and a long transaction elsewhere in the database holds every
// follower back: not worth it at socle's rate.
//
// The audit trail needs more than ordering: each record's Seq and PrevHash
// follow the last record's, so appending reads the last record and writes
// the next under another advisory lock, again held to the commit (the read
// is a statement after the lock, so READ COMMITTED shows it the previous
// holder's record). A BeginRelease takes, besides, the advisory lock of its
// unit, for the read of the unit's Progressing release and the writes it
// decides. Locks are always taken in the order unit, audit, events, and no
// transaction takes both of the logs' locks, so they never deadlock.
//
// # Leases and fencing
//
// Leaser implements package lease's seam for replicas sharing the
// database: a row per scope (the platform, an environment) with its
// holder, an expiry by the database's clock that the holder renews, and a
// fencing epoch that grows by one at each takeover; lease.go says why a row
// rather than advisory locks on a pinned connection. DB.Fenced gives the
// store as seen by the holder of one epoch: each of its writes checks, in
// its own transaction and holding the lease's row, that the epoch is still
// the scope's and unexpired, and is refused (lease.ErrFenced, counted by
// DB.Refused) otherwise, so that a holder paused past its expiry never
// writes after its successor took over.
package postgres
