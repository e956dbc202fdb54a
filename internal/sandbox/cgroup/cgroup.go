// Package cgroup enforces the resource limits of a replica (Score
// resources.limits: memory and CPU) with a control group of its own, in
// cgroup v2 (memory.max, memory.swap.max, cpu.max) or, where the machine
// mounts the memory and cpu controllers in v1 hierarchies (the "hybrid"
// layout of many hosts), in cgroup v1 (memory.limit_in_bytes,
// memory.memsw.limit_in_bytes, cpu.cfs_quota_us over cpu.cfs_period_us).
// It needs root: socle does not yet find and use a delegated v2 subtree.
// It owns the groups' directories, their limits and their removal; which
// processes run in them, and when, is its callers' business.
//
// A replica's processes are in its group from their first instruction, so
// that nothing the sandbox starts escapes it: in v2 the child is cloned
// into the group (SysProcAttr.UseCgroupFD, clone3's CLONE_INTO_CGROUP); v1
// has nothing alike, so the command is run through a shell that writes its
// own pid into the group's cgroup.procs files, then execs the command (the
// same process, the same pid, already in the group). The files are given
// to the replica's user, which may then move its own processes, and only
// them, into its own group.
//
// Why not github.com/containerd/cgroups/v3, which knows both versions: it
// brings cilium/ebpf, godbus, go-systemd, logrus and protobuf for what is
// here a dozen file writes, and its v1 manager adds a running pid to a
// group (a process that starts children before it is added leaves them
// outside), which is the race this package exists to avoid.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Limits bound a group; zero is no limit.
type Limits struct {
	// MilliCPU is CPU time in thousandths of a processor.
	MilliCPU int64
	// Memory is in bytes, swap included.
	Memory int64
}

// Version is the cgroup version limits are enforced with; None if they are
// not.
type Version int

// The versions.
const (
	None Version = iota
	V1
	V2
)

// Hierarchy is where this machine's groups are made.
type Hierarchy struct {
	version Version
	// v1: the mount points of the memory and cpu controllers; v2: the
	// mount point of the unified hierarchy, in both.
	memory, cpu string
	message     string
}

// cpuPeriod is the CFS period, in microseconds: the kernel's default.
const cpuPeriod = 100000

var (
	detectOnce sync.Once
	detected   *Hierarchy
)

// Detect returns the hierarchy of this machine, found once per process.
func Detect() *Hierarchy {
	detectOnce.Do(func() {
		if runtime.GOOS != "linux" {
			detected = &Hierarchy{message: "resources.limits are not enforced: control groups are Linux's, and this is " + runtime.GOOS}
			return
		}
		detected = detect(os.Geteuid() == 0, "/proc/self/mounts")
	})
	return detected
}

// detect finds where limits can be enforced, from the mount table at
// mounts.
func detect(root bool, mounts string) *Hierarchy {
	v1 := map[string]string{}
	var v2 []string // cgroup2 mount points
	f, err := os.Open(mounts)
	if err != nil {
		return &Hierarchy{message: fmt.Sprintf("resources.limits are not enforced: reading the mount table: %v", err)}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		switch fields[2] {
		case "cgroup2":
			v2 = append(v2, fields[1])
		case "cgroup":
			for opt := range strings.SplitSeq(fields[3], ",") {
				if opt == "memory" || opt == "cpu" {
					v1[opt] = fields[1]
				}
			}
		}
	}
	var offered []string
	for _, m := range v2 {
		b, err := os.ReadFile(filepath.Join(m, "cgroup.controllers"))
		if err != nil {
			continue
		}
		ctl := strings.Fields(string(b))
		if slices.Contains(ctl, "memory") && slices.Contains(ctl, "cpu") {
			if !root {
				return &Hierarchy{message: fmt.Sprintf("resources.limits are not enforced: cgroup v2 at %s has the memory and cpu controllers, but socle does not run as root and does not use a delegated subtree", m)}
			}
			return &Hierarchy{version: V2, memory: m, cpu: m, message: fmt.Sprintf(
				"resources.limits are enforced (cgroup v2): memory.max and memory.swap.max, cpu.max, in a group per replica under %s", filepath.Join(m, "socle"))}
		}
		offered = append(offered, fmt.Sprintf("%s offers %q", m, ctl))
	}
	if v1["memory"] != "" && v1["cpu"] != "" {
		if !root {
			return &Hierarchy{message: fmt.Sprintf("resources.limits are not enforced: the memory and cpu controllers are in cgroup v1 hierarchies (%s, %s), where only root makes groups, and socle does not run as root", v1["memory"], v1["cpu"])}
		}
		return &Hierarchy{version: V1, memory: v1["memory"], cpu: v1["cpu"], message: fmt.Sprintf(
			"resources.limits are enforced (cgroup v1 memory+cpu): memory.limit_in_bytes and memory.memsw.limit_in_bytes, cpu.cfs_quota_us, in a group per replica under %s and %s",
			filepath.Join(v1["memory"], "socle"), filepath.Join(v1["cpu"], "socle"))}
	}
	why := "no cgroup hierarchy with the memory and cpu controllers is mounted"
	if len(offered) > 0 {
		why += " (cgroup v2: " + strings.Join(offered, "; ") + ")"
	}
	return &Hierarchy{message: "resources.limits are not enforced: " + why}
}

// Version returns the version limits are enforced with, or None.
func (h *Hierarchy) Version() Version { return h.version }

// Message says whether limits are enforced, with what, or why not.
func (h *Hierarchy) Message() string { return h.message }

// dirs returns the directories of the group at rel (a slash-separated path
// under socle's own group): one in v2, the memory's and the cpu's in v1.
func (h *Hierarchy) dirs(rel string) []string {
	m := filepath.Join(h.memory, "socle", filepath.FromSlash(rel))
	if h.version == V2 {
		return []string{m}
	}
	return []string{m, filepath.Join(h.cpu, "socle", filepath.FromSlash(rel))}
}

// Group returns the group at rel, a slash-separated path under socle's
// own ("<scope>/<replica>"), which may not exist yet. Nil if limits are
// not enforced here.
func (h *Hierarchy) Group(rel string) *Group {
	if h == nil || h.version == None {
		return nil
	}
	return &Group{h: h, rel: rel, dirs: h.dirs(rel)}
}

// Children returns the names of the groups under rel.
func (h *Hierarchy) Children(rel string) []string {
	if h == nil || h.version == None {
		return nil
	}
	entries, err := os.ReadDir(h.dirs(rel)[0])
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// Group is the control group of one replica.
type Group struct {
	h    *Hierarchy
	rel  string
	dirs []string // the memory's first
}

// Dirs returns the group's directories: one in v2; in v1 the memory
// controller's, then the cpu controller's.
func (g *Group) Dirs() []string { return slices.Clone(g.dirs) }

// Create makes the group if it does not exist, and sets its limits. uid is
// the user the group's processes run as: in v1 they add themselves to it.
func (g *Group) Create(l Limits, uid int) error {
	if g.h.version == V2 {
		// Each level above the group hands the controllers down to it.
		rel := strings.Split(filepath.Join("socle", filepath.FromSlash(g.rel)), string(filepath.Separator))
		dir := g.h.memory
		for _, name := range rel {
			if err := write(dir, "cgroup.subtree_control", "+memory +cpu"); err != nil {
				return err
			}
			dir = filepath.Join(dir, name)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("creating cgroup: %w", err)
			}
		}
	} else {
		for _, dir := range g.dirs {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("creating cgroup: %w", err)
			}
			if err := os.Chown(filepath.Join(dir, "cgroup.procs"), uid, -1); err != nil {
				return fmt.Errorf("creating cgroup: %w", err)
			}
		}
	}
	return g.setLimits(l)
}

// setLimits writes l to the group (no limit where l has none).
func (g *Group) setLimits(l Limits) error {
	mem, cpu := g.dirs[0], g.dirs[len(g.dirs)-1]
	var writes [][3]string // dir, file, value
	if g.h.version == V2 {
		memMax, cpuMax := "max", fmt.Sprintf("max %d", cpuPeriod)
		if l.Memory > 0 {
			memMax = strconv.FormatInt(l.Memory, 10)
		}
		if l.MilliCPU > 0 {
			cpuMax = fmt.Sprintf("%d %d", quota(l.MilliCPU), cpuPeriod)
		}
		writes = [][3]string{{mem, "memory.max", memMax}, {mem, "memory.swap.max", "0"}, {cpu, "cpu.max", cpuMax}}
		if l.Memory <= 0 {
			writes[1][2] = "max"
		}
	} else {
		memLimit, cpuQuota := "-1", "-1"
		if l.Memory > 0 {
			memLimit = strconv.FormatInt(l.Memory, 10)
		}
		if l.MilliCPU > 0 {
			cpuQuota = strconv.FormatInt(quota(l.MilliCPU), 10)
		}
		// memsw (memory and swap) must stay at least memory: lifted
		// before memory is set, then lowered to it.
		writes = [][3]string{
			{mem, "memory.memsw.limit_in_bytes", "-1"},
			{mem, "memory.limit_in_bytes", memLimit},
			{mem, "memory.memsw.limit_in_bytes", memLimit},
			{cpu, "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)},
			{cpu, "cpu.cfs_quota_us", cpuQuota},
		}
	}
	for _, w := range writes {
		err := write(w[0], w[1], w[2])
		// memsw exists only with swap accounting; swap.max only with swap.
		if errors.Is(err, fs.ErrNotExist) && strings.Contains(w[1], "sw") {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// quota is the CFS quota of milli CPUs, in microseconds per period (at
// least the kernel's minimum, 1ms).
func quota(milli int64) int64 { return max(milli*cpuPeriod/1000, 1000) }

// write writes value to the file name of dir.
func write(dir, name, value string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("setting cgroup %s: %w", name, err)
	}
	return nil
}

// shim runs its arguments after moving itself into the groups whose
// cgroup.procs files it is given: sh -c shim sh N procs... argv...
const shim = `n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"`

// Apply makes cmd, not yet started, start in the group. It returns what to
// call once cmd has started (or failed to).
func (g *Group) Apply(cmd *exec.Cmd) (done func(), err error) {
	if g.h.version == V2 {
		return g.cloneInto(cmd)
	}
	args := []string{"sh", "-c", shim, "sh", strconv.Itoa(len(g.dirs))}
	for _, d := range g.dirs {
		args = append(args, filepath.Join(d, "cgroup.procs"))
	}
	cmd.Args = slices.Concat(args, []string{cmd.Path}, cmd.Args[1:])
	cmd.Path = "/bin/sh"
	return func() {}, nil
}

// OOMKills returns how many processes of the group the kernel has killed
// for lack of memory, since the group was made.
func (g *Group) OOMKills() uint64 {
	name, key := "memory.oom_control", "oom_kill"
	if g.h.version == V2 {
		name = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(g.dirs[0], name))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// Procs returns the pids in the group.
func (g *Group) Procs() []int {
	var pids []int
	for _, d := range g.dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// removeWait bounds the wait for the processes of a group to leave it.
const removeWait = 5 * time.Second

// Remove kills what still runs in the group and removes it, and the groups
// above it up to socle's own once they are empty. A group that does not
// exist is removed already.
func (g *Group) Remove() error {
	deadline := time.Now().Add(removeWait)
	for _, d := range g.dirs {
		for {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("removing cgroup %s: %w", d, err)
			}
			for _, pid := range g.Procs() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The levels above, when this was their last group (another
		// driver's groups keep them).
		for up := filepath.Dir(d); filepath.Base(up) != "socle" && up != "/"; up = filepath.Dir(up) {
			if syscall.Rmdir(up) != nil {
				break
			}
		}
	}
	return nil
}
