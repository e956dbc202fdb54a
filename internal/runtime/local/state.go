package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
)

// Names in the state directory.
const (
	replicasDir = "replicas"
	recordName  = "replica.json"
	logName     = "output.log"
)

// record is what replica.json holds: enough to supervise the replica again
// after socle restarts.
type record struct {
	Spec       runtime.ReplicaSpec   `json:"spec"`
	Ports      []runtime.PortBinding `json:"ports"`
	PID        int                   `json:"pid,omitempty"` // 0: the first process has not started yet
	StartTicks uint64                `json:"startTicks,omitempty"`
	StartedAt  time.Time             `json:"startedAt,omitzero"`
	Restarts   int                   `json:"restarts,omitempty"`
	Failures   int                   `json:"failures,omitempty"`
	LastExit   *runtime.Exit         `json:"lastExit,omitempty"`
}

// PersistLocked replaces the replica's record, atomically; see
// supervise.Runner.
func (r *replica) PersistLocked() error {
	rec := record{Spec: r.Spec, Ports: r.Ports, Restarts: r.Restarts, Failures: r.Failures, LastExit: r.LastExit}
	if p := r.Run; p != nil {
		rec.PID, rec.StartTicks, rec.StartedAt = p.PID, p.ticks, p.StartedAt
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(r.dir, recordName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(r.dir, recordName))
}

// load lists the replicas of the state directory, each with its process
// adopted if it still runs.
func (d *Driver) load() error {
	root := filepath.Join(d.opts.StateDir, replicasDir)
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var byMarker map[string]found // read on first need
	known := map[string]bool{}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, recordName))
		if errors.Is(err, fs.ErrNotExist) {
			// Start writes the record before it starts a process: none ran.
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("%s: %w (remove the directory to forget the replica)", filepath.Join(dir, recordName), err)
		}
		r := d.newReplica(rec.Spec)
		if r.dir != dir {
			return fmt.Errorf("%s: the record is of replica %s", dir, rec.Spec.Ref)
		}
		known[r.ID] = true
		r.Ports, r.Restarts, r.Failures, r.LastExit = rec.Ports, rec.Restarts, rec.Failures, rec.LastExit
		r.env = environ(r.Spec, r.Ports, r.dir)
		r.Run = d.adopt(dir, rec.PID, rec.StartTicks, rec.StartedAt)
		if r.Run.Ended() {
			// A crash of socle between starting a process and recording it
			// leaves the process unrecorded: look for it by its marker.
			if byMarker == nil {
				byMarker = findMarked(root + string(filepath.Separator))
			}
			if f, ok := byMarker[dir]; ok {
				r.Run = d.adopt(dir, f.pid, f.ticks, d.opts.Clock.Now())
			}
		}
		d.sup.Load(r.Replica)
	}
	d.pruneCgroups(known)
	return nil
}

// found is a process found by its marker.
type found struct {
	pid   int
	ticks uint64
}

// findMarked returns the running group leaders whose marker variable names
// a directory under prefix, by directory.
func findMarked(prefix string) map[string]found {
	m := map[string]found{}
	procs(func(pid int, st stat) {
		if dir, ok := markerOf(pid); ok && strings.HasPrefix(dir, prefix) && st.pgid == pid && !st.zombie() {
			m[dir] = found{pid, st.ticks}
		}
	})
	return m
}
