package api

import "time"

// The wire types of the infrastructure stacks: each instance of a stack
// (the stack in one zone or environment) with the engine's status of it,
// its last plan, its last apply and who runs it now. Nothing in them is
// secret: secret inputs and sensitive values are redacted before they get
// here.

// StackList is the answer of GET /api/v1/stacks.
type StackList struct {
	// Revision is the revision in force the stacks are read from.
	Revision string `json:"revision"`
	// NotRun, when set, says why socle runs no stack (neither terraform
	// nor tofu is on its PATH): the instances are listed, never planned
	// nor applied.
	NotRun string `json:"notRun,omitempty"`
	// Items are every instance of every stack, upstream stacks first
	// (dependsOn), each stack's instances in the order it lists them.
	Items []StackInstance `json:"items"`
}

// StackInstance is one instance of a stack and where it stands.
type StackInstance struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	// Of says what the instance is named after.
	Of        string   `json:"of" jsonschema:"enum=zone,enum=environment"`
	DependsOn []string `json:"dependsOn,omitempty"`
	// Unit is the engine's status of the instance, absent until the
	// engine reports one.
	Unit *StackUnit `json:"unit,omitempty"`
	// Plan is the last plan, absent when it was never planned.
	Plan *StackPlan `json:"plan,omitempty"`
	// Apply is the last apply, absent when it was never applied.
	Apply *StackApply `json:"apply,omitempty"`
	// Lock is who runs the instance now (a plan or an apply), absent
	// when no one does.
	Lock *StackLock `json:"lock,omitempty"`
	// Apply is gated: the instance's plans wait for its gates
	// (approvals, windows, freezes); else each plan is applied at once.
	Gated bool `json:"gated,omitempty"`
	// Gate is where the last plan of a gated instance stands against its
	// gates, absent when no plan waits.
	Gate *StackGate `json:"gate,omitempty"`
	// Pending are the inputs that read an upstream's output not applied
	// yet, in the revision in force: the instance waits for them and is
	// not planned until then.
	Pending []StackPending `json:"pending,omitempty"`
	// Problems say what of the instance could not be read; the rest is
	// shown.
	Problems []string `json:"problems,omitempty"`
}

// StackUnit is the engine's status of a stack instance.
type StackUnit struct {
	Phase   string `json:"phase"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Since is when the unit entered its phase.
	Since time.Time `json:"since,omitzero"`
	// UpdatedAt is when the engine last recorded it.
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	// Revision is the platform revision the engine planned the instance
	// from.
	Revision string `json:"revision,omitempty"`
}

// StackPlan is the last plan of an instance that planned (a plan that
// waited for an upstream or failed is not recorded: the instance's
// pending inputs and the engine's status say why).
type StackPlan struct {
	Status  string `json:"status" jsonschema:"enum=Planned,enum=NoChanges,enum=Waiting,enum=Failed"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	// PlanID names the saved plan, what an apply is approved for; absent
	// when none is saved (no changes).
	PlanID string `json:"planId,omitempty"`
	// Hash is what the plan was made from: the stack's files, its
	// resolved inputs and the upstream outputs they read.
	Hash    string       `json:"hash,omitempty"`
	Summary StackSummary `json:"summary"`
	// RecordedAt is when the plan was recorded.
	RecordedAt time.Time `json:"recordedAt,omitzero"`
	// Outdated: the revision in force, or an upstream's outputs, give the
	// instance other files or inputs than the plan was made from; it is
	// not what an apply would be approved for now.
	Outdated bool `json:"outdated,omitempty"`
}

// StackSummary counts a plan's resource changes by action.
type StackSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Replace int `json:"replace"`
	Destroy int `json:"destroy"`
}

// StackApply is the last apply of an instance.
type StackApply struct {
	PlanID  string `json:"planId"`
	Hash    string `json:"hash,omitempty"`
	Status  string `json:"status" jsonschema:"enum=Applying,enum=Applied,enum=Failed,enum=Interrupted,enum=Refused"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	// Holder is the socle process that ran it.
	Holder   StackLock `json:"holder"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// StackLock is a socle process holding an instance's run lock.
type StackLock struct {
	PID  int    `json:"pid"`
	Host string `json:"host"`
	// Addr is the holder's API address, when it said it.
	Addr  string    `json:"addr,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// StackDetail is the answer of GET /api/v1/stacks/{stack}/{instance}: the
// instance with the whole of its last plan and the outputs of its last
// apply.
type StackDetail struct {
	StackInstance
	// Revision and NotRun are the list's.
	Revision string `json:"revision"`
	NotRun   string `json:"notRun,omitempty"`
	// Inputs are the variables the last plan passed, secret ones
	// redacted.
	Inputs map[string]string `json:"inputs,omitempty"`
	// Changes are the resources the last plan changes, sensitive values
	// redacted; MoreChanges counts those left out over socle's cap.
	Changes     []StackChange `json:"changes,omitempty"`
	MoreChanges int           `json:"moreChanges,omitempty"`
	// OutputChanges are the root outputs the last plan changes.
	OutputChanges []StackOutputChange `json:"outputChanges,omitempty"`
	// Outputs are the outputs of the last apply, sensitive ones (and any
	// holding a secret input) redacted.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Drift is the last drift check, absent when there was none.
	Drift *StackDrift `json:"drift,omitempty"`
	// History are the applies socle keeps of the instance (its last ten
	// by default), newest first.
	History []StackApply `json:"history,omitempty"`
}

// StackDrift is the last drift check of an instance: a refresh-only plan
// that looks for changes made outside socle.
type StackDrift struct {
	Checked time.Time `json:"checked"`
	Status  string    `json:"status" jsonschema:"enum=InSync,enum=Drifted,enum=NotApplied,enum=Waiting,enum=Failed"`
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
	// Summary is one line for people: "Drifted: 2 resources changed
	// outside socle: a.x, b.y (deleted)".
	Summary string `json:"summary"`
	// Drifted are the resources changed outside socle: update (the
	// attributes found differ from the state's, Before the state's) or
	// delete (gone), sensitive values redacted; MoreDrifted counts those
	// left out over socle's cap.
	Drifted     []StackChange `json:"drifted,omitempty"`
	MoreDrifted int           `json:"moreDrifted,omitempty"`
}

// StackPending is an input known only after an upstream applies.
type StackPending struct {
	Input    string `json:"input"`
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	Output   string `json:"output"`
}

// StackChange is one resource a plan changes.
type StackChange struct {
	Address string `json:"address"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Action  string `json:"action" jsonschema:"enum=create,enum=update,enum=replace,enum=delete,enum=read,enum=forget"`
	// CreateFirst: a replacement creates the new object before it
	// destroys the old one (create_before_destroy).
	CreateFirst bool `json:"createFirst,omitempty"`
	// Reason is terraform's, such as replace_because_cannot_update.
	Reason string `json:"reason,omitempty"`
	// Attributes that change, as JSON text, sensitive values redacted;
	// MoreAttributes counts those left out over socle's cap.
	Attributes     []StackAttributeChange `json:"attributes,omitempty"`
	MoreAttributes int                    `json:"moreAttributes,omitempty"`
}

// StackAttributeChange is one attribute's value before and after.
type StackAttributeChange struct {
	Path              string `json:"path"`
	Before            string `json:"before,omitempty"`
	After             string `json:"after,omitempty"`
	ForcesReplacement bool   `json:"forcesReplacement,omitempty"`
}

// StackOutputChange is one root output a plan changes.
type StackOutputChange struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// StackUnlockRequest is the body of POST …/unlock.
type StackUnlockRequest struct {
	// Force takes the lock from a live holder, whose terraform stops.
	Force bool `json:"force,omitempty"`
}

// StackUnlock is the answer of POST …/unlock.
type StackUnlock struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	// Held: someone held the lock, and it was removed.
	Held bool `json:"held"`
	// Holder is who held it.
	Holder *StackLock `json:"holder,omitempty"`
}

// StackGate is where a gated instance's plan stands against its gates.
type StackGate struct {
	// PlanID is the plan the approvals are of: a plan made again needs
	// approvals of its own.
	PlanID string `json:"planId"`
	// Author wrote the revision the plan came from: their approval does
	// not count.
	Author string `json:"author,omitempty"`
	// Need is how many approvals the plan needs; Approvals are the users
	// whose approval counts.
	Need      int      `json:"need"`
	Approvals []string `json:"approvals"`
	// Blocks are the closed gates (approvals, window, freeze); none when
	// the plan may be applied.
	Blocks []GateBlock `json:"blocks,omitempty"`
	// Message says what the plan waits for, in words.
	Message string `json:"message"`
}

// StackApprovalRequest is the body of POST …/approvals.
type StackApprovalRequest struct {
	// Plan is the plan approved: the instance's current plan (its
	// planId), else the answer is 409 naming the current one.
	Plan string `json:"plan" jsonschema:"required,minLength=1,maxLength=200"`
	// Comment is kept with the approval and in the audit record.
	Comment string `json:"comment,omitempty" jsonschema:"maxLength=500"`
}

// StackApproval is one user's approval of a stack instance's plan.
type StackApproval struct {
	ID       int64  `json:"id"`
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	Plan     string `json:"plan"`
	// Revision was in force when the plan was approved.
	Revision string    `json:"revision,omitempty"`
	User     string    `json:"user"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// StackApprovalList is the answer of GET …/approvals: the approvals of
// one plan.
type StackApprovalList struct {
	Plan  string          `json:"plan"`
	Items []StackApproval `json:"items"`
}

// StackLogList is the answer of GET /api/v1/stacks/{stack}/{instance}/logs:
// the run logs socle keeps of the instance, newest first.
type StackLogList struct {
	Stack    string        `json:"stack"`
	Instance string        `json:"instance"`
	Items    []StackRunLog `json:"items"`
}

// StackRunLog is the log of one run of a stack instance: what terraform
// printed during a plan, an apply or a drift check, secrets redacted.
type StackRunLog struct {
	// Name names the log among the instance's (GET …/logs/{log}).
	Name    string    `json:"name"`
	Kind    string    `json:"kind" jsonschema:"enum=plan,enum=apply,enum=drift"`
	Started time.Time `json:"started"`
	Size    int64     `json:"size"`
	// Running: the run goes on, and its log grows.
	Running bool `json:"running,omitempty"`
}
