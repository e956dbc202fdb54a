// Package sqlite is the embedded implementation of store.Store: one SQLite
// file, opened in WAL mode with foreign keys on, through the pure-Go
// modernc.org/sqlite driver. Its schema is a sequence of versioned migrations,
// the files migrations/NNNN_name.sql embedded in the binary: Open applies the
// ones a database lacks, in order, each in its own transaction, and records
// them in the schema_migrations table. Adding a migration is adding a file
// with the next free number of one's range (0001–0009 belong to this
// package); a file must not contain transaction statements. Other packages
// that keep tables of their own add them the same way and reach them through
// DB.SQL.
package sqlite
