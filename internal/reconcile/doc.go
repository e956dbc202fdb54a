// Package reconcile keeps what runs equal to the desired state, one
// (app, environment) unit at a time and again and again (level-based): it
// observes the unit's replicas and route, and when they differ from the
// desired release it rolls the new release out with the unit's strategy
// (rolling, blue/green, canary with analysis and automatic rollback),
// records every rollout as a release, heals, scales and prunes. It talks to
// runtimes, the proxy and the image store through small interfaces defined
// here; only the server wires concrete ones.
package reconcile
