// Package container is the runtime driver that runs each replica as an OCI
// container with Podman on this machine, daemonless and rootful, behind
// socle's proxy like the local runtime's processes: any image (socle's
// builds pulled from socle's registry, third-party images from theirs), in
// a container of its own with the Score container's resources.limits as
// cgroup limits (--cpus, --memory), probes, restarts with backoff, logs,
// and re-attachment to its containers after socle restarts, even after
// kill -9. It drives the podman command line (see podman); the
// supervision it shares with the local runtime (probes, restarts, Recover,
// Stop, events, port allocation) is package supervise's.
//
// # Containers
//
// A replica is one container, named socle-<env>-<app>-<release>-<index>-<random>
// (a name of its own, never reused, so that a new replica of a release
// does not wait for the removal of an old one), created with the image's
// entrypoint replaced by the spec's command, Podman's init as PID 1 (it
// passes SIGTERM on to the app and reaps orphans), and these labels:
//
//	socle.dev/owner    the id of the driver's state directory (its file owner)
//	socle.dev/app      socle.dev/env   socle.dev/release   socle.dev/replica
//
// The driver touches no container without its owner label: a state
// directory's containers are found, re-adopted and pruned by it.
// A container that ends unasked is started again (podman start, the same
// container: its log goes on) after the restart policy's backoff; the
// driver, not Podman's restart policy, restarts it, so that the status
// says Backoff and CrashLoop as every runtime does. Stop sends SIGTERM,
// then SIGKILL after the grace period, and removes the container.
//
// # Ports
//
// Each container port of the spec is published on a loopback port of the
// host that the driver chooses (-p 127.0.0.1:<host port>:<port>), kept for
// the replica's life and reported in Status.Ports. The app listens on its
// container port, which it reads from PORT (the first port) and
// PORT_<NAME>, as on the local runtime (where they are the host ports).
//
// # Images
//
// ReplicaSpec.Image is pulled unless Podman has it: from socle's registry
// with the app's read-only pull token (in an auth file, never on a command
// line), from a registry on loopback without TLS, from others as Podman
// does.
//
// # Configuration of Podman
//
// Every podman command socle runs reads <StateDir>/containers.conf
// (CONTAINERS_CONF) instead of the machine's: socle writes it once (runc as
// the OCI runtime, no default ulimits; see defaultConf) and keeps a user's
// edits. The machine's /etc/containers is left alone.
//
// # State directory
//
//	<StateDir>/lock              held (flock) by the one driver using the directory
//	<StateDir>/owner             the owner id of the directory's containers
//	<StateDir>/containers.conf   what socle's podman commands read
//	<StateDir>/replicas/<container>.json  the spec, host ports, restarts, last exit
//
// A record is written before its container is created and removed after
// it: a container of the owner that no record names is removed by New.
// Records hold the replicas' environment, so the directory is socle's
// user's only; variables reach podman in a file of that user, removed
// once the container exists, never on its command line.
//
// # Logs
//
// Output goes to Podman's k8s-file log, rotated by Podman at 10 MiB, and
// read with podman logs. A followed log ends when the container stops.
package container
