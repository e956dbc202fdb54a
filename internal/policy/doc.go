// Package policy judges planned changes with guardrails: the CEL policies of
// a repository's policies/*.yaml and socle's built-in ones. Compile turns a
// repository's policies into a Set, reporting every expression that does
// not compile at its file:line; Evaluate gives one Verdict per policy that
// selects a change, and is pure: everything it needs (the release history
// included) comes in its Input, so that plans, deploys and promotions are
// judged the same way, and a test can judge any change.
//
// A policy's expression is true when the change is allowed. It sees:
//
//	change       the change: app, env, action (create, update, no-op),
//	             operation (plan, deploy, promote, rollback), artifact (the
//	             image digest it runs, "" when built from source), changed
//	             (paths of the fields an update changes), old and new (the
//	             unit before and after: team, zone, revision, source,
//	             artifact, rollback, emergency (the reason of an emergency
//	             change, "" for none), runtime, replicas{min,max}, rollout{strategy,
//	             maxSurge, maxUnavailable, steps[{weight, pause}],
//	             analysis{maxErrorRate, maxP95, minRequests}}, containers
//	             (Score containers: image, variables, resources{limits,
//	             requests{cpu, memory}}, readinessProbe, livenessProbe, …),
//	             service{ports}, resources (type, class, id, params,
//	             metadata)); old is absent (has(change.old) is false) on a create
//	environment  the change's environment: name, zone, zoneKind (platform,
//	             application, sandbox), position (index in socle.yaml), from
//	             (the environment it is promoted from), production, sync
//	platform     name, zones (name → kind), environments (name →
//	             environment), teams (name → {members: user → role})
//	now          the time of the decision (timestamp)
//	author       who asked for the change; approvers, who approved it
//	history      history.ranHealthy(artifact, env) → bool and
//	             history.healthyFor(artifact, env) → duration: whether and
//	             how long the app's artifact has run healthy in env
//
// Fields are typed: a misspelt field is a compile error, and has() is safe at
// any depth (an absent part reads as empty). Each evaluation is bounded by
// CostLimit; an expression that fails or goes over it denies.
//
// A policy whose target is stacks judges each resource change of a stack
// plan instead (EvaluateStack), in a CEL environment of its own: change is
// the resource change (address, type, name, action, before and after with
// sensitive values masked), stack the instance (name, instance, of, zone,
// zoneKind, production); environment, platform, now, author and approvers
// are as above. README.md lists its variables and built-ins.
//
// A production environment is one that ends a promotion line: it has
// promotion.from and no environment is promoted from it. README.md lists
// the built-ins and the test-case format of socle policy test.
package policy
