// Package runtimetest is the conformance suite of runtime.Driver. Every
// driver runs it from its own tests, against real workloads, with
//
//	runtimetest.Run(t, runtimetest.Harness{Open: …, Server: …})
//
// and must pass it unchanged: the suite, not a driver, says what the
// interface means. Parts that need a capability the driver does not declare
// are skipped. The workload is the program in runtimetest/testserver, which
// BuildServer compiles.
package runtimetest
