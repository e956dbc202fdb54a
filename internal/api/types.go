package api

import (
	"encoding/json"
	"time"
)

// The wire types of /api/v1. Field names are lowerCamelCase; times are
// RFC 3339 in UTC; digests are "sha256:…"; revisions are full commit SHAs.

// Error is the body of every error answer.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong: Code is stable for programs
// (unauthorized, forbidden, not_found, bad_request, blocked, refused,
// conflict, too_many_requests, timeout, internal), Message is for people.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// Unauthorized is the details of a 401: where socle up keeps the first
// admin's token, when the caller can read it (a request from the same
// machine, while the file exists).
type Unauthorized struct {
	AdminTokenFile string `json:"adminTokenFile,omitempty"`
}

// Page is one page of a list. Next, when set, is the cursor of the next
// page: pass it back as ?cursor=.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// Me is the caller as socle sees them.
type Me struct {
	User  string       `json:"user"`
	Email string       `json:"email,omitempty"`
	Teams []Membership `json:"teams"`
	// Admin is true for a member with role admin in any team.
	Admin bool `json:"admin"`
}

// Membership is a user's role in one team.
type Membership struct {
	Team string `json:"team"`
	Role string `json:"role"`
}

// Platform is socle.yaml and teams.yaml as in force.
type Platform struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Revision is the platform revision in force.
	Revision     string        `json:"revision"`
	Environments []Environment `json:"environments"`
	Zones        []Zone        `json:"zones"`
	Teams        []Team        `json:"teams"`
}

// Environment is one environment, in promotion order.
type Environment struct {
	Name     string `json:"name"`
	Zone     string `json:"zone,omitempty"`
	ZoneKind string `json:"zoneKind,omitempty"`
	Runtime  string `json:"runtime"`
	// Sync is auto (follows Git) or manual (runs what promotions pin).
	Sync string `json:"sync"`
	// Production is true when the environment is in a production zone:
	// self-service stops there.
	Production bool `json:"production"`
	// DeployRoles are the roles that may deploy, promote and roll back here.
	DeployRoles []string   `json:"deployRoles"`
	Promotion   *Promotion `json:"promotion,omitempty"`
	Prune       bool       `json:"prune"`
	SelfHeal    bool       `json:"selfHeal"`
	// Frozen names the freeze in force now, if any.
	Frozen string `json:"frozen,omitempty"`
}

// Promotion is an environment's gates.
type Promotion struct {
	From      string   `json:"from"`
	Soak      string   `json:"soak,omitempty"`
	Approvals int      `json:"approvals,omitempty"`
	Windows   []string `json:"windows,omitempty"`
}

// Zone is a landing zone.
type Zone struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Provider    string `json:"provider,omitempty"`
	Account     string `json:"account,omitempty"`
	Description string `json:"description,omitempty"`
}

// Team is a team and its members.
type Team struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Members     []Member `json:"members"`
	Apps        []string `json:"apps"`
}

// Member is a user's role in a team.
type Member struct {
	User  string `json:"user"`
	Email string `json:"email,omitempty"`
	Role  string `json:"role"`
}

// App is an app and its state in every environment, in promotion order:
// one row of the environment matrix.
type App struct {
	Name        string   `json:"name"`
	Owner       string   `json:"owner"`
	Description string   `json:"description,omitempty"`
	Strategy    string   `json:"strategy,omitempty"`
	Envs        []AppEnv `json:"envs"`
}

// AppEnv is one cell of the matrix: an app in an environment.
type AppEnv struct {
	Env string `json:"env"`
	// Phase is Synced, Building, Progressing, Degraded, Failed, Blocked,
	// Orphaned, Pending, Unsupported, or Absent when the app does not run there
	// (disabled, or not promoted yet).
	Phase Phase `json:"phase"`
	// Reason says why, in words, when the phase is not Synced.
	Reason string `json:"reason,omitempty"`
	// ReasonCode says why for programs: Building, BuildFailed,
	// PolicyDenied, GateClosed, RolloutFailed…
	ReasonCode ReasonCode `json:"reasonCode,omitempty"`
	// Since is when the cell entered its phase with its reason: a build
	// has run since then.
	Since time.Time `json:"since,omitzero"`
	// LogTail is the end of the build log: its last line while Building,
	// its last lines when the build failed.
	LogTail string `json:"logTail,omitempty"`
	// RetryAt is when a failed build is tried again, if the app's files
	// do not change before.
	RetryAt  time.Time `json:"retryAt,omitzero"`
	Revision string    `json:"revision,omitempty"`
	Artifact string    `json:"artifact,omitempty"`
	Release  int64     `json:"release,omitempty"`
	Ready    int       `json:"ready"`
	Desired  int       `json:"desired"`
	URL      string    `json:"url,omitempty"`
	Updated  time.Time `json:"updatedAt,omitzero"`
	// Incoming is the release a promotion into this environment would
	// bring (what runs in the environment it promotes from), when it
	// differs from what runs here.
	Incoming *Incoming `json:"incoming,omitempty"`
	// Actions are what the caller may do here now: deploy, promote,
	// approve, rollback, logs. Gates may still block an allowed action;
	// preview says whether they do.
	Actions []string `json:"actions"`
}

// Incoming is a release waiting to be promoted into an environment.
type Incoming struct {
	From     string `json:"from"`
	Revision string `json:"revision"`
	Artifact string `json:"artifact"`
	// Approvals given so far, and how many are needed.
	Approvals []string `json:"approvals"`
	Needed    int      `json:"needed"`
	// Blocked is true when a promotion gate (soak, approvals, window,
	// freeze) holds it now, and Reason says which and until when.
	// Policies are judged by preview.
	Blocked bool   `json:"blocked"`
	Reason  string `json:"reason,omitempty"`
	// Blocks are the closed gates one by one, with when each opens where
	// that is known: the portal writes "opens in 58 min" from them.
	Blocks []GateBlock `json:"blocks,omitempty"`
}

// AppDetail is an app's page: its cells plus each environment's effective
// configuration, secrets redacted.
type AppDetail struct {
	App
	Repository string `json:"repository,omitempty"`
	// Config is the effective configuration per environment: the unit
	// socle runs, with secret values replaced by Redacted.
	Config map[string]Unit `json:"config"`
	// Secrets are the names of the variables treated as secret.
	Secrets []string `json:"secrets,omitempty"`
	// Pauses are the pauses that hold the app: its own, and its
	// environments'.
	Pauses []Pause `json:"pauses,omitempty"`
}

// Redacted replaces every secret value in API answers, logs and events.
const Redacted = "[redacted]"

// ActionRequest is the body of deploy, promote, approve and rollback. The
// user is the token's.
type ActionRequest struct {
	// To is the environment to promote to (promote).
	To string `json:"to,omitempty"`
	// Revision to deploy (deploy; default: the newest valid revision).
	Revision string `json:"revision,omitempty"`
	// Release to restore (rollback; 0: the one before what runs).
	Release int64 `json:"release,omitempty"`
	// Message is kept in the commit and the audit record.
	Message string `json:"message,omitempty"`
	// Emergency declares the deploy, promotion or rollback an emergency
	// change: it passes the soak, the windows and the freezes (not the
	// source, the approvals the environment's emergency rule asks for, nor
	// the policies), and is recorded as an exception. Only admins and the
	// roles of the environment's emergency.roles may.
	Emergency *Emergency `json:"emergency,omitempty"`
}

// Emergency is the declaration of an emergency change.
type Emergency struct {
	// Reason is required: one line, such as an incident number and what
	// is broken.
	Reason string `json:"reason"`
}

// Target is what an action pins in an environment.
type Target struct {
	App      string `json:"app"`
	Env      string `json:"env"`
	From     string `json:"from,omitempty"`
	Revision string `json:"revision"`
	Artifact string `json:"artifact,omitempty"`
	Release  int64  `json:"release,omitempty"`
	Rollback bool   `json:"rollback,omitempty"`
	// Emergency is the reason of an emergency change, "" for none.
	Emergency string `json:"emergency,omitempty"`
}

// Preview is what an action would do, asked before doing it: the target,
// the change to the unit, and the verdicts of gates and policies.
type Preview struct {
	Action   string         `json:"action"`
	Target   Target         `json:"target"`
	Change   *PlanChange    `json:"change,omitempty"`
	Gates    GateResult     `json:"gates"`
	Verdicts PolicyVerdicts `json:"verdicts,omitempty"`
	// Allowed is true when the caller's role allows the action; Blocked
	// when a gate or a policy would stop it now, with Reason.
	Allowed bool   `json:"allowed"`
	Blocked bool   `json:"blocked"`
	Reason  string `json:"reason,omitempty"`
}

// ActionResult is an action done: for deploy, promote and rollback, the
// commit that pins the target in releases/<env>.yaml (or, in an
// environment that follows Git, the sync that was started).
type ActionResult struct {
	Target
	Commit *Commit `json:"commit,omitempty"`
	// Outcome says what happens now: "pinned" (Commit pins the target;
	// socle deploys it), "syncing" (the unit rolls out Revision, the last
	// revision that changed it), "unchanged" (the unit already runs
	// Revision: nothing changes) or "held" (a gate or a policy holds the
	// unit's change; Reason says which).
	Outcome string `json:"outcome"`
	// Running is the revision the unit runs now, when it runs.
	Running string `json:"running,omitempty"`
	// Head is the newest valid revision of the repository, which a sync
	// looked at.
	Head string `json:"head,omitempty"`
	// Reason says why a change is held.
	Reason string `json:"reason,omitempty"`
	// Passed are the closed gates an emergency change passed.
	Passed []GateBlock `json:"passed,omitempty"`
}

// The outcomes of an action.
const (
	OutcomePinned    = "pinned"
	OutcomeSyncing   = "syncing"
	OutcomeUnchanged = "unchanged"
	OutcomeHeld      = "held"
)

// Commit names a commit of the platform repository.
type Commit struct {
	SHA     string    `json:"sha"`
	Author  string    `json:"author,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	Message string    `json:"message,omitempty"`
}

// Revision is a commit socle saw, with its verdict.
type Revision struct {
	SHA      string          `json:"sha"`
	Author   string          `json:"author"`
	Time     time.Time       `json:"time"`
	Message  string          `json:"message"`
	Valid    bool            `json:"valid"`
	Problems json.RawMessage `json:"problems,omitempty"`
	SeenAt   time.Time       `json:"seenAt"`
}

// RevisionDetail is a revision and the plans socle recorded for it.
type RevisionDetail struct {
	Revision
	Plans []PlanRef `json:"plans"`
}

// PlanRef names a recorded plan.
type PlanRef struct {
	ID       int64       `json:"id"`
	Revision string      `json:"revision"`
	Summary  PlanSummary `json:"summary"`
	Created  time.Time   `json:"createdAt,omitzero"`
}

// Release is one rollout of an app in an environment.
type Release struct {
	ID          int64           `json:"id"`
	App         string          `json:"app"`
	Env         string          `json:"env"`
	Revision    string          `json:"revision"`
	CommittedAt time.Time       `json:"committedAt,omitzero"`
	Artifact    string          `json:"artifact,omitempty"`
	ConfigHash  string          `json:"configHash,omitempty"`
	Strategy    string          `json:"strategy,omitempty"`
	Trigger     string          `json:"trigger"`
	Author      string          `json:"author,omitempty"`
	Status      string          `json:"status"`
	Reason      string          `json:"reason,omitempty"`
	Previous    int64           `json:"previous,omitempty"`
	StartedAt   time.Time       `json:"startedAt"`
	FinishedAt  time.Time       `json:"finishedAt,omitzero"`
	Notes       json.RawMessage `json:"notes,omitempty"`
	// Emergency is the reason of the emergency change the release is, ""
	// for none.
	Emergency string `json:"emergency,omitempty"`
}

// Event is an entry of the event log.
type Event struct {
	ID       int64           `json:"id"`
	Time     time.Time       `json:"time"`
	Kind     string          `json:"kind"`
	App      string          `json:"app,omitempty"`
	Env      string          `json:"env,omitempty"`
	Revision string          `json:"revision,omitempty"`
	Message  string          `json:"message,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// AuditRecord is one link of the tamper-evident audit chain.
type AuditRecord struct {
	Seq      int64           `json:"seq"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	App      string          `json:"app,omitempty"`
	Env      string          `json:"env,omitempty"`
	Revision string          `json:"revision,omitempty"`
	Detail   json.RawMessage `json:"detail,omitempty"`
	PrevHash string          `json:"prevHash"`
	Hash     string          `json:"hash"`
}

// Approval is one user's approval of an artifact for an environment.
type Approval struct {
	ID       int64     `json:"id"`
	App      string    `json:"app"`
	Env      string    `json:"env"`
	Revision string    `json:"revision"`
	Artifact string    `json:"artifact"`
	User     string    `json:"user"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// Token is an API token as listed: never its secret.
type Token struct {
	ID          string    `json:"id"`
	User        string    `json:"user"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy,omitempty"`
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`
	LastUsedAt  time.Time `json:"lastUsedAt,omitzero"`
	RevokedAt   time.Time `json:"revokedAt,omitzero"`
}

// NewToken is the body of POST /api/v1/tokens.
type NewToken struct {
	User        string `json:"user"`
	Description string `json:"description,omitempty"`
	// Expires is a duration such as 30d or 12h; empty: never.
	Expires string `json:"expires,omitempty"`
}

// CreatedToken is a token just created: the only time its secret is shown.
type CreatedToken struct {
	Token
	Secret string `json:"token"`
}

// ArtifactRequest is the body of POST /api/v1/apps/{app}/artifacts: a CI
// pipeline registers an image it pushed to socle's registry (/v2/) for a
// revision, or, without Digest, asks socle to build the revision.
type ArtifactRequest struct {
	Revision string `json:"revision"`
	Digest   string `json:"digest,omitempty"`
}

// Artifact is the image socle runs for an app at a revision.
type Artifact struct {
	App      string `json:"app"`
	Revision string `json:"revision"`
	Digest   string `json:"digest"`
	// Image is the full reference, by digest, in socle's registry.
	Image string `json:"image"`
	// Built is true when socle built it for this request.
	Built bool `json:"built"`
}

// Status is what /api/v1/status reports: which revision is in force, which
// one failed and why, and the last plan.
type Status struct {
	Repository string          `json:"repository"`
	Head       *SourceRevision `json:"head,omitempty"`
	LastGood   *SourceRevision `json:"lastGood,omitempty"`
	// Failing is set while the newest revision does not validate.
	Failing    *Failing  `json:"failing,omitempty"`
	FetchError string    `json:"fetchError,omitempty"`
	LastPlan   *PlanRef  `json:"lastPlan,omitempty"`
	Units      []UnitRef `json:"units"`
	// Runtime is what runs, unit by unit, as the reconciler sees it.
	Runtime []UnitStatus `json:"runtime"`
	// ProxyAddr is where the apps are reached: http://<app>.<env>.localhost:<port>.
	ProxyAddr string `json:"proxyAddr,omitempty"`
	// Blocked are the units whose change in the revision in force a
	// policy denied.
	Blocked []BlockedUnit `json:"blocked,omitempty"`
	// Sandbox is how this machine runs the apps' replicas (local runtime)
	// and builds.
	Sandbox *SandboxStatus `json:"sandbox,omitempty"`
	// Pauses are the apps and environments in maintenance mode.
	Pauses []Pause `json:"pauses,omitempty"`
}

// SandboxStatus says whether the apps socle runs on its own machine are
// isolated from socle and from each other.
type SandboxStatus struct {
	// Mode is enforced (each in a bubblewrap sandbox), insecure (switched
	// off with socle up --insecure-no-sandbox: they can read socle's data
	// directory and secrets) or refused (no sandbox can be made here, and
	// no app starts until there is one, or it is switched off).
	Mode string `json:"mode"`
	// Message says what the mode means here, and what to do.
	Message string `json:"message"`
	// Limits says whether the containers' resources.limits are enforced.
	Limits string `json:"limits"`
}

// BlockedUnit is a unit whose desired change waits, and why.
type BlockedUnit struct {
	App    string `json:"app"`
	Env    string `json:"env"`
	Reason string `json:"reason"`
	// ReasonCode is why, for programs: PolicyDenied or GateClosed.
	ReasonCode ReasonCode `json:"reasonCode,omitempty"`
}

// Failing is a revision that does not validate.
type Failing struct {
	Revision SourceRevision `json:"revision"`
	Problems Problems       `json:"problems"`
}

// UnitRef is one unit's recorded desired state.
type UnitRef struct {
	App       string    `json:"app"`
	Env       string    `json:"env"`
	Revision  string    `json:"revision"`
	Source    string    `json:"source"`
	Artifact  string    `json:"artifact,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// PauseRequest is the body of pauseApp and pauseEnv.
type PauseRequest struct {
	// Message is shown on the maintenance page (escaped; at most 4096
	// bytes); a default one when empty.
	Message string `json:"message,omitempty"`
	// RetryAfter is the Retry-After the page is answered with, as a Go
	// duration ("10m"), rounded up to the second; none when empty.
	RetryAfter string `json:"retryAfter,omitempty"`
}

// Pause is an app in an environment, or a whole environment, in
// maintenance mode.
type Pause struct {
	// App is empty for a pause of the whole environment.
	App     string `json:"app,omitempty"`
	Env     string `json:"env"`
	Message string `json:"message,omitempty"`
	// RetryAfterSeconds is the Retry-After header of the page; 0: none.
	RetryAfterSeconds int       `json:"retryAfterSeconds,omitempty"`
	By                string    `json:"by"`
	At                time.Time `json:"at"`
}

// PauseList is what listPauses answers.
type PauseList struct {
	Items []Pause `json:"items"`
}
