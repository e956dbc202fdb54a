// Package reconcile is socle's engine: it keeps every unit (an app in an
// environment, later a stack or a provisioned resource; see package unit)
// equal to its desired state, again and again (level-based). Units belong
// to kinds that register with the engine (Config.Kinds) and say what their
// units are made of: how they are observed, planned, changed, judged
// healthy and pruned (Kind). The engine schedules: one worker per unit,
// passes on triggers, requeues and resyncs, changes held until the units a
// unit depends on are Synced and prunes in the reverse order; it persists
// each unit's operation in progress, the failure not to retry and the
// status (store.UnitState), so that a restart resumes a rollout at its
// step; and it reports statuses with a machine-readable reason beside the
// words. It never asks which kind a unit is; only the wiring knows the
// concrete kinds (package apps for apps).
package reconcile
