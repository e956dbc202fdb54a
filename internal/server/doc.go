// Package server wires socle together: the Git source, the loader, the
// planner and the store behind an HTTP API. It is the only package that
// chooses concrete implementations (SQLite, go-git).
package server
