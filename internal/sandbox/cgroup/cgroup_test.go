package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDetect: which version enforces limits, or why none does, from mount
// tables of the layouts found on hosts.
func TestDetect(t *testing.T) {
	dir := t.TempDir()
	unified := filepath.Join(dir, "unified")     // cgroup v2 with the controllers
	empty := filepath.Join(dir, "unified-empty") // the hybrid layout's empty v2
	for d, ctl := range map[string]string{unified: "cpuset cpu io memory pids\n", empty: "\n"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.controllers"), []byte(ctl), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hybrid := "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n" +
		"cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n" +
		"cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\n" +
		"cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n" +
		"cgroup2 " + empty + " cgroup2 rw 0 0\n"
	for _, tc := range []struct {
		name    string
		mounts  string
		root    bool
		version Version
		say     string
	}{
		{"unified as root", "cgroup2 " + unified + " cgroup2 rw 0 0\n", true, V2, "enforced (cgroup v2)"},
		{"unified not root", "cgroup2 " + unified + " cgroup2 rw 0 0\n", false, None, "does not run as root"},
		{"hybrid as root", hybrid, true, V1, "enforced (cgroup v1 memory+cpu)"},
		{"hybrid not root", hybrid, false, None, "only root makes groups"},
		{"v1 without cpu", "cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\ncgroup /m cgroup rw,memory 0 0\ncgroup2 " + empty + " cgroup2 rw 0 0\n", true, None, "no cgroup hierarchy with the memory and cpu controllers"},
		{"none", "proc /proc proc rw 0 0\n", true, None, "not enforced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mounts := filepath.Join(t.TempDir(), "mounts")
			if err := os.WriteFile(mounts, []byte(tc.mounts), 0o644); err != nil {
				t.Fatal(err)
			}
			h := detect(tc.root, mounts)
			if h.Version() != tc.version || !strings.Contains(h.Message(), tc.say) {
				t.Errorf("version %d, %q; want %d saying %q", h.Version(), h.Message(), tc.version, tc.say)
			}
			if (h.Group("s/r") != nil) != (tc.version != None) {
				t.Errorf("Group = %v with version %d", h.Group("s/r"), tc.version)
			}
		})
	}
}

// TestHybridDirs: in v1 a group has a directory in the memory hierarchy
// and one in the cpu hierarchy, under socle's own.
func TestHybridDirs(t *testing.T) {
	mounts := filepath.Join(t.TempDir(), "mounts")
	if err := os.WriteFile(mounts, []byte("cgroup /c cgroup rw,cpu,cpuacct 0 0\ncgroup /m cgroup rw,memory 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := detect(true, mounts).Group("local-1/env_app_r1_0").Dirs()
	if want := []string{"/m/socle/local-1/env_app_r1_0", "/c/socle/local-1/env_app_r1_0"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Dirs = %q, want %q", got, want)
	}
}

func TestQuota(t *testing.T) {
	for milli, want := range map[int64]int64{200: 20000, 1000: 100000, 2500: 250000, 5: 1000} {
		if got := quota(milli); got != want {
			t.Errorf("quota(%d) = %d, want %d", milli, got, want)
		}
	}
}

// TestV2CloneIntoGroup: in cgroup v2 the child starts in its group
// (clone3 into the group's directory), and Remove kills what is left and
// removes it. The controllers are not needed for this part: it runs on the
// empty v2 hierarchy of a hybrid host too (limits are not written).
func TestV2CloneIntoGroup(t *testing.T) {
	const unified = "/sys/fs/cgroup/unified"
	var mount string
	for _, m := range []string{"/sys/fs/cgroup", unified} {
		if _, err := os.Stat(filepath.Join(m, "cgroup.controllers")); err == nil {
			mount = m
			break
		}
	}
	if mount == "" || os.Geteuid() != 0 {
		t.Skip("needs root and a cgroup v2 hierarchy")
	}
	h := &Hierarchy{version: V2, memory: mount, cpu: mount}
	g := h.Group(fmt.Sprintf("test-%d/g", os.Getpid()))
	if err := os.MkdirAll(g.Dirs()[0], 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Join(mount, "socle")) }) // if no one else uses it
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & wait")
	started, err := g.Apply(cmd)
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	started()
	if err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if procs := g.Procs(); !slices.Contains(procs, cmd.Process.Pid) {
		t.Errorf("the child %d is not in its group, which has %v", cmd.Process.Pid, procs)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(g.Dirs()[0])); !os.IsNotExist(err) {
		t.Errorf("the group's level remains: %v", err)
	}
}
