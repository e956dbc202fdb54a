// Package fromstack is the provisioner driver "stack": a resource it
// serves takes its outputs from the last apply of an infrastructure
// stack's instance (stacks/<stack>/, applied by the stack unit kind), the
// one for the resource's environment, or for its zone where the stack is
// one per zone. It runs no terraform itself and makes nothing: the
// stack's lifecycle is its own, so a resource removed from Git leaves the
// stack as it is. The resource's params are not passed to the stack as
// inputs: the stack's inputs are those its stack.yaml gives.
package fromstack

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// Name is the driver's name in provisioner files.
const Name = string(spec.DriverStack)

// Driver is the stack driver. Its config is
//
//	config: {stack: databases}
//
// and the outputs the provisioner declares are the stack's outputs of
// the same names (validate checks that the stack declares them, and that
// a sensitive one is declared secret).
type Driver struct {
	// Repo returns the revision in force (nil before the first): which
	// instances the stack has.
	Repo func() *spec.Repo
	// Outputs reads the outputs of the instances' last applies.
	Outputs stack.Outputs
}

var (
	_ provision.Driver  = (*Driver)(nil)
	_ provision.Changer = (*Driver)(nil)
	_ provision.Leaver  = (*Driver)(nil)
)

// Name is "stack".
func (d *Driver) Name() string { return Name }

// Instance says which stack, and which of its instances, serve r: the
// instance of r's environment, or of its zone for a stack per zone.
func Instance(repo *spec.Repo, r provision.Request) (stackName, instance string, err error) {
	name, _ := r.Config["stack"].(string)
	if name == "" {
		return "", "", fmt.Errorf("the provisioner names no stack: config: {stack: <name>}")
	}
	if repo == nil {
		return "", "", fmt.Errorf("stack %s: no revision is in force yet", name)
	}
	s := repo.Stack(name)
	if s == nil {
		return "", "", fmt.Errorf("no stack %q in the revision in force", name)
	}
	inst, ok := repo.StackInstanceFor(s, r.Env)
	if !ok {
		per := "environments"
		if s.PerZone() {
			per = "zones"
		}
		return "", "", fmt.Errorf("stack %s has no instance for environment %s (its %s: %s)", name, r.Env, per, strings.Join(s.Instances(), ", "))
	}
	return name, inst, nil
}

// Provision returns the outputs of the last apply of the stack's
// instance; an instance not applied yet is an error (the resource unit
// waits for the stack's unit before it asks, where socle applies stacks).
func (d *Driver) Provision(_ context.Context, r provision.Request) (map[string]string, error) {
	return d.read(r)
}

// Check finds nothing wrong while the instance has applied outputs.
func (d *Driver) Check(_ context.Context, r provision.Request) error {
	_, err := d.read(r)
	return err
}

// Changed reports whether the instance's outputs are not last any more:
// the stack was applied again with other values.
func (d *Driver) Changed(_ context.Context, r provision.Request, last map[string]string) (bool, error) {
	now, err := d.read(r)
	if err != nil {
		return false, err
	}
	for k, v := range last {
		if w, ok := now[k]; !ok || w != v {
			return true, nil
		}
	}
	return false, nil
}

// Deprovision destroys nothing: the stack is applied, and destroyed, as
// a stack.
func (d *Driver) Deprovision(context.Context, provision.Request) error { return nil }

// Leaves says that the stack stays.
func (d *Driver) Leaves(r provision.Request) string {
	name, _ := r.Config["stack"].(string)
	return fmt.Sprintf("stack %s is not destroyed: a stack's lifecycle is its own", name)
}

// read returns the outputs of the instance serving r, as strings.
func (d *Driver) read(r provision.Request) (map[string]string, error) {
	var repo *spec.Repo
	if d.Repo != nil {
		repo = d.Repo()
	}
	name, inst, err := Instance(repo, r)
	if err != nil {
		return nil, err
	}
	outs, applied, err := d.Outputs.Outputs(name, inst)
	if err != nil {
		return nil, fmt.Errorf("reading the outputs of stack %s @ %s: %w", name, inst, err)
	}
	if !applied {
		return nil, fmt.Errorf("stack %s @ %s is not applied yet", name, inst)
	}
	out := make(map[string]string, len(outs))
	for _, k := range slices.Sorted(maps.Keys(outs)) {
		if out[k], err = text(outs[k].Value); err != nil {
			return nil, fmt.Errorf("stack %s @ %s: output %s: %w", name, inst, k, err)
		}
	}
	return out, nil
}

// text is an output's value as a workload reads it: a string as it is, a
// number or a bool as written, a list or a map as JSON.
func text(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return fmt.Sprint(v), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}
