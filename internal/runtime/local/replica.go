package local

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/supervise"
	"github.com/socle-dev/socle/internal/sandbox/cgroup"
)

// replica is one replica the driver knows: what package supervise keeps of
// it, and its directory and environment. It is its own supervise.Runner.
type replica struct {
	*supervise.Replica[*process]
	d   *Driver
	dir string
	env []string // the process environment
	// cg is the replica's control group, which enforces its limits; nil
	// if it has none, or they are not enforced here.
	cg *cgroup.Group
}

var (
	_ supervise.Runner[*process] = (*replica)(nil)
	_ supervise.Housekeeper      = (*replica)(nil)
)

func (d *Driver) newReplica(spec runtime.ReplicaSpec) *replica {
	id := fmt.Sprintf("%s_%s_%s_%d", spec.Env, spec.App, spec.Release, spec.Index)
	r := &replica{d: d, dir: d.replicaDir(id)}
	log := d.log.With("app", spec.App, "env", spec.Env, "release", spec.Release, "replica", spec.Index)
	r.Replica = d.sup.NewReplica(id, spec, log, r)
	if spec.Limits != (runtime.Limits{}) {
		r.cg = d.cgroups.Group(d.cgScope + "/" + id)
	}
	return r
}

// replicaDir is the directory of replica id in the state directory.
func (d *Driver) replicaDir(id string) string {
	return filepath.Join(d.opts.StateDir, replicasDir, id)
}

// logPath is the log of replica id.
func (d *Driver) logPath(id string) string { return filepath.Join(d.replicaDir(id), logName) }

func (r *replica) logPath() string { return filepath.Join(r.dir, logName) }

// create makes the replica's directory and starts its first process. The
// record is written before the process starts, so that a directory without
// one had no process.
func (r *replica) create() (*process, error) {
	if err := os.Mkdir(r.dir, 0o700); err != nil {
		return nil, err
	}
	if err := r.PersistLocked(); err != nil {
		return nil, err
	}
	return r.spawn()
}

// RestartLocked starts a new process of the replica; see supervise.Runner.
func (r *replica) RestartLocked(context.Context) (*process, error) { return r.spawn() }

// Failed returns a process that has ended with exit; see supervise.Runner.
func (r *replica) Failed(exit runtime.Exit) *process { return r.d.endedProcess(exit) }

// Terminate ends p and its process group; see terminate.
func (r *replica) Terminate(ctx context.Context, p *process) (bool, error) {
	return terminate(ctx, p, r.Spec.GracePeriod)
}

// LogTail returns the last lines of the replica's log.
func (r *replica) LogTail(context.Context) string { return logTail(r.logPath()) }

// Describe names p in events.
func (r *replica) Describe(p *process) string { return fmt.Sprintf("pid %d", p.PID) }

// Remove removes the replica's directory (its record and logs) and its
// control group.
func (r *replica) Remove(context.Context) error {
	err := os.RemoveAll(r.dir)
	if r.cg != nil {
		err = errors.Join(err, r.cg.Remove())
	}
	return err
}

// cgroupScope is the level under socle's control group that holds the
// groups of the driver of state directory dir, so that drivers of other
// state directories (other socles, tests) neither see nor prune them.
func cgroupScope(dir string) string {
	h := fnv.New32a()
	h.Write([]byte(dir))
	return fmt.Sprintf("local-%08x", h.Sum32())
}

// pruneCgroups removes the control groups of the driver's scope whose
// replica is not in its state directory: a replica stopped while its
// group could not be removed. The groups of the replicas found are kept:
// a recovered replica runs in its group still.
func (d *Driver) pruneCgroups(known map[string]bool) {
	for _, name := range d.cgroups.Children(d.cgScope) {
		if known[name] {
			continue
		}
		if err := d.cgroups.Group(d.cgScope + "/" + name).Remove(); err != nil {
			d.log.Warn("removing a stale control group", "err", err)
		}
	}
}

// Housekeep rotates the replica's log once it has reached its size.
func (r *replica) Housekeep() {
	if err := rotateLog(r.logPath(), r.d.opts.LogSize, r.d.opts.LogFiles); err != nil {
		r.Log.Warn("rotating the replica's log", "err", err)
	}
}
