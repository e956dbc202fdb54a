// Package stack runs the infrastructure stacks of a platform repository
// (stacks/<stack>/, read by package spec) with terraform or OpenTofu: for
// each instance (a stack in one zone or environment) it resolves the
// inputs, upstream outputs included, into a content hash that says
// whether the instance must be planned again; plans it in a working
// directory of its own under the data directory, never in the repository,
// through terraform-exec; and turns the JSON plan (terraform-json) into a
// resource-level change list with sensitive values redacted; applies the
// saved plan a caller approved, as planned, refusing a stale one; keeps
// each state, saved plan and the outputs sealed at rest, with backups and
// a record of each apply; says who runs an instance; and checks an
// applied instance for drift, changes made outside socle, with a
// refresh-only plan that writes neither the state nor the saved plan,
// recording the last check beside the instance. Kind is the engine's kind
// of stack units (package reconcile): it plans, applies and checks each
// instance of the revision in force, as the wiring asks (socle up),
// holding a gated instance's plan until its gates open for that plan
// (CheckGate, with package gate).
package stack
