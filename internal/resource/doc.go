// Package resource is the engine's kind of resource units: one per
// resource a desired workload asks for under `resources:` (its Score id
// when workloads share it, else "<app>-<resource>") in an environment,
// provisioned by the driver its provisioner names before the apps that use
// it start, checked at every pass (a dead server is provisioned again with
// its data), deprovisioned when no workload uses it any more, except a
// data-bearing one in production, which is kept until an admin deletes it.
// A resource may wait for units of other kinds (Config.After: a stack
// provisioner's waits for the stack instance whose outputs it takes), and
// is provisioned again when its driver reports other outputs
// (provision.Changer: the stack applied again).
//
// It keeps each unit's outputs sealed in the data directory and gives them
// to the runtimes that resolve ${resources.…} placeholders (Kind.Outputs)
// and to the redactor (Kind.SecretValues). What a driver does is the
// driver's (package provision and its drivers); which provisioner serves a
// resource is spec's (Repo.ProvisionerFor).
package resource
