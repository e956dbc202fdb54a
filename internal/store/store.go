package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/socle-dev/socle/internal/audit"
)

// ErrNotFound is returned, wrapped, when the thing asked for does not exist.
// Test for it with errors.Is.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned, wrapped, when a write contradicts what is
// recorded: finishing a release that already ended otherwise.
var ErrConflict = errors.New("conflict")

// Limits of the list methods: a limit of 0 means DefaultLimit, a larger limit
// than MaxLimit means MaxLimit, and a negative limit is an error.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// A Revision is a commit of the platform repository as socle saw it.
type Revision struct {
	SHA     string    // the commit hash; required
	Author  string    // the commit author's name
	Email   string    // the commit author's e-mail address
	Time    time.Time // the commit time
	Message string    // the commit message
	// Valid reports whether the revision passed validation.
	Valid bool
	// Problems holds the validation diagnostics, a JSON array, when Valid is
	// false; it must be nil when Valid is true.
	Problems json.RawMessage
	// SeenAt is when socle first saw the revision. The store sets it to the
	// current time if it is zero, and a later PutRevision never changes it.
	SeenAt time.Time
}

// A Unit is one (application, environment) pair: the grain at which desired
// state is recorded and reconciled.
type Unit struct {
	App string
	Env string
}

// Desired is the desired state of one unit.
type Desired struct {
	App string // required
	Env string // required
	// Revision is the revision the unit's desired state came from. In
	// ApplyDesired it may be left empty and is then the applied revision.
	Revision string
	// Hash is a content hash of Spec, so that callers detect change without
	// comparing documents.
	Hash string
	// Spec is the unit's desired state, a JSON document; required.
	Spec json.RawMessage
	// UpdatedAt is when the unit was last written by ApplyDesired; set by
	// the store.
	UpdatedAt time.Time
}

// Unit returns the unit d describes.
func (d Desired) Unit() Unit { return Unit{App: d.App, Env: d.Env} }

// A Plan is the recorded outcome of comparing desired and observed state for
// one revision.
type Plan struct {
	ID        int64     // set by the store
	Revision  string    // in ApplyDesired, empty means the applied revision
	CreatedAt time.Time // set by the store if zero
	// Summary counts of the plan's actions.
	Create, Update, Delete, Unchanged int
	// Body is the full plan document (JSON); optional. Plans leaves it out.
	Body json.RawMessage
}

// An Event is an entry of the append-only event log.
type Event struct {
	ID   int64     // set by the store
	Time time.Time // set by the store if zero
	// Kind says what happened, as "subject.verb": "revision.valid",
	// "revision.invalid", "plan.recorded", …; required.
	Kind string
	// App, Env and Revision say what the event is about; all optional.
	App, Env, Revision string
	Message            string          // for people
	Data               json.RawMessage // for programs: a JSON document; optional
}

// EventFilter selects events. Zero fields select everything.
type EventFilter struct {
	AfterID int64  // only events with a larger ID
	Kind    string // only events of exactly this kind
	App     string // only events about this app
	Env     string // only events about this environment
	Limit   int    // at most this many: 0 means DefaultLimit, at most MaxLimit
}

// Matches reports whether e passes f's Kind, App and Env (not AfterID nor
// Limit): what a reader of every event keeps for a stream with filter f.
func (f EventFilter) Matches(e Event) bool {
	return (f.Kind == "" || e.Kind == f.Kind) && (f.App == "" || e.App == f.App) && (f.Env == "" || e.Env == f.Env)
}

// A ReleaseStatus is where a release stands. Progressing is the only status
// a release leaves; the others are final.
type ReleaseStatus string

// The statuses of a release.
const (
	// Progressing: the rollout is under way.
	Progressing ReleaseStatus = "Progressing"
	// Succeeded: the release is live.
	Succeeded ReleaseStatus = "Succeeded"
	// Failed: the rollout failed; what ran before may still run.
	Failed ReleaseStatus = "Failed"
	// RolledBack: the rollout was aborted and traffic restored to the
	// release before, as a canary whose analysis failed.
	RolledBack ReleaseStatus = "RolledBack"
	// Superseded: another release of the unit began before this one ended.
	Superseded ReleaseStatus = "Superseded"
	// Interrupted: socle stopped the rollout without an outcome, as when it
	// finds after a restart a release that it no longer wants to resume.
	Interrupted ReleaseStatus = "Interrupted"
)

// Final reports whether s is a status a release ends with.
func (s ReleaseStatus) Final() bool {
	switch s {
	case Succeeded, Failed, RolledBack, Superseded, Interrupted:
		return true
	}
	return false
}

// A Trigger is what started a release.
type Trigger string

// The triggers of a release.
const (
	TriggerSync     Trigger = "sync"     // the reconciler followed a new revision
	TriggerPromote  Trigger = "promote"  // a promotion pinned the artifact of the previous environment
	TriggerRollback Trigger = "rollback" // a rollback pinned an earlier release
	TriggerDeploy   Trigger = "deploy"   // someone deployed by hand, through the API or the CLI
)

// A Release is one rollout of a unit: what it deployed, why, and how it
// ended. A release is identified by its target, (Revision, Artifact,
// ConfigHash).
type Release struct {
	ID  int64  // set by the store
	App string // required
	Env string // required
	// Revision is the platform revision the unit's desired state came
	// from; required.
	Revision string
	// CommittedAt is the commit time of Revision, from which lead time is
	// counted. If it is zero, BeginRelease takes it from the recorded
	// revision, if there is one.
	CommittedAt time.Time
	Artifact    string // the image digest
	ConfigHash  string // a hash of the unit's configuration
	Strategy    string // the rollout strategy: "rolling", "blueGreen", "canary", …
	Trigger     Trigger
	Author      string // who made the change: the commit author, or the user who promoted, deployed or rolled back
	// Status is set by the store: Progressing from BeginRelease, then the
	// status of FinishRelease.
	Status ReleaseStatus
	// Reason says why the release ended as it did; set by FinishRelease.
	Reason string
	// Previous is the ID of the release this one replaces, 0 if none. If it
	// is 0, BeginRelease sets it to the unit's current release, if any.
	Previous int64
	// StartedAt is set by the store if zero; FinishedAt by FinishRelease.
	StartedAt, FinishedAt time.Time
	// Notes are the release notes, a JSON document: the commits between the
	// previous release's revision and this one's; optional.
	Notes json.RawMessage
	// Emergency is the reason of the emergency change the release is (it
	// passed the soak, the windows and the freezes), "" if it is none.
	Emergency string
}

// Unit returns the unit r is a release of.
func (r Release) Unit() Unit { return Unit{App: r.App, Env: r.Env} }

// ReleaseFilter selects releases. Zero fields select everything.
type ReleaseFilter struct {
	App    string        // only releases of this app
	Env    string        // only releases to this environment
	Status ReleaseStatus // only releases with this status
	Before int64         // only releases with a smaller ID: the last ID of a page asks for the next
	Limit  int           // at most this many: 0 means DefaultLimit, at most MaxLimit
}

// A Target is what an operation on a unit brings, identified as a release
// is: two operations with the same target deploy the same thing.
type Target struct {
	Revision   string // the platform revision the desired state came from
	Artifact   string // the artifact digest, "" for a kind that has none
	ConfigHash string // a hash of the rest of the unit's configuration
}

// IsZero reports whether t names nothing.
func (t Target) IsZero() bool { return t == Target{} }

// An Operation is a long operation on a unit in progress (a rollout), kept
// as a persisted state machine: the engine writes it before it takes the
// step it describes, so that a socle restarted, or another replica, resumes
// the operation at that step instead of starting it over.
type Operation struct {
	// Release is the release the operation records, 0 if none.
	Release int64
	// Target is what the operation brings.
	Target Target
	// Phase is where the current step is, in the kind's words ("Waiting",
	// "Pausing"); required.
	Phase string
	// Step is the current step, from 0.
	Step int
	// StepStartedAt is when Phase began: a pause is counted from it, and
	// goes on counting across a restart.
	StepStartedAt time.Time
	// StepData is what the step keeps, a JSON document (a canary step's
	// analysis baseline: the proxy's counters when its pause began);
	// optional.
	StepData json.RawMessage
}

// A Failure is the last operation of a unit that failed (a rollout rolled
// back): its target is not tried again until the desired state changes,
// across restarts.
type Failure struct {
	Release int64 // the release that failed, 0 if none was recorded
	Target  Target
}

// A UnitState is what the engine keeps of one unit besides its desired
// state: the operation in progress, the failure not to retry, and the
// status it last reported, so that a restart (or another replica) shows it
// and goes on from it. A unit is (Kind, Name, Env); Env is an environment,
// or a zone for units that belong to a zone.
type UnitState struct {
	Kind, Name, Env string // required
	// Operation is the operation in progress, nil when none.
	Operation *Operation
	// Failed is the target that failed last, nil when none.
	Failed *Failure
	// Status is the unit's status as last reported, a JSON document; nil
	// when none was.
	Status json.RawMessage
	// UpdatedAt is when the record was last written; set by the store.
	UpdatedAt time.Time
}

// A Pause is an app in an environment, or a whole environment, in
// maintenance mode: socle's proxy answers its routes with a 503 page.
type Pause struct {
	App        string // "" for the whole environment
	Env        string // required
	Message    string
	RetryAfter time.Duration // the Retry-After header; 0 for none
	By         string        // who paused it; required
	At         time.Time     // set by the store if zero
}

// An Approval is one user's approval of an artifact for an environment, for
// the approval gate of a promotion.
type Approval struct {
	ID       int64  // set by the store
	App      string // required
	Env      string // required
	Revision string
	Artifact string // the approved image digest; required
	User     string // required
	Comment  string
	At       time.Time // set by the store if zero
}

// An AuditRecord is an entry of the audit trail. The store sets its Seq,
// PrevHash and Hash as package audit defines them.
type AuditRecord = audit.Record

// A Token is an API token as stored: a hash of its secret, never the
// secret itself.
type Token struct {
	ID          string // public part of the token, unique
	User        string // whose token it is; required
	Hash        string // hash of the secret; required
	Description string
	CreatedBy   string
	CreatedAt   time.Time // set by the store if zero
	ExpiresAt   time.Time // zero: never
	LastUsedAt  time.Time // set by TouchToken
	RevokedAt   time.Time // set by RevokeToken
}

// DORAFilter selects the releases DORA figures are computed from.
type DORAFilter struct {
	// Apps are the applications counted, as the apps of a team; empty
	// means every application.
	Apps []string
	// Env is the environment counted, usually production; empty means
	// every environment, each unit on its own.
	Env string
	// Since and Until bound the period: releases that ended in [Since,
	// Until). A zero Until means now, a zero Since 30 days before Until.
	Since, Until time.Time
}

// DORAFigures are the four DORA measures of software delivery over a period.
// Each unit (app, environment) is a deployment target of its own.
//
//   - A deployment is a release that Succeeded, other than a rollback;
//     DeploymentsPerDay is Deployments over the days of the period.
//   - Lead time for changes runs from the commit time of a deployment's
//     revision to the deployment's end, when it went live.
//   - A change is a release, other than a rollback, that ended Succeeded,
//     Failed or RolledBack (Superseded and Interrupted releases neither
//     succeeded nor failed). A failure is a change that Failed, was
//     RolledBack, or that a later rollback release replaced (its Previous).
//     ChangeFailureRate is Failures over Changes.
//   - Time to restore runs from the end of a failure to the end of the next
//     release of the same unit that Succeeded (a rollback, or a fix);
//     failures with no such release yet are counted in Unrestored.
//   - Emergencies are the releases, rollbacks included, that ended
//     Succeeded, Failed or RolledBack in the period and were emergency
//     changes; they count as deployments, changes and failures as any
//     other release does, and are shown apart for review.
type DORAFigures struct {
	Since, Until      time.Time
	Deployments       int
	DeploymentsPerDay float64
	LeadTime          Durations
	Changes           int
	Failures          int
	ChangeFailureRate float64 // 0 when there was no change
	TimeToRestore     Durations
	Unrestored        int
	Emergencies       int
}

// Durations summarizes a set of durations. All zero if N is 0.
type Durations struct {
	N                 int
	Median, Mean, Max time.Duration
}

// Store is the persistent record of socle. Implementations are safe for
// concurrent use by several goroutines; writers wait for one another rather
// than fail.
//
// All times come back in UTC, truncated to the microsecond. JSON documents
// come back semantically equal to what was stored, not necessarily byte for
// byte (key order and white space may change). A JSON document that does not
// parse is an error. Lookups of what does not exist return an error wrapping
// ErrNotFound.
type Store interface {
	// PutRevision records r. It is idempotent by SHA: putting a SHA again
	// updates Valid and Problems and leaves everything else, SeenAt
	// included, as first recorded.
	PutRevision(ctx context.Context, r Revision) error
	// Revision returns the revision with the given SHA.
	Revision(ctx context.Context, sha string) (Revision, error)
	// Revisions returns up to limit revisions, the most recently seen first
	// (revisions seen at the same instant: the last recorded first). If
	// before is a SHA, the list starts after that revision, so the SHA of
	// the last revision of one page asks for the next page.
	Revisions(ctx context.Context, limit int, before string) ([]Revision, error)
	// LastGoodRevision returns the most recently seen valid revision.
	LastGoodRevision(ctx context.Context) (Revision, error)

	// ApplyDesired records the outcome of one revision in one transaction:
	// it writes the units of set (replacing their previous desired state,
	// with UpdatedAt now), deletes the units of remove (those not recorded
	// are ignored), records plan and appends events (an event without a
	// Revision gets revision). Either all of it is recorded or, on error,
	// none of it. The revision must have been recorded with PutRevision
	// (else the error wraps ErrNotFound); the Revision of plan and of the
	// units of set must be empty or revision; a unit may appear only once in
	// set and remove together. It returns the ID of the recorded plan.
	ApplyDesired(ctx context.Context, revision string, set []Desired, remove []Unit, plan Plan, events []Event) (planID int64, err error)
	// Desired returns the desired state of every unit, ordered by app then
	// environment, comparing bytes ("Web" before "api").
	Desired(ctx context.Context) ([]Desired, error)
	// DesiredUnit returns the desired state of one unit.
	DesiredUnit(ctx context.Context, u Unit) (Desired, error)

	// Plan returns the plan with the given ID, body included.
	Plan(ctx context.Context, id int64) (Plan, error)
	// Plans returns up to limit plans of the given revision ("" means of
	// any revision), newest first, without their bodies: a plan body can be
	// large, fetch it with Plan.
	Plans(ctx context.Context, revision string, limit int) ([]Plan, error)

	// AppendEvent appends e to the event log and returns its ID. IDs
	// increase in the order events become visible: a reader that has seen
	// ID n never later finds a new event with an ID of n or less, so
	// EventFilter.AfterID is a safe cursor for following the log.
	AppendEvent(ctx context.Context, e Event) (int64, error)
	// Events returns the events f selects in ascending ID order.
	Events(ctx context.Context, f EventFilter) ([]Event, error)
	// LastEventID returns the ID of the newest event, 0 if there is none:
	// where a reader that wants only new events starts.
	LastEventID(ctx context.Context) (int64, error)

	// BeginRelease records the start of a rollout of r's unit and returns
	// the release as recorded, Progressing. A unit has at most one
	// Progressing release:
	//   - if it has one with the same target (Revision, Artifact,
	//     ConfigHash), BeginRelease returns that one and records nothing, so
	//     that a socle restarted in the middle of a rollout resumes the same
	//     release rather than recording it twice;
	//   - if it has one with another target, that one becomes Superseded, in
	//     the same transaction.
	// If rec is not nil, it is appended to the audit trail in the same
	// transaction as the new release (and only if a release is recorded),
	// with the App, Env and Revision of the release where it has none, and
	// with the release's ID as "release" (and the ID of the release it
	// superseded, if any, as "superseded") in its Detail, which must then be
	// absent or a JSON object. r must have App, Env, Revision and a known
	// Trigger, no ID, a Status that is empty or Progressing, no FinishedAt,
	// and a Previous that is 0 or a release of the same unit.
	BeginRelease(ctx context.Context, r Release, rec *AuditRecord) (Release, error)
	// FinishRelease ends the Progressing release id with a final status and
	// the reason, FinishedAt now. Finishing it again with the same status
	// does nothing; with another status, or finishing a release that ended
	// otherwise, is an error wrapping ErrConflict. rec, if not nil, is
	// appended to the audit trail in the same transaction, only if the
	// release is finished, completed as by BeginRelease.
	FinishRelease(ctx context.Context, id int64, status ReleaseStatus, reason string, rec *AuditRecord) error
	// Release returns the release with the given ID.
	Release(ctx context.Context, id int64) (Release, error)
	// Releases returns the releases f selects, newest (largest ID) first.
	Releases(ctx context.Context, f ReleaseFilter) ([]Release, error)
	// CurrentRelease returns the newest release of the unit that
	// Succeeded: what runs.
	CurrentRelease(ctx context.Context, app, env string) (Release, error)
	// ProgressingReleases returns every Progressing release, oldest first:
	// after a restart, the rollouts to resume or to end.
	ProgressingReleases(ctx context.Context) ([]Release, error)

	// PutUnitState records the Operation and Failed of s's unit, whatever
	// they were (nil clears them), creating the unit's record if needed
	// and leaving its Status as it is. s must have a Kind, a Name and an
	// Env; an Operation must have a Phase and a Step of 0 or more.
	PutUnitState(ctx context.Context, s UnitState) error
	// PutUnitStatuses records the Status of each unit of states, in one
	// transaction, creating the records needed and leaving their Operation
	// and Failed as they are; only Kind, Name, Env and Status are read. A
	// unit may appear only once.
	PutUnitStatuses(ctx context.Context, states []UnitState) error
	// UnitState returns the record of one unit.
	UnitState(ctx context.Context, kind, name, env string) (UnitState, error)
	// UnitStates returns every unit's record, ordered by kind, environment
	// and name.
	UnitStates(ctx context.Context) ([]UnitState, error)
	// DeleteUnitState removes the record of a unit; a unit without one is
	// no error.
	DeleteUnitState(ctx context.Context, kind, name, env string) error

	// AddApproval records a's approval and returns it as recorded. There is
	// one approval per (app, env, artifact, user): a second approval by the
	// same user returns the first one and records nothing. rec, if not nil,
	// is appended to the audit trail in the same transaction, only if the
	// approval is recorded, with the App, Env and Revision of the approval
	// where it has none. a must have App, Env, Artifact and User, and no ID.
	AddApproval(ctx context.Context, a Approval, rec *AuditRecord) (Approval, error)
	// Approvals returns the approvals of the artifact for the unit, in the
	// order they were given.
	Approvals(ctx context.Context, app, env, artifact string) ([]Approval, error)

	// AppendAudit appends rec to the audit trail and returns it as
	// recorded: with At set to now if it was zero, Detail in canonical
	// form, and Seq, PrevHash and Hash set under the write lock, so that
	// records appended concurrently, by this process or another, form one
	// chain. rec must have an Actor and an Action, and no Seq, PrevHash or
	// Hash.
	AppendAudit(ctx context.Context, rec AuditRecord) (AuditRecord, error)
	// AuditRecords returns up to limit audit records with a Seq larger than
	// afterSeq, in Seq order.
	AuditRecords(ctx context.Context, afterSeq int64, limit int) ([]AuditRecord, error)

	// CreateToken records a new API token; t must have an ID unique among
	// tokens, a User and a Hash, and no LastUsedAt or RevokedAt; CreatedAt
	// is set to now if zero. rec, if not nil, is appended to the audit
	// trail in the same transaction. A second token with the same ID is an
	// error wrapping ErrConflict.
	CreateToken(ctx context.Context, t Token, rec *AuditRecord) (Token, error)
	// Token returns the token with the given ID, revoked or not.
	Token(ctx context.Context, id string) (Token, error)
	// Tokens returns the tokens of user ("": of every user), oldest first.
	Tokens(ctx context.Context, user string) ([]Token, error)
	// RevokeToken marks the token revoked now; revoking it again does
	// nothing and appends no record. rec as for CreateToken.
	RevokeToken(ctx context.Context, id string, rec *AuditRecord) (Token, error)
	// TouchToken sets the token's LastUsedAt to at if that is later.
	TouchToken(ctx context.Context, id string, at time.Time) error

	// SetPause records p, replacing the pause of the same app and
	// environment, and returns it as recorded. rec, if not nil, is
	// appended to the audit trail in the same transaction, with p's App
	// and Env where it has none. p must have an Env and a By.
	SetPause(ctx context.Context, p Pause, rec *AuditRecord) (Pause, error)
	// DeletePause removes the pause of app ("": the whole environment) in
	// env; an error wrapping ErrNotFound if there is none, and then rec
	// is not appended.
	DeletePause(ctx context.Context, app, env string, rec *AuditRecord) error
	// Pauses returns every pause, ordered by environment and app.
	Pauses(ctx context.Context) ([]Pause, error)

	// DORA computes the DORA figures of the releases f selects.
	DORA(ctx context.Context, f DORAFilter) (DORAFigures, error)

	// Close releases the store's resources. The store must not be used
	// afterwards.
	Close() error
}

// AuditReader reads the audit trail a page at a time (a Store does).
type AuditReader interface {
	AuditRecords(ctx context.Context, afterSeq int64, limit int) ([]AuditRecord, error)
}

// AuditTrail returns the audit records of s after afterSeq, in Seq order,
// read a page at a time: what audit.Verify reads. It stops at the first
// error, which it yields, and at a page that does not go on after the last.
func AuditTrail(ctx context.Context, s AuditReader, afterSeq int64) iter.Seq2[AuditRecord, error] {
	return func(yield func(AuditRecord, error) bool) {
		for {
			page, err := s.AuditRecords(ctx, afterSeq, MaxLimit)
			if err != nil {
				yield(AuditRecord{}, err)
				return
			}
			if len(page) == 0 {
				return
			}
			for _, r := range page {
				if r.Seq <= afterSeq {
					// Not the page asked for: stop rather than read it again.
					yield(AuditRecord{}, fmt.Errorf("audit record %d listed after record %d", r.Seq, afterSeq))
					return
				}
				if !yield(r, nil) {
					return
				}
				afterSeq = r.Seq
			}
		}
	}
}
