// Package local is the runtime driver that runs each replica as a process of
// this machine, from the unpacked image, on loopback ports of its own, and
// keeps it running: probes, restarts with backoff, logs with rotation, and
// re-attachment to its replicas after socle restarts, even after kill -9.
// It needs Linux (process groups, /proc and pidfds). The supervision it
// shares with the container runtime (probes, restarts, Recover, Stop,
// events, port allocation) is package supervise's; this package runs,
// ends, records and finds again the processes.
//
// # Processes
//
// A replica's process is the image's entrypoint, in a process group of its
// own, with only the spec's environment plus PORT and PORT_<NAME> (and PATH
// if the spec has none), run in a sandbox of package sandbox (bubblewrap):
// the image is its root, read-only, with the host's system directories
// where the image has none (so a script finds the host's interpreter, and a
// dynamically linked program the host's loader), a private /tmp, its own
// PID, mount and IPC namespaces, the host's network, and, when socle runs as
// root, a user of its own per app and environment. It sees nothing of
// socle's data directory nor of other apps. A replica with resources.limits
// runs in a control group of its own (package sandbox/cgroup), when socle
// is root and the machine has the memory and cpu controllers (cgroup v2, or
// v1 as in the hybrid layout): socle/local-<hash of StateDir>/<id> under
// the controllers' mount points. Its processes are in it from their start;
// it is kept while the replica runs, across its restarts and socle's, and
// removed by Stop; New removes the groups of its scope whose replica it no
// longer has. An exit after which the group counts a new OOM kill is
// recorded as "out of memory". Elsewhere (not root, no controllers, the
// sandbox off) limits are not enforced, and sandbox.Limits says why. It is
// not a container image runtime: Start refuses, saying why,
// an entrypoint built for another processor, or linked against a loader
// that this host lacks. With the sandbox off (Options.Sandbox =
// sandbox.Off(), socle up --insecure-no-sandbox) the entrypoint runs as a
// plain process of socle's user from the image's directory; where no
// sandbox can be made and it is not off, Start fails with the reason.
//
// In the sandbox, the group's leader, whose pid the driver records, is
// bwrap's monitor; bwrap's init (pid 1 of the sandbox) and the entrypoint
// are in its group. Stop sends SIGTERM to the group but its leader (which
// would die of it at once: it exits as the entrypoint does, with its
// status, or 128 + the signal that killed it), then SIGKILL to all of it. A
// group whose leader ended while socle was away is killed when the driver
// next loads it. Exec probes run in a sandbox of their own, alike, which
// dies with socle.
//
// Replicas are not killed when socle dies (no parent-death signal, no
// bwrap --die-with-parent): they stop when Stop or StopAll is called, with
// SIGTERM to the group (but bwrap's monitor, as above), then SIGKILL to all
// of it after the grace period, so that nothing the replica started is
// left behind.
//
// # Ports
//
// Each port of the spec gets a free TCP port on 127.0.0.1, chosen by the
// kernel when the replica is created, kept across its restarts and across
// restarts of socle, and reported in Status.Ports as "127.0.0.1:port". The
// replica learns it from PORT (the first port) and PORT_<NAME> (the name in
// upper case, other characters than letters and digits as '_'), and must
// listen there. Probes name a container port; they go to the address given
// to it.
//
// # State directory
//
//	<StateDir>/lock                      held (flock) by the one driver using the directory
//	<StateDir>/replicas/<id>/replica.json  the spec, ports, pid and start time, restarts, last exit
//	<StateDir>/replicas/<id>/output.log    stdout and stderr, appended across restarts
//	<StateDir>/replicas/<id>/output.log.1  rotated logs, .1 the newest, up to Options.LogFiles
//
// where <id> is env_app_release_index. replica.json is replaced atomically on
// every start and exit; it holds the replica's resolved environment, so the
// directories are readable by socle's user only. A process is recognised as
// the replica's by its pid together with its start time in /proc/<pid>/stat,
// so that a reused pid is never taken for it, and failing that by the
// variable SOCLE_LOCAL_REPLICA=<replica directory> in its environment, which
// covers a crash of socle between starting a process and recording it.
//
// # Re-attachment
//
// New reads the state directory and lists each replica as Detached (alive)
// or Lost; Recover adopts it. An adopted process is not socle's child, so its
// end is observed through a pidfd and its exit status is unknown. Its output
// keeps going to its log file, which it holds open: that is why output goes
// to files and never through a pipe to socle, whose death would break it.
// Processes whose parent died are reaped by the system's init, which may not
// do it promptly; a zombie counts as ended.
//
// # Logs
//
// The replica writes its output to output.log itself, opened for appending.
// The driver checks its size every second and rotates it by copying it to
// output.log.1 and truncating it, as logrotate's copytruncate does: the
// process keeps its file, and output written in the instant between the copy
// and the truncation is lost. Rotation happens while a replica is
// supervised.
package local
