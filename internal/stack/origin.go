package stack

import (
	"fmt"
	"os"
	"path/filepath"
)

// originFile records, in an instance's directory, the revision its
// content (the content hash of a plan) was first planned at: the change
// its plans come from, whose author does not approve them. It is kept on
// disk so that a restart, and a new plan of the same content (after a
// stale refusal or drift), keep the revision that brought the change
// rather than whichever revision is in force then.
const originFile = "origin.json"

// origin is what originFile holds.
type origin struct {
	Hash     string `json:"hash"`
	Revision string `json:"revision"`
}

// PlanOrigin returns the revision the instance's content hash was first
// planned at; ok is false when none is recorded for that hash.
func (r *Runner) PlanOrigin(stack, instance, hash string) (revision string, ok bool, err error) {
	var o origin
	found, err := readJSON(filepath.Join(instanceDir(r.Dir, stack, instance), originFile), &o)
	if err != nil {
		return "", false, fmt.Errorf("reading where the plan of %s @ %s comes from: %w", stack, instance, err)
	}
	if !found || hash == "" || o.Hash != hash {
		return "", false, nil
	}
	return o.Revision, true, nil
}

// notePlanOrigin returns the revision hash was first planned at,
// recording revision as that one when the content is new.
func (r *Runner) notePlanOrigin(stack, instance, hash, revision string) (string, error) {
	if from, ok, err := r.PlanOrigin(stack, instance, hash); err != nil || ok {
		return from, err
	}
	dir := instanceDir(r.Dir, stack, instance)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return revision, writeJSON(filepath.Join(dir, originFile), origin{Hash: hash, Revision: revision})
}
