package runtime

import "time"

// State is where a replica is in its lifecycle (see Driver).
type State string

// The states of a replica.
const (
	// Starting: the process runs and has not passed its readiness probe yet.
	Starting State = "Starting"
	// Running: the process runs and has been ready; Status.Ready says
	// whether it is now.
	Running State = "Running"
	// Backoff: the process ended or was killed; it starts again at
	// Status.NextRestart.
	Backoff State = "Backoff"
	// CrashLoop: as Backoff, after RestartPolicy.CrashLoopAfter failures in
	// a row.
	CrashLoop State = "CrashLoop"
	// Stopping: Stop is under way.
	Stopping State = "Stopping"
	// Detached: found by a new driver instance, running, not supervised
	// until Recover.
	Detached State = "Detached"
	// Lost: found by a new driver instance, no longer running; Recover
	// starts it again.
	Lost State = "Lost"
)

// Status is what a driver observes of one replica.
type Status struct {
	Handle Handle `json:"handle"`
	Ref    Ref    `json:"ref"`
	State  State  `json:"state"`
	// Ready is true while the replica should receive traffic.
	Ready bool `json:"ready"`
	// Message says, in words, why the replica is not Running and ready.
	Message string `json:"message,omitempty"`
	// Ports are where the replica's ports are reached, in spec order.
	Ports []PortBinding `json:"ports,omitempty"`
	// PID of the replica's current process, for drivers of host processes.
	PID int `json:"pid,omitempty"`
	// StartedAt is when the current (or last) process started.
	StartedAt time.Time `json:"startedAt"`
	// Restarts counts the starts after the first.
	Restarts int `json:"restarts"`
	// Failures counts the failures in a row (see RestartPolicy).
	Failures int `json:"failures"`
	// NextRestart is when a replica in Backoff or CrashLoop starts again:
	// LastExit.At plus the policy's delay.
	NextRestart time.Time `json:"nextRestart,omitzero"`
	// LastExit is how the last process ended.
	LastExit *Exit `json:"lastExit,omitempty"`
}

// PortBinding says where a container port of a replica is reached.
type PortBinding struct {
	Name string `json:"name"`
	Port int    `json:"port"` // the container port of the spec
	// Address is host:port to connect to, e.g. "127.0.0.1:41873".
	Address string `json:"address"`
}

// Exit is how a replica's process ended.
type Exit struct {
	At time.Time `json:"at"`
	// Code is the exit status, or -1 if the process was killed by a signal
	// or its status is unknown.
	Code int `json:"code"`
	// Signal names the signal that killed it ("SIGKILL"), if one did.
	Signal string `json:"signal,omitempty"`
	// Reason says why, in words: "exit status 3", "killed by SIGKILL",
	// "liveness probe failed: …".
	Reason string `json:"reason"`
	// LogTail is the end of the replica's output when it ended.
	LogTail string `json:"logTail,omitempty"`
}

// EventType says what happened to a replica.
type EventType string

// The events of a replica.
const (
	EventStarted   EventType = "Started"   // a process started
	EventReady     EventType = "Ready"     // readiness probe passes
	EventNotReady  EventType = "NotReady"  // readiness probe fails
	EventUnhealthy EventType = "Unhealthy" // liveness probe failed: the replica is restarted
	EventExited    EventType = "Exited"    // the process ended unasked
	EventRecovered EventType = "Recovered" // Recover adopted a running process
	EventStopped   EventType = "Stopped"   // Stop finished; the replica is forgotten
)

// Event is something that happened to a replica, with its status just after.
type Event struct {
	At      time.Time `json:"at"`
	Type    EventType `json:"type"`
	Message string    `json:"message,omitempty"`
	Status  Status    `json:"status"`
}
