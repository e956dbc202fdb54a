// Package plan computes, as pure functions, the desired state of every
// (app, environment) unit from a loaded repository, and the plan that takes
// the last-applied state to it: create, update (which fields, old → new),
// delete, or nothing. It changes nothing; the reconciler applies plans.
package plan
