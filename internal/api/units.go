package api

import (
	"time"

	"github.com/invopop/jsonschema"
	"github.com/score-spec/score-go/types"
)

// The wire types of units, plans, gates and policies. They are the API's
// own, converted from the engine's and the pipeline's at the server's
// handlers, so that a change inside socle does not change the API; the
// Score parts of a unit (containers, service, resources) are Score's own
// types, a published and versioned specification a client already reads.

// Unit is the effective configuration of one app in one environment: what
// socle runs, with secret values redacted.
type Unit struct {
	App  string `json:"app"`
	Env  string `json:"env"`
	Team string `json:"team,omitempty"`
	Zone string `json:"zone,omitempty"`
	// Revision is the commit the unit was resolved from.
	Revision string `json:"revision,omitempty"`
	// Source is how the unit is run: an image, or a build from the repository.
	Source   string `json:"source"`
	Artifact string `json:"artifact,omitempty"`
	// Rollback is true when a rollback pinned the unit.
	Rollback bool `json:"rollback,omitempty"`
	// Emergency is the reason of the emergency change that pinned it.
	Emergency string `json:"emergency,omitempty"`
	// Runtime is the environment's runtime type (local, kubernetes, …).
	Runtime    string                     `json:"runtime"`
	Metadata   types.WorkloadMetadata     `json:"metadata,omitempty"`
	Replicas   Replicas                   `json:"replicas"`
	Rollout    Rollout                    `json:"rollout"`
	Containers map[string]types.Container `json:"containers"`
	Service    *types.WorkloadService     `json:"service,omitempty"`
	Resources  types.WorkloadResources    `json:"resources,omitempty"`
	// Secrets are the names of the variables whose values are secret.
	Secrets []string `json:"secrets,omitempty"`
	// Routes are the hosts and path prefixes socle's proxy serves the app
	// on here, besides its own host.
	Routes []UnitRoute `json:"routes,omitempty"`
}

// UnitRoute is one of a unit's routes (socle.yaml routes).
type UnitRoute struct {
	// Host is a host name; empty: the app's own host.
	Host string `json:"host,omitempty"`
	// Path is a path prefix; empty: every path.
	Path string `json:"path,omitempty"`
	// Strip removes Path before the request reaches the app.
	Strip bool `json:"strip,omitempty"`
	// Port is the service port served, by name; empty: the primary one.
	Port string `json:"port,omitempty"`
}

// Replicas is how many replicas a unit runs.
type Replicas struct {
	Min int `json:"min" jsonschema:"required,minimum=0,maximum=1000"`
	Max int `json:"max,omitempty" jsonschema:"minimum=0,maximum=1000"`
}

// Rollout is how a new release replaces the running one.
type Rollout struct {
	Strategy       string       `json:"strategy" jsonschema:"required,enum=rolling,enum=blueGreen,enum=canary"`
	MaxSurge       *int         `json:"maxSurge,omitempty" jsonschema:"minimum=0"`
	MaxUnavailable *int         `json:"maxUnavailable,omitempty" jsonschema:"minimum=0"`
	Steps          []CanaryStep `json:"steps,omitempty"`
	Analysis       *Analysis    `json:"analysis,omitempty"`
}

// CanaryStep is one step of a canary: the new release's share of requests,
// held for Pause.
type CanaryStep struct {
	Weight int      `json:"weight" jsonschema:"required,minimum=0,maximum=100"`
	Pause  Duration `json:"pause,omitempty"`
}

// Analysis is what a canary step's traffic must show to go on.
type Analysis struct {
	MaxErrorRate *float64 `json:"maxErrorRate,omitempty" jsonschema:"minimum=0,maximum=1"`
	MaxP95       Duration `json:"maxP95,omitempty"`
	MinRequests  int      `json:"minRequests,omitempty" jsonschema:"minimum=0"`
}

// Duration is a duration as Go writes it (1h30m0s); "" for none.
type Duration string

// JSONSchema describes the duration format.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*$`,
		Description: "A duration such as 90s, 30m, 1h30m or 2d.",
	}
}

// PlanSummary counts a plan's changes by action.
type PlanSummary struct {
	Create    int `json:"create"`
	Update    int `json:"update"`
	Delete    int `json:"delete"`
	Unchanged int `json:"unchanged"`
}

// PlanChange is what a plan does to one unit.
type PlanChange struct {
	// Action is create, update, delete or no-op.
	Action string `json:"action" jsonschema:"enum=create,enum=update,enum=delete,enum=no-op"`
	App    string `json:"app"`
	Env    string `json:"env"`
	// Fields are the fields an update changes.
	Fields []PlanField `json:"fields,omitempty"`
	// Desired is the unit after the change (not for a delete).
	Desired *Unit `json:"desired,omitempty"`
}

// PlanField is one field an update changes, by its path in the unit.
type PlanField struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// PlanResourceChange is what a plan does to one resource the units use
// (a Score resource socle provisions) in one environment.
type PlanResourceChange struct {
	// Action is create (provisioned), update (provisioned again: its
	// provisioner, driver, class, params or outputs change) or delete
	// (deprovisioned, or kept when retained).
	Action string `json:"action" jsonschema:"enum=create,enum=update,enum=delete"`
	// Name is the resource's name in its environment: its Score id when
	// workloads share it, else <app>-<resource>.
	Name        string `json:"name"`
	Env         string `json:"env"`
	Type        string `json:"type"`
	Class       string `json:"class,omitempty"`
	Provisioner string `json:"provisioner"`
	Driver      string `json:"driver"`
	// Apps use it after the change; for a delete, the apps that used it.
	Apps []string `json:"apps"`
	// Fields are what an update changes of what the driver is asked for.
	Fields []PlanField `json:"fields,omitempty"`
	// Retained: removed from Git, it holds data in a production
	// environment and is kept until an admin deletes it.
	Retained bool `json:"retained,omitempty"`
}

// PlanBody is a recorded plan: the changes, the policies' decisions on
// them and the changes closed gates hold.
type PlanBody struct {
	Revision string       `json:"revision,omitempty"`
	Changes  []PlanChange `json:"changes"`
	Summary  PlanSummary  `json:"summary"`
	// Resources are the changes to the resources the units use, by
	// environment then name; absent when none changes.
	Resources []PlanResourceChange `json:"resources,omitempty"`
	Decisions []PlanDecision       `json:"decisions"`
	// Gates are the changes a closed promotion gate holds, by "app@env".
	Gates map[string]string `json:"gates,omitempty"`
	// Secrets are the changes held because socle cannot decrypt the
	// unit's secret file, or resolve a reference to a secret manager
	// (ref+vault://…), by "app@env": the file or the reference and why
	// (never a value).
	Secrets map[string]string `json:"secrets,omitempty"`
	// Unresolved are the keys of Secrets held by a reference that does
	// not resolve (SecretUnresolved), not by a file (SecretUndecryptable).
	Unresolved []string `json:"unresolved,omitempty"`
}

// GateKind names a promotion gate.
type GateKind string

// The promotion gates.
const (
	// GateSource: the artifact does not run healthy in the environment
	// promoted from.
	GateSource GateKind = "source"
	// GateSoak: the artifact has not run there long enough.
	GateSoak GateKind = "soak"
	// GateApprovals: approvals are missing.
	GateApprovals GateKind = "approvals"
	// GateWindow: outside the environment's deployment windows.
	GateWindow GateKind = "window"
	// GateFreeze: a freeze is in force.
	GateFreeze GateKind = "freeze"
	// GateEmergency: a pinned emergency change is not honoured.
	GateEmergency GateKind = "emergency"
)

// GateKinds are every gate kind, in the order gates are checked.
var GateKinds = []GateKind{GateSource, GateSoak, GateApprovals, GateWindow, GateFreeze, GateEmergency}

// JSONSchema lists the gate kinds.
func (GateKind) JSONSchema() *jsonschema.Schema {
	return enumSchema("A promotion gate: source (the artifact is not healthy where it comes from), soak, approvals, window, freeze, emergency (a pinned emergency change is not honoured).", GateKinds)
}

// GateBlock is one closed gate.
type GateBlock struct {
	Gate   GateKind `json:"gate"`
	Reason string   `json:"reason"`
	// Opens is when the gate opens, where that is known.
	Opens time.Time `json:"opens,omitzero"`
}

// GateResult is the gates' verdict on a promotion.
type GateResult struct {
	Blocks []GateBlock `json:"blocks,omitempty"`
	// Skipped are the closed gates an emergency change passes.
	Skipped []GateBlock `json:"skipped,omitempty"`
}

// Open reports whether every gate is open.
func (r GateResult) Open() bool { return len(r.Blocks) == 0 }

// PolicyVerdict is one policy's verdict on a change.
type PolicyVerdict struct {
	Policy string `json:"policy"`
	// Severity is what a failed policy does: deny blocks, warn annotates.
	Severity string `json:"severity" jsonschema:"enum=deny,enum=warn"`
	Allowed  bool   `json:"allowed"`
	// Message says what is wrong and what to do; empty when allowed.
	Message string `json:"message,omitempty"`
	// Builtin is true for socle's own guardrails; File names the policies
	// file of the others.
	Builtin bool   `json:"builtin,omitempty"`
	File    string `json:"file,omitempty"`
}

// PolicyVerdicts are the verdicts of every policy that applies.
type PolicyVerdicts []PolicyVerdict

// Blocked reports whether a verdict denies the change.
func (vs PolicyVerdicts) Blocked() bool { return len(vs.Denials()) > 0 }

// Denials are the verdicts that deny the change.
func (vs PolicyVerdicts) Denials() PolicyVerdicts {
	var out PolicyVerdicts
	for _, v := range vs {
		if !v.Allowed && v.Severity == "deny" {
			out = append(out, v)
		}
	}
	return out
}

// PlanDecision is the policies' verdicts on one change of a plan.
type PlanDecision struct {
	// Action is the change's: create, update, delete or no-op.
	Action string `json:"action" jsonschema:"enum=create,enum=update,enum=delete,enum=no-op"`
	App    string `json:"app"`
	Env    string `json:"env"`
	// Verdicts are empty for a delete.
	Verdicts PolicyVerdicts `json:"verdicts"`
}

// Phase is a unit's state.
type Phase string

// The phases of a unit.
const (
	PhasePending     Phase = "Pending"     // not observed yet
	PhaseBuilding    Phase = "Building"    // socle builds the desired release's image; what ran before keeps running
	PhaseSynced      Phase = "Synced"      // what runs is what Git says, and it is healthy
	PhaseProgressing Phase = "Progressing" // a rollout is under way
	PhaseDegraded    Phase = "Degraded"    // the right release runs but not every replica is ready
	PhaseFailed      Phase = "Failed"      // the desired release could not be built or rolled out; what ran before keeps running
	PhaseOrphaned    Phase = "Orphaned"    // removed from Git, kept running: the environment does not prune
	PhaseUnsupported Phase = "Unsupported" // the environment's runtime is not available here
	PhaseBlocked     Phase = "Blocked"     // a gate or a policy holds the desired change
	// PhaseAbsent is a matrix cell's only: the app does not run in the
	// environment (disabled, or not promoted yet).
	PhaseAbsent Phase = "Absent"
)

// Phases are every phase.
var Phases = []Phase{PhasePending, PhaseBuilding, PhaseSynced, PhaseProgressing, PhaseDegraded, PhaseFailed,
	PhaseOrphaned, PhaseUnsupported, PhaseBlocked, PhaseAbsent}

// JSONSchema lists the phases.
func (Phase) JSONSchema() *jsonschema.Schema {
	return enumSchema("A unit's state. Absent is a matrix cell's only: the app does not run in the environment.", Phases)
}

// ReasonCode says why a unit is in its phase, for programs; the words for
// people are beside it.
type ReasonCode string

// The reason codes.
const (
	ReasonBuilding            ReasonCode = "Building"            // Building: the build command runs
	ReasonBuildFailed         ReasonCode = "BuildFailed"         // Failed: the build failed; logTail has its last lines
	ReasonRollingOut          ReasonCode = "RollingOut"          // Progressing: a release rolls out
	ReasonRolloutFailed       ReasonCode = "RolloutFailed"       // Failed: the rollout failed, what ran before is restored
	ReasonRolledBack          ReasonCode = "RolledBack"          // Failed: the rollout's analysis rolled it back
	ReasonReplicasNotReady    ReasonCode = "ReplicasNotReady"    // Degraded
	ReasonDrift               ReasonCode = "Drift"               // Degraded: drift reported, not corrected (selfHeal off)
	ReasonRuntimeError        ReasonCode = "RuntimeError"        // Degraded: the runtime did not answer or refused a step
	ReasonRuntimeUnreachable  ReasonCode = "RuntimeUnreachable"  // Degraded: the environment's runtime cannot be reached
	ReasonStoreError          ReasonCode = "StoreError"          // Degraded: socle's store did not answer
	ReasonRuntimeUnsupported  ReasonCode = "RuntimeUnsupported"  // Unsupported
	ReasonPolicyDenied        ReasonCode = "PolicyDenied"        // Blocked: a policy denies the change
	ReasonGateClosed          ReasonCode = "GateClosed"          // Blocked: a promotion gate holds the change
	ReasonSecretUndecryptable ReasonCode = "SecretUndecryptable" // Blocked: socle holds no identity that decrypts the unit's secret file
	ReasonSecretUnresolved    ReasonCode = "SecretUnresolved"    // Blocked: a reference to a secret manager (ref+vault://…) does not resolve
	ReasonRemovedFromGit      ReasonCode = "RemovedFromGit"      // Orphaned
	ReasonOneContainerOnly    ReasonCode = "OneContainerOnly"    // Synced, with a note: the local runtime runs one container per replica
	ReasonInvalidSpec         ReasonCode = "InvalidSpec"         // Failed: the unit's kind cannot read its desired state
	ReasonDependencyNotReady  ReasonCode = "DependencyNotReady"  // Pending: a change waits for a unit it depends on
	ReasonDependencyFailed    ReasonCode = "DependencyFailed"    // Pending: a change waits for a unit it depends on, which Failed; the portal counts it Failed
	ReasonDependentsRemain    ReasonCode = "DependentsRemain"    // Pending: removed, pruned once the units that depend on it are
	ReasonCanaryPaused        ReasonCode = "CanaryPaused"        // Progressing: a canary step holds its weight for its pause
	ReasonWaitingReady        ReasonCode = "WaitingReady"        // Progressing: a rollout step waits for the new release to be ready
)

// ReasonCodes are every reason code.
var ReasonCodes = []ReasonCode{ReasonBuilding, ReasonBuildFailed, ReasonRollingOut, ReasonRolloutFailed, ReasonRolledBack,
	ReasonReplicasNotReady, ReasonDrift, ReasonRuntimeError, ReasonRuntimeUnreachable, ReasonStoreError,
	ReasonRuntimeUnsupported, ReasonPolicyDenied, ReasonGateClosed, ReasonSecretUndecryptable, ReasonSecretUnresolved, ReasonRemovedFromGit, ReasonOneContainerOnly,
	ReasonInvalidSpec, ReasonDependencyNotReady, ReasonDependencyFailed, ReasonDependentsRemain, ReasonCanaryPaused, ReasonWaitingReady}

// JSONSchema lists the reason codes.
func (ReasonCode) JSONSchema() *jsonschema.Schema {
	return enumSchema("Why a unit is in its phase, for programs (the words for people are beside it).", ReasonCodes)
}

func enumSchema[T ~string](desc string, values []T) *jsonschema.Schema {
	s := &jsonschema.Schema{Type: "string", Description: desc}
	for _, v := range values {
		s.Enum = append(s.Enum, string(v))
	}
	return s
}

// UnitStatus is what runs of a unit, as the engine sees it.
type UnitStatus struct {
	// Kind is the unit's kind (app).
	Kind   string     `json:"kind"`
	App    string     `json:"app"`
	Env    string     `json:"env"`
	Phase  Phase      `json:"phase"`
	Reason ReasonCode `json:"reason,omitempty"`
	// Message says why in words.
	Message string `json:"message,omitempty"`
	// Since is when the unit entered its phase with its reason.
	Since time.Time `json:"since,omitzero"`
	// LogTail is the end of the build log.
	LogTail string `json:"logTail,omitempty"`
	// RetryAt is when a failed build is tried again.
	RetryAt  time.Time `json:"retryAt,omitzero"`
	Release  int64     `json:"release,omitempty"`
	Revision string    `json:"revision,omitempty"`
	Artifact string    `json:"artifact,omitempty"`
	Ready    int       `json:"ready"`
	Desired  int       `json:"desired"`
	// Replicas are the unit's replicas as the runtime reports them.
	Replicas []ReplicaStatus `json:"replicas,omitempty"`
	// URL is where the proxy serves the unit's primary port.
	URL string `json:"url,omitempty"`
	// Operation is where the rollout in progress is.
	Operation *OperationStatus `json:"operation,omitempty"`
	UpdatedAt time.Time        `json:"updatedAt"`
}

// OperationStatus is where a unit's rollout in progress is.
type OperationStatus struct {
	Release int64 `json:"release,omitempty"`
	// Strategy is rolling, blueGreen or canary.
	Strategy string `json:"strategy,omitempty"`
	// Step is the current step, from 1, of Steps.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// Phase is Waiting (for the new release to be ready) or Pausing (a
	// canary holding its weight).
	Phase string `json:"phase"`
	// Weight is the new release's share of requests, in percent.
	Weight        int       `json:"weight,omitempty"`
	StepStartedAt time.Time `json:"stepStartedAt"`
}

// ReplicaStatus is one replica as the runtime reports it.
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

// SourceRevision is a commit of the platform repository.
type SourceRevision struct {
	SHA     string    `json:"sha"`
	Author  string    `json:"author"`
	Email   string    `json:"email"`
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// Problem is what is wrong with a file of the repository, where.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Warning is true for a problem that does not make the revision invalid.
	Warning bool `json:"warning,omitempty"`
}

// Problems are a revision's problems.
type Problems []Problem

// AuditVerifyResult is the verification of the audit chain.
type AuditVerifyResult struct {
	// Verified is how many records verified, from the first on.
	Verified int64 `json:"verified"`
	// LastSeq and LastHash are the last record that verified.
	LastSeq  int64  `json:"lastSeq"`
	LastHash string `json:"lastHash"`
	// Problem is the first tampering found, if any.
	Problem *AuditProblem `json:"problem,omitempty"`
}

// AuditProblem is a break in the audit chain.
type AuditProblem struct {
	// Seq is the first record tampered with.
	Seq     int64  `json:"seq"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// DORAFigures are the four keys over a period. Its field names are
// capitalised and its durations nanoseconds, as the first version of the
// API wrote them; DORASeries is the form for new clients.
type DORAFigures struct {
	Since             time.Time     `json:"Since"`
	Until             time.Time     `json:"Until"`
	Deployments       int           `json:"Deployments"`
	DeploymentsPerDay float64       `json:"DeploymentsPerDay"`
	LeadTime          DORADurations `json:"LeadTime"`
	Changes           int           `json:"Changes"`
	Failures          int           `json:"Failures"`
	ChangeFailureRate float64       `json:"ChangeFailureRate"`
	TimeToRestore     DORADurations `json:"TimeToRestore"`
	Unrestored        int           `json:"Unrestored"`
	Emergencies       int           `json:"Emergencies"`
}

// DORADurations summarises a set of durations, in nanoseconds; all zero if
// N is 0.
type DORADurations struct {
	N      int           `json:"N"`
	Median time.Duration `json:"Median"`
	Mean   time.Duration `json:"Mean"`
	Max    time.Duration `json:"Max"`
}
