package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned, wrapped, when the thing asked for does not exist.
// Test for it with errors.Is.
var ErrNotFound = errors.New("not found")

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

	// Close releases the store's resources. The store must not be used
	// afterwards.
	Close() error
}
