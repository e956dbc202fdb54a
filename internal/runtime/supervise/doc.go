// Package supervise keeps replicas running for the runtime drivers that
// supervise them themselves (runtime/local's host processes,
// runtime/container's Podman containers): the registry of a driver's
// replicas and the loopback ports they hold, each replica's lifecycle
// (Starting, Running, Backoff, CrashLoop, Stopping, Detached, Lost),
// readiness and liveness probes, restarts with the spec's backoff, Recover
// after socle restarts, Stop, and the events of runtime.Driver.Watch.
//
// What a run is belongs to the driver, through a Runner per replica: how to
// start one again, terminate it, run an exec probe in it, read the end of
// its output and record the replica in the driver's state directory. So do
// the state directory's layout, the replicas' environment, their logs, and
// how a driver finds its runs again after socle restarts (it loads them
// with Supervisor.Load before anything else). Drivers whose engine keeps
// the replicas itself (runtime/kubernetes) do not use it.
package supervise
