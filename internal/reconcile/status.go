package reconcile

import (
	"time"

	"github.com/socle-dev/socle/internal/unit"
)

// Phase is a unit's state in words a person understands.
type Phase string

// The phases of a unit.
const (
	// Pending: not observed yet.
	Pending Phase = "Pending"
	// Building: socle builds the image of the desired release; what ran
	// before keeps running.
	Building Phase = "Building"
	// Synced: what runs is what Git says, and it is healthy.
	Synced Phase = "Synced"
	// Progressing: a rollout is under way.
	Progressing Phase = "Progressing"
	// Degraded: the right release runs but not every replica is ready.
	Degraded Phase = "Degraded"
	// Failed: the desired release could not be built or rolled out; what ran
	// before keeps running. A rollout is retried when the desired state
	// changes; a build when the app's files change, or after a backoff
	// (RetryAt).
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

// Reason says why a unit is in its phase, in one word for programs (the
// Message says it for people): control flow tests reasons, never messages.
type Reason string

// The reasons of the phases; a Synced unit has none.
const (
	ReasonBuilding            Reason = "Building"            // Building: the build command runs
	ReasonBuildFailed         Reason = "BuildFailed"         // Failed: the build failed; LogTail has its last lines
	ReasonRollingOut          Reason = "RollingOut"          // Progressing: a release rolls out
	ReasonRolloutFailed       Reason = "RolloutFailed"       // Failed: the rollout failed, what ran before is restored
	ReasonRolledBack          Reason = "RolledBack"          // Failed: the rollout's analysis rolled it back
	ReasonReplicasNotReady    Reason = "ReplicasNotReady"    // Degraded
	ReasonDrift               Reason = "Drift"               // Degraded: drift reported, not corrected (selfHeal off)
	ReasonRuntimeError        Reason = "RuntimeError"        // Degraded: the runtime did not answer or refused a step
	ReasonRuntimeUnreachable  Reason = "RuntimeUnreachable"  // Degraded: the environment's runtime cannot be reached
	ReasonStoreError          Reason = "StoreError"          // Degraded: socle's store did not answer
	ReasonRuntimeUnsupported  Reason = "RuntimeUnsupported"  // Unsupported
	ReasonPolicyDenied        Reason = "PolicyDenied"        // Blocked: a policy denies the change
	ReasonGateClosed          Reason = "GateClosed"          // Blocked: a promotion gate holds the change
	ReasonSecretUndecryptable Reason = "SecretUndecryptable" // Blocked: socle holds no identity that decrypts the unit's secret file
	ReasonSecretUnresolved    Reason = "SecretUnresolved"    // Blocked: a reference to a secret manager that stands for a secret does not resolve
	ReasonRemovedFromGit      Reason = "RemovedFromGit"      // Orphaned
	ReasonOneContainer        Reason = "OneContainerOnly"    // Synced, with a note: the local runtime runs one container per replica
	ReasonInvalidSpec         Reason = "InvalidSpec"         // Failed: the unit's kind cannot read its desired state
	ReasonDependencyNotReady  Reason = "DependencyNotReady"  // Pending: a change waits for a unit it depends on to be Synced
	ReasonDependencyFailed    Reason = "DependencyFailed"    // Pending: a change waits for a unit it depends on, which Failed (a resource that did not provision)
	ReasonDependentsRemain    Reason = "DependentsRemain"    // Pending: removed, pruned once the units that depend on it are
	ReasonCanaryPaused        Reason = "CanaryPaused"        // Progressing: a canary step holds its weight for its pause, analysed
	ReasonWaitingReady        Reason = "WaitingReady"        // Progressing: a rollout step waits for the new release to be ready
)

// Key is the unit the status is of.
func (s UnitStatus) Key() unit.Key { return unit.Key{Kind: s.Kind, Name: s.App, Env: s.Env} }

// Block is why a unit's desired change waits (SetBlocked).
type Block struct {
	Reason  Reason // ReasonPolicyDenied, ReasonGateClosed, ReasonSecretUndecryptable or ReasonSecretUnresolved
	Message string
}

// UnitStatus is what the engine knows of one unit.
type UnitStatus struct {
	// Kind is the unit's kind ("app").
	Kind string `json:"kind"`
	// App is the unit's name: the app's, for a unit of kind app.
	App string `json:"app"`
	// Env is the unit's environment, or its zone.
	Env   string `json:"env"`
	Phase Phase  `json:"phase"`
	// Reason is why, for programs: one of the Reason constants.
	Reason Reason `json:"reason,omitempty"`
	// Message says why, when the phase is not Synced, and what happens next.
	Message string `json:"message,omitempty"`
	// Since is when the unit entered its phase with its reason: a build
	// has run since then.
	Since time.Time `json:"since,omitzero"`
	// LogTail is the end of the build log: its last line while Building,
	// its last lines when the build failed.
	LogTail string `json:"logTail,omitempty"`
	// RetryAt is when a failed build is tried again if the app's files do
	// not change before.
	RetryAt time.Time `json:"retryAt,omitzero"`
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
	URL string `json:"url,omitempty"`
	// Operation is where the operation in progress is (a rollout), for
	// programs: the words are in Message.
	Operation *OperationStatus `json:"operation,omitempty"`
	UpdatedAt time.Time        `json:"updatedAt"`
}

// OperationStatus is where a unit's operation in progress (a rollout) is,
// as it is persisted: a socle restarted resumes it there.
type OperationStatus struct {
	// Release is the release the operation records.
	Release int64 `json:"release,omitempty"`
	// Strategy is the rollout's strategy: rolling, blueGreen or canary.
	Strategy string `json:"strategy,omitempty"`
	// Step is the current step, from 1, of Steps.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// Phase is where the step is: Waiting (for the new release to be
	// ready) or Pausing (a canary holding its weight).
	Phase string `json:"phase"`
	// Weight is the share of requests, in percent, a canary step gives the
	// new release.
	Weight int `json:"weight,omitempty"`
	// StepStartedAt is when Phase began.
	StepStartedAt time.Time `json:"stepStartedAt"`
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
