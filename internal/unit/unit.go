// Package unit names what socle converges. A unit is (kind, name,
// environment or zone): an app in an environment, a stack in an
// environment or a landing zone, a provisioned resource. The engine
// (package reconcile) keeps each unit equal to its desired state through
// the kind it belongs to; this package holds only the names both sides and
// the wiring share, so that a kind's package and the wiring need not import
// the engine to speak of units.
package unit

import (
	"encoding/json"
	"strings"
)

// Key names a unit. Env is the environment the unit runs in; a unit that
// belongs to a landing zone rather than to one environment (a zone's
// network stack) has the zone's name there instead, which a platform keeps
// apart from its environments' names.
type Key struct {
	Kind string // the kind's ID: "app", "stack", "resource"
	Name string // the unit's name within its kind: the app's, the stack's
	Env  string // the environment, or the zone
}

// String returns "kind name @ env", for messages and logs.
func (k Key) String() string { return k.Kind + " " + k.Name + " @ " + k.Env }

// Compare orders keys by environment, name and kind.
func (k Key) Compare(o Key) int {
	if c := strings.Compare(k.Env, o.Env); c != 0 {
		return c
	}
	if c := strings.Compare(k.Name, o.Name); c != 0 {
		return c
	}
	return strings.Compare(k.Kind, o.Kind)
}

// Desired is one unit's desired state, as the wiring hands it to the
// engine.
type Desired struct {
	Key
	// Spec is the desired state as the unit's kind decodes it: a JSON
	// document of the kind's own (for an app, a plan.Unit).
	Spec json.RawMessage
	// DependsOn lists the units that must be Synced before this one starts
	// a change (a stack an app reads outputs from); a unit removed from the
	// desired state is pruned only after the units that depend on it.
	DependsOn []Key
}
