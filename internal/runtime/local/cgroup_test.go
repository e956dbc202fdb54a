package local

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/sandbox/cgroup"
)

// limited opens a driver whose replicas get control groups, or skips the
// test where this machine cannot make them.
func limited(t *testing.T, dir string) *Driver {
	t.Helper()
	d := open(t, dir, Options{})
	if d.cgroups == nil {
		t.Skip(sandbox.Detect().Limits())
	}
	return d
}

// shell is a replica of the host's sh running script, in an empty image,
// without ports' probes.
func shell(t *testing.T, script string, l runtime.Limits) runtime.ReplicaSpec {
	spec := runtimetest.Spec(runtime.ReplicaSpec{Root: imageDir(t), Command: []string{"/bin/sh", "-c", script}}, 0)
	spec.Readiness, spec.Limits = nil, l
	return spec
}

// groupOf is the control group of replica h.
func groupOf(d *Driver, h runtime.Handle) *cgroup.Group {
	return d.cgroups.Group(d.cgScope + "/" + h.ID)
}

// readFile returns the trimmed content of file name of dir.
func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waitLog waits until the replica's log holds s.
func waitLog(t *testing.T, d *Driver, h runtime.Handle, s string) {
	t.Helper()
	ctx := testContext(t)
	for {
		if b, _ := os.ReadFile(d.logPath(h.ID)); bytes.Contains(b, []byte(s)) {
			return
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(d.logPath(h.ID))
			t.Fatalf("the log never held %q: %s", s, b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestMemoryLimitKillsAtTheLimit: a replica limited to 64 MiB that
// allocates 200 MiB is killed by the kernel, its exit recorded as such, and
// started again; the same replica without a limit allocates them and runs
// on.
func TestMemoryLimitKillsAtTheLimit(t *testing.T) {
	t.Parallel()
	// dd holds its whole block in memory, written from /dev/zero: 200 MiB
	// touched at once.
	const script = "dd if=/dev/zero of=/dev/null bs=200M count=1 && echo allocated && exec sleep 1000"
	for _, tc := range []struct {
		name  string
		limit runtime.Limits
	}{
		{"limited", runtime.Limits{Memory: 64 << 20}},
		{"unlimited", runtime.Limits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := limited(t, stateDir(t))
			spec := shell(t, script, tc.limit)
			h, err := d.Start(testContext(t), spec)
			if err != nil {
				t.Fatal(err)
			}
			if tc.limit.Memory == 0 {
				if _, err := os.Stat(groupOf(d, h).Dirs()[0]); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a replica without limits has a control group: %v", err)
				}
				waitLog(t, d, h, "allocated")
				st, err := d.Status(testContext(t), h)
				if err != nil || st.State != runtime.Running || st.Restarts != 0 || st.LastExit != nil {
					t.Errorf("without a limit: %+v, %v; want it running, never restarted", st, err)
				}
				return
			}
			mem := groupOf(d, h).Dirs()[0]
			want := strconv.FormatInt(tc.limit.Memory, 10)
			if d.cgroups.Version() == cgroup.V2 {
				if got := readFile(t, mem, "memory.max"); got != want {
					t.Errorf("memory.max = %s, want %s", got, want)
				}
			} else {
				for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
					if _, err := os.Stat(filepath.Join(mem, f)); err != nil {
						continue // no swap accounting
					}
					if got := readFile(t, mem, f); got != want {
						t.Errorf("%s = %s, want %s", f, got, want)
					}
				}
			}
			st := waitFor(t, d, h, "killed and started again", func(s runtime.Status) bool { return s.Restarts >= 1 })
			e := st.LastExit
			if e == nil || e.Signal != "SIGKILL" || !strings.HasPrefix(e.Reason, "out of memory") {
				t.Fatalf("LastExit = %+v, want out of memory", e)
			}
			t.Logf("exit: %s", e.Reason)
			if b, _ := os.ReadFile(d.logPath(h.ID)); bytes.Contains(b, []byte("allocated")) {
				t.Errorf("the replica allocated 200 MiB past its limit: %s", b)
			}
		})
	}
}

// cpuTicks is the CPU time (user and system, in clock ticks) of the
// processes of g.
func cpuTicks(g *cgroup.Group) uint64 {
	var sum uint64
	for _, pid := range g.Procs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		i := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		for _, s := range f[11:13] { // utime, stime
			n, _ := strconv.ParseUint(s, 10, 64)
			sum += n
		}
	}
	return sum
}

// throttled reads the number of periods in which g was throttled.
func throttled(t *testing.T, g *cgroup.Group) uint64 {
	t.Helper()
	dirs := g.Dirs()
	for line := range strings.SplitSeq(readFile(t, dirs[len(dirs)-1], "cpu.stat"), "\n") {
		if v, ok := strings.CutPrefix(line, "nr_throttled "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("cpu.stat has no nr_throttled")
	return 0
}

// TestCPULimitThrottles: a replica limited to 200m that spins has the
// quota of 20ms per 100ms, is throttled by the kernel, and uses at most
// about a fifth of a processor.
func TestCPULimitThrottles(t *testing.T) {
	t.Parallel()
	d := limited(t, stateDir(t))
	h, err := d.Start(testContext(t), shell(t, "while :; do :; done", runtime.Limits{MilliCPU: 200}))
	if err != nil {
		t.Fatal(err)
	}
	g := groupOf(d, h)
	cpu := g.Dirs()[len(g.Dirs())-1]
	if d.cgroups.Version() == cgroup.V2 {
		if got := readFile(t, cpu, "cpu.max"); got != "20000 100000" {
			t.Errorf("cpu.max = %q, want 20000 100000", got)
		}
	} else if q, p := readFile(t, cpu, "cpu.cfs_quota_us"), readFile(t, cpu, "cpu.cfs_period_us"); q != "20000" || p != "100000" {
		t.Errorf("cpu.cfs_quota_us = %s, cpu.cfs_period_us = %s; want 20000 and 100000", q, p)
	}
	// The throttling counter grows while it spins.
	ctx := testContext(t)
	n0, t0, c0 := throttled(t, g), time.Now(), cpuTicks(g)
	for throttled(t, g) < n0+10 {
		select {
		case <-ctx.Done():
			t.Fatalf("nr_throttled went from %d to %d only", n0, throttled(t, g))
		case <-time.After(50 * time.Millisecond):
		}
	}
	// A measure, bounded above only: a busy machine gives it less.
	elapsed, used := time.Since(t0), time.Duration(cpuTicks(g)-c0)*10*time.Millisecond
	ratio := used.Seconds() / elapsed.Seconds()
	t.Logf("throttled %d times; %v of CPU in %v: %.2f of a processor", throttled(t, g)-n0, used, elapsed.Round(time.Millisecond), ratio)
	if ratio > 0.35 {
		t.Errorf("the replica used %.2f of a processor, limited to 0.2", ratio)
	}
}

// TestCgroupKeptAtRecoverRemovedAtStop: after socle restarts, the
// recovered replica runs in its group still, a stale group of the same
// state directory is pruned, and Stop removes the replica's group.
func TestCgroupKeptAtRecoverRemovedAtStop(t *testing.T) {
	t.Parallel()
	dir := stateDir(t)
	d := limited(t, dir)
	spec := runtimetest.Spec(server("-child"), 0)
	spec.Limits = runtime.Limits{MilliCPU: 500, Memory: 256 << 20}
	st := startReady(t, d, spec)
	g := groupOf(d, st.Handle)
	members := groupMembers(st.PID) // bwrap's, the server, its child
	if procs := g.Procs(); len(members) < 3 || slices.ContainsFunc(members, func(pid int) bool { return !slices.Contains(procs, pid) }) {
		t.Fatalf("the replica's processes %v are not all in its group, which has %v", members, procs)
	}
	// The shell that puts the sandbox in its group exports its PWD, which
	// bwrap replaces with the working directory, as without a group.
	for name, want := range map[string]string{"PWD": "/", "GREETING": "hello"} {
		if got, err := get(st, "/env?name="+name); got != want || err != nil {
			t.Errorf("$%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := d.Close(); err != nil { // socle goes away; the replica stays
		t.Fatal(err)
	}
	stale := d.cgroups.Group(d.cgScope + "/test_gone_r0_0")
	if err := stale.Create(cgroup.Limits{Memory: 1 << 30}, os.Geteuid()); err != nil {
		t.Fatal(err)
	}

	d = open(t, dir, Options{})
	for _, dir := range stale.Dirs() {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the stale group %s remains: %v", dir, err)
		}
	}
	if err := d.Recover(testContext(t), st.Handle); err != nil {
		t.Fatal(err)
	}
	now := waitFor(t, d, st.Handle, "ready", runtime.IsReady)
	if now.PID != st.PID || !slices.Contains(g.Procs(), st.PID) {
		t.Errorf("recovered: pid %d, group has %v; want pid %d in it", now.PID, g.Procs(), st.PID)
	}
	if err := d.Stop(testContext(t), st.Handle); err != nil {
		t.Fatal(err)
	}
	for _, dir := range g.Dirs() {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the group %s remains after Stop: %v", dir, err)
		}
		if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the driver's level %s remains after its last replica: %v", filepath.Dir(dir), err)
		}
	}
}
