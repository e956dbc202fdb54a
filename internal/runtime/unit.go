package runtime

import (
	"context"
	"errors"

	"github.com/socle-dev/socle/internal/plan"
)

// UnitDriver runs whole units: the app kind hands it a unit's desired
// releases rather than replicas one by one. A Kubernetes Deployment's
// controller starts, restarts and replaces its pods by itself; socle's
// replica runtime (package replicas) does the same for a Driver behind the
// proxy, each time a unit is applied. The app kind still decides which
// releases run, records them, drives blue/green and canary rollouts step
// by step and rolls back; the driver applies, observes and prunes.
//
// # Lifecycle of a unit
//
//  1. Apply makes the runtime hold exactly spec's objects for the unit
//     (Kubernetes: server-side apply, field manager "socle", in dependency
//     order), recorded in the unit's inventory first, so that a crash in
//     the middle leaves nothing unknown; objects of the inventory that spec
//     no longer has, and whose release spec does not keep, are deleted
//     afterwards. It does not wait for the workloads to become ready: a
//     runtime without a controller of its own goes on (routes the replicas
//     that became ready, replaces a rolling release's predecessor) when the
//     same spec is applied again.
//  2. Drift says whether applying spec would change anything (Applied),
//     and compares the live objects with spec in the fields socle owns (a
//     hand `kubectl scale` or `kubectl edit` is drift); fields that other
//     managers own (an autoscaler's replicas) are not compared. Health
//     reports the unit's workloads as the runtime sees them.
//  3. Restore takes the unit back to a release that ran before, after a
//     rollout failed.
//  4. Prune deletes every object of the unit's inventory, and the inventory.
//
// Nothing of a unit lives in the driver value: a new driver over the same
// cluster finds every unit again (Units) from the inventories, so socle may
// restart at any time. Every method is safe for concurrent use; one unit is
// acted on by one caller at a time.
type UnitDriver interface {
	// Name is the driver's name, as in an environment's runtime.type.
	Name() string
	// Capabilities says what the driver can do, as data.
	Capabilities() Capabilities
	// Apply converges the unit's objects on spec (step 1). ErrInvalidUnit when
	// spec cannot be rendered (the error says which field and why).
	Apply(ctx context.Context, spec UnitSpec) error
	// Drift reports whether spec is what was applied last, and how the
	// live objects differ from it (step 2).
	Drift(ctx context.Context, spec UnitSpec) (Drift, error)
	// Health reports the unit's workloads, newest release first (step 2).
	Health(ctx context.Context, app, env string) ([]WorkloadHealth, error)
	// Restore makes release the one that runs and serves (step 3).
	Restore(ctx context.Context, app, env, release string) error
	// Prune deletes the unit's objects and inventory (step 4) and returns
	// how many objects it deleted; nothing to prune is not an error.
	Prune(ctx context.Context, app, env string) (int, error)
	// Units lists the units the driver finds an inventory of.
	Units(ctx context.Context) ([]UnitKey, error)
}

// UnitKey names a unit.
type UnitKey struct{ App, Env string }

// UnitSpec is what a unit should run now: the workload of its release,
// and during a rollout the release that still serves, kept as it runs.
type UnitSpec struct {
	App, Env string
	// Workloads to apply, the newest release first; the first one gives the
	// objects every release shares (Service, PodDisruptionBudget).
	Workloads []Workload
	// Keep names releases whose objects stay as they are, neither applied
	// nor pruned: the release that serves while a new one rolls out.
	Keep []string
	// Serve is the release the unit's service sends traffic to; empty means
	// every workload's ready pods, in proportion to their numbers (rolling
	// updates, and canary weights by replica counts).
	Serve string
	// Weight, when positive, asks that this percentage of requests reach
	// Workloads[0] and the rest the release Keep names first. A driver that
	// splits requests by weight (Kubernetes with a Gateway API route) does
	// so, and Serve does not apply; others fall back to Serve.
	Weight int
}

// Workload is one release of a unit, as one Deployment.
type Workload struct {
	// Release is socle's release name ("r12").
	Release string
	// Unit is the desired state the release runs.
	Unit *plan.Unit
	// Artifact is the release's artifact digest: the image its containers
	// run, or the pin list that gives each its own (see Images).
	Artifact string
	// Images gives the digest each container runs, by container name:
	// socle's build (image ".") in the registry the cluster pulls from,
	// an external image in its own repository. A container it leaves out
	// runs its image as written. When Images is nil (a preview that pins
	// nothing, socle render), every container built by socle runs
	// Artifact, and so does an external image when none is built.
	Images map[string]string `json:",omitempty"`
	// Dedicated gives the release a Deployment of its own (<app>-<release>)
	// rather than the unit's (<app>), whose pod template a rolling update
	// replaces: blue/green and canary rollouts run two at once.
	Dedicated bool
	// Replicas, when positive, fixes the replica count (a canary's share)
	// instead of the unit's bounds and autoscaler.
	Replicas int
}

// Drift is how a unit's live objects differ from a spec.
type Drift struct {
	// Applied is true when applying spec again would change nothing: the
	// unit's inventory records spec as the last spec applied whole, and
	// (for a runtime that moves a unit on only when it is applied) nothing
	// waits to be done. A false one is no drift: the desired state changed
	// (in Git) since, or the unit can move on; Changes is then empty for
	// Kubernetes.
	Applied bool
	// Changes lists, in words, each field socle owns whose live value
	// differs ("Deployment web: spec.replicas: 5, socle applies 2").
	Changes []string
}

// WorkloadHealth is the health of one release's Deployment, from its status.
type WorkloadHealth struct {
	Name    string
	Release string
	// Desired, Updated, Ready and Available count pods as the Deployment's
	// status does.
	Desired, Updated, Ready, Available int
	// State is where the release's rollout is.
	State WorkloadState
	// Message says why when the state is not Healthy: the pod-level reason
	// (Unschedulable: 0/1 nodes are available…, ImagePullBackOff…).
	Message string
	// Replicas are the release's replicas, one by one, from runtimes that
	// run them so (socle's replica runtime); nil from Kubernetes, whose
	// pods are the Deployment's.
	Replicas []Status
}

// WorkloadState is where a release's rollout is.
type WorkloadState string

// The workload states.
const (
	// WorkloadProgressing: the controller has not caught up with the spec,
	// or not every pod is updated and available yet.
	WorkloadProgressing WorkloadState = "Progressing"
	// WorkloadHealthy: every desired pod runs the spec and is available.
	WorkloadHealthy WorkloadState = "Healthy"
	// WorkloadFailed: the rollout is stuck past its progress deadline.
	WorkloadFailed WorkloadState = "Failed"
)

// ErrInvalidUnit is returned, wrapped, for a unit that cannot run on the
// driver; the error names the field and says why.
var ErrInvalidUnit = errors.New("invalid unit")

// ErrUnitDriver is returned, wrapped, when an environment's unit driver
// cannot be opened (no kubeconfig, unknown context).
var ErrUnitDriver = errors.New("unit driver unavailable")
