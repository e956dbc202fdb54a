package reconcile

import "time"

// Phase is a unit's state in words a person understands.
type Phase string

// The phases of a unit.
const (
	// Pending: not observed yet.
	Pending Phase = "Pending"
	// Synced: what runs is what Git says, and it is healthy.
	Synced Phase = "Synced"
	// Progressing: a rollout is under way.
	Progressing Phase = "Progressing"
	// Degraded: the right release runs but not every replica is ready.
	Degraded Phase = "Degraded"
	// Failed: the desired release could not be built or rolled out; what ran
	// before keeps running, and nothing is retried until the spec changes.
	Failed Phase = "Failed"
	// Orphaned: removed from Git, kept running because the environment
	// does not prune.
	Orphaned Phase = "Orphaned"
	// Unsupported: the environment's runtime is not available here.
	Unsupported Phase = "Unsupported"
	// Blocked: a gate or a policy keeps the desired change from being
	// applied; what ran before keeps running.
	Blocked Phase = "Blocked"
)

// UnitStatus is what the engine knows of one unit.
type UnitStatus struct {
	App   string `json:"app"`
	Env   string `json:"env"`
	Phase Phase  `json:"phase"`
	// Message says why, when the phase is not Synced, and what happens next.
	Message string `json:"message,omitempty"`
	// Release is the ID of the release that runs (serves traffic).
	Release  int64  `json:"release,omitempty"`
	Revision string `json:"revision,omitempty"`
	Artifact string `json:"artifact,omitempty"`
	// Ready and Desired count replicas of the running release.
	Ready   int `json:"ready"`
	Desired int `json:"desired"`
	// Replicas are the unit's replicas as the runtime reports them.
	Replicas []ReplicaStatus `json:"replicas,omitempty"`
	// URL is where the proxy serves the unit's primary port.
	URL       string    `json:"url,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ReplicaStatus is one replica in a unit's status.
type ReplicaStatus struct {
	Name     string `json:"name"`
	Release  string `json:"release"`
	State    string `json:"state"`
	Ready    bool   `json:"ready"`
	Address  string `json:"address,omitempty"`
	Restarts int    `json:"restarts"`
	PID      int    `json:"pid,omitempty"`
	Message  string `json:"message,omitempty"`
}
