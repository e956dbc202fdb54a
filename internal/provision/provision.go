// Package provision provisions what Score workloads ask for under
// `resources:` (a PostgreSQL database, a redis, a volume, a route): the
// platform's provisioners (spec.Provisioner, from provisioners/*.yaml or
// socle's built-in defaults) say which driver serves a resource in an
// environment, and the driver makes it exist and returns its outputs, which
// the workloads' ${resources.<name>.<output>} placeholders read.
//
// The resource unit kind calls drivers; drivers know nothing of units, of
// the engine or of the apps that use what they provision.
package provision

import (
	"context"
	"errors"
)

// Request is one resource to provision in one environment.
type Request struct {
	// Name is the resource's name among the environment's resources: the
	// Score resource's id when workloads share it, else "<app>-<resource>".
	// It is unique per environment; a driver derives the names of what it
	// creates from it (a database, a role, a directory).
	Name string
	// Env is the environment, Zone its landing zone.
	Env, Zone string
	// Type and Class are the Score resource's.
	Type, Class string
	// Params are the Score resource's params, placeholders resolved.
	Params map[string]any
	// Config is the provisioner's settings for its driver (a static
	// provisioner's values, a stack provisioner's module), as decoded
	// from YAML.
	Config map[string]any
}

// Driver provisions resources of the types it serves. Every method is
// idempotent and may be called for the same request again at any time
// (after a restart of socle, after the thing provisioned died).
type Driver interface {
	// Name is the driver's name in provisioner files: "process",
	// "static", "stack", "kubernetes".
	Name() string
	// Provision makes the resource exist and work (starting the server
	// it lives on when that is not running), and returns its outputs:
	// every output the provisioner declares.
	Provision(ctx context.Context, r Request) (map[string]string, error)
	// Check reports whether what Provision made still exists and works;
	// an error says what is wrong, in words a person understands.
	Check(ctx context.Context, r Request) error
	// Deprovision removes the resource and what it holds; a resource that
	// does not exist is not an error.
	Deprovision(ctx context.Context, r Request) error
}

// ErrUnsupported is returned (wrapped) by a driver asked for a resource
// type it does not serve.
var ErrUnsupported = errors.New("resource type not supported by this driver")

// Stopper is a driver that runs services of its own (a database server):
// socle stops them when it stops the apps that use them, and the next
// Provision starts them again with their data.
type Stopper interface {
	// StopAll stops every service the driver runs, keeping their data.
	StopAll(ctx context.Context) error
}

// Changer is a driver whose resources' outputs can change while their
// request does not: a stack provisioner's outputs are those of the
// stack's last apply. socle asks at each pass, and provisions the
// resource again when they changed, so that the apps that use it roll.
type Changer interface {
	// Changed reports whether Provision would now return other values
	// for the outputs last, which it returned last time.
	Changed(ctx context.Context, r Request, last map[string]string) (bool, error)
}

// Leaver is a driver whose Deprovision removes nothing (what it serves
// lives on by itself): Leaves says what stays, in words a person reads
// in the resource's status.
type Leaver interface {
	Leaves(r Request) string
}
