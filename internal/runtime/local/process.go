package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/supervise"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/sandbox/cgroup"
)

// process is one run of a replica's entrypoint: a child of this driver, or a
// process adopted from an earlier one.
type process struct {
	*supervise.Run
	ticks       uint64      // start time in /proc/<pid>/stat, which tells it from a later process with its pid
	terminating atomic.Bool // set by terminate, which then takes care of the group
}

// finish records that p ended. Unless terminate is ending it, what it started
// is killed at once: a replica's group dies with it, and later its pid, which
// names the group, may be another process's.
func (p *process) finish(exit runtime.Exit) {
	if !p.terminating.Load() && groupAlive(p.PID) {
		signalGroup(p.PID, unix.SIGKILL)
	}
	p.Finish(exit)
}

// lostReason is the reason of the exit of a process that ended while no
// driver supervised it.
const lostReason = "ended while socle was not supervising it; its exit status is unknown"

// endedProcess returns a process that has ended with exit (dated on the
// system's clock, as exits are). Its start, which a replica that could not
// start reports while Starting, is dated on the driver's clock like every
// start: the progress deadline measures it against socle's.
func (d *Driver) endedProcess(exit runtime.Exit) *process {
	return &process{Run: supervise.EndedRun(exit, d.opts.Clock.Now())}
}

// markerVar names the environment variable by which a replica's process is
// found when its pid was not recorded.
const markerVar = "SOCLE_LOCAL_REPLICA"

// spawn starts a process of the replica, in a process group of its own, its
// output appended to the replica's log; in a sandbox unless the driver's
// is off.
func (r *replica) spawn() (*process, error) {
	path, err := resolve(r.Spec, r.Spec.Command[0], r.d.sandbox.Enabled())
	if err != nil {
		return nil, err
	}
	out, err := os.OpenFile(r.logPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptors
	var oomKills uint64
	if r.cg != nil {
		uid, _, _ := r.d.sandbox.Owner(sandboxName(r.Spec.Ref))
		l := r.Spec.Limits
		if err := r.cg.Create(cgroup.Limits{MilliCPU: l.MilliCPU, Memory: l.Memory}, uid); err != nil {
			return nil, err
		}
		oomKills = r.cg.OOMKills()
	}
	var cmd *exec.Cmd
	for try := 1; ; try++ {
		if r.d.sandbox.Enabled() {
			// In the sandbox, the image is the root: bwrap runs the
			// entrypoint by its path there, and argv[0] cannot be a title.
			cmd, err = r.d.sandbox.Command(r.sandboxSpec(path, slices.Concat(r.Spec.Command[1:], r.Spec.Args)))
			if err != nil {
				return nil, err
			}
		} else {
			cmd = &exec.Cmd{
				Path: path,
				Args: slices.Concat([]string{title(r.Spec.Ref, r.Spec.Command[0])}, r.Spec.Command[1:], r.Spec.Args),
				Env:  r.env,
				Dir:  inRoot(r.Spec.Root, r.Spec.WorkingDir),
				// Setpgid so that stopping the group stops all it started; no
				// Pdeathsig, so that the replica outlives a crash of socle.
				SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
			}
		}
		cmd.Stdout, cmd.Stderr = out, out
		if r.cg != nil {
			// In the group from its start (see package cgroup).
			var started func()
			if started, err = r.cg.Apply(cmd); err != nil {
				return nil, err
			}
			err = cmd.Start()
			started()
		} else {
			err = cmd.Start()
		}
		// An executable just written may still be open for writing, for an
		// instant, in a child that another goroutine forked meanwhile
		// (golang.org/issue/22315).
		if !errors.Is(err, syscall.ETXTBSY) || try == 5 {
			break
		}
		time.Sleep(time.Duration(try) * 10 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	p := &process{Run: supervise.NewRun(cmd.Process.Pid, r.d.opts.Clock.Now(), time.Now())}
	// The child is not reaped before Wait, so its stat is there to read.
	// (Were it not, the record would not match the process, which a new
	// driver would then find by its marker.)
	if st, err := readStat(p.PID); err == nil {
		p.ticks = st.ticks
	}
	go func() {
		_ = cmd.Wait() // its error is the exit status, which exitOf reads
		exit := exitOf(cmd.ProcessState)
		if r.cg != nil && r.cg.OOMKills() > oomKills {
			exit = oomExit(exit, r.Spec.Limits.Memory)
		}
		p.finish(exit)
	}()
	return p, nil
}

// title is a replica's argv[0], which ps shows as the start of its command
// line: "socle:web.dev/r3/0 /app/web". Every replica of an image runs the
// same file, so the file's name alone does not tell them apart. The
// image's own name for the command ends the title, so that a program that
// looks at the base name it was called by (a multi-call binary) still
// finds it when the command is a path; programs find their file through
// /proc/self/exe, not argv[0]. A script never sees it: the kernel hands
// its interpreter the script's path instead.
func title(ref runtime.Ref, argv0 string) string {
	return "socle:" + ref.String() + " " + argv0
}

// exitOf describes how a child ended.
func exitOf(ps *os.ProcessState) runtime.Exit {
	e := runtime.Exit{At: time.Now(), Code: ps.ExitCode()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = unix.SignalName(ws.Signal())
		e.Reason = "killed by " + e.Signal
	} else {
		e.Reason = fmt.Sprintf("exit status %d", e.Code)
	}
	return e
}

// oomExit is exit of a replica of which the kernel killed a process at its
// memory limit: the process that ran out of memory got SIGKILL, whatever
// bwrap's monitor, which reports the sandbox's end, then exited with.
func oomExit(exit runtime.Exit, limit int64) runtime.Exit {
	exit.Code, exit.Signal = -1, "SIGKILL"
	size := fmt.Sprintf("%d bytes", limit)
	if limit%(1<<20) == 0 {
		size = fmt.Sprintf("%d MiB", limit>>20)
	}
	exit.Reason = "out of memory: killed by SIGKILL at its memory limit (" + size + ", resources.limits.memory)"
	return exit
}

// adopt returns the process of the replica in dir that has pid and start
// time ticks, watched (openExit) until d closes, or an ended process if
// it is gone. Start times are in clock ticks (10ms), so the process must also
// bear the replica's marker.
func (d *Driver) adopt(dir string, pid int, ticks uint64, startedAt time.Time) *process {
	// A lost process has no pid: the number may be another process's now.
	lost := func() *process { return d.endedProcess(runtime.Exit{At: time.Now(), Code: -1, Reason: lostReason}) }
	if pid <= 0 {
		return lost()
	}
	w, err := openExit(pid)
	if err != nil {
		// The leader is gone; what is left of its group is the replica's
		// (a group's id is not reused while the group exists): a sandbox
		// whose bwrap monitor was killed leaves the replica in it.
		if errors.Is(err, unix.ESRCH) && groupAlive(pid) {
			signalGroup(pid, unix.SIGKILL)
		}
		return lost()
	}
	// Checked after the watch is opened, which then refers to this very
	// process.
	st, err := readStat(pid)
	if err == nil && st.ticks == ticks && st.zombie() && groupAlive(pid) {
		signalGroup(pid, unix.SIGKILL) // the leader ended, as above
	}
	if marker, _ := markerOf(pid); err != nil || st.ticks != ticks || st.zombie() || marker != dir {
		w.close()
		return lost()
	}
	// The record has the start on the driver's clock: on the system's, it
	// is as long ago.
	began := time.Now().Add(-clock.Since(d.opts.Clock, startedAt))
	p := &process{Run: supervise.NewRun(pid, startedAt, began), ticks: ticks}
	stop := context.AfterFunc(d.sup.Context(), w.close)
	d.sup.Go(func() {
		defer stop()
		if !w.wait() { // closed: the driver is closing
			return
		}
		p.finish(runtime.Exit{At: time.Now(), Code: -1, Reason: "ended; its exit status is unknown, as it was started by an earlier socle"})
	})
	return p
}

// stat is what the driver reads of a process (Linux: /proc/<pid>/stat).
type stat struct {
	state byte   // R, S, D, Z, …
	pgid  int    // process group
	ticks uint64 // start time, in clock ticks after boot
}

func (s stat) zombie() bool { return s.state == 'Z' || s.state == 'X' }

// groupMembers returns the processes of process group pgid that have not
// ended.
func groupMembers(pgid int) []int {
	var pids []int
	procs(func(pid int, st stat) {
		if st.pgid == pgid && !st.zombie() {
			pids = append(pids, pid)
		}
	})
	return pids
}

// groupAlive reports whether a process of group pgid has not ended. Zombies
// count as ended: nobody may reap an orphan promptly.
func groupAlive(pgid int) bool {
	if pgid <= 0 || unix.Kill(-pgid, 0) == unix.ESRCH {
		return false
	}
	return len(groupMembers(pgid)) > 0
}

// signalGroup sends sig to process group pgid.
func signalGroup(pgid int, sig unix.Signal) {
	if pgid > 0 {
		_ = unix.Kill(-pgid, sig) // ESRCH: nothing left to signal
	}
}

// killWait bounds the wait for a process group to end after SIGKILL.
const killWait = 5 * time.Second

// terminate ends p and its process group: SIGTERM, then SIGKILL when the
// grace period or ctx ends. It returns once nothing of the group runs, and
// whether SIGKILL was needed. A process that has ended already is left
// alone: its group was killed when it ended (see finish).
func terminate(ctx context.Context, p *process, grace time.Duration) (killed bool, err error) {
	if p.Ended() {
		return false, nil
	}
	p.terminating.Store(true)
	gone := func() bool { return p.Ended() && !groupAlive(p.PID) }
	if sandboxed(p.PID) {
		// bwrap's monitor, the group's leader, would die of SIGTERM at
		// once, and the replica's exit would be lost: SIGTERM goes to the
		// rest of the group (bwrap's init, in its PID namespace, ignores
		// it), and the monitor exits as the replica does.
		for _, pid := range groupMembers(p.PID) {
			if pid != p.PID {
				_ = unix.Kill(pid, unix.SIGTERM)
			}
		}
	} else {
		signalGroup(p.PID, unix.SIGTERM)
	}
	graceT := time.NewTimer(grace)
	defer graceT.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	exited, graceC, done := p.Exited(), graceT.C, ctx.Done()
	var deadline <-chan time.Time
	for !gone() {
		select {
		case <-exited:
			exited = nil // then poll for the rest of the group
			continue
		case <-poll.C:
			continue
		case <-graceC:
		case <-done:
		case <-deadline:
			return killed, fmt.Errorf("process group %d still runs after SIGKILL", p.PID)
		}
		graceC, done = nil, nil
		killed, deadline = true, time.After(killWait)
		signalGroup(p.PID, unix.SIGKILL)
	}
	return killed, nil
}

// sandboxName is whose sandbox a replica runs in: one user per app and
// environment, shared by its releases and replicas.
func sandboxName(ref runtime.Ref) string { return "app:" + ref.App + "." + ref.Env }

// sandboxSpec is the sandbox that runs the file at path (a host path that
// resolve returned) with args: the image is its root, read-only; path is
// named as the sandbox sees it. The marker is in the environment of bwrap,
// whose pid the driver records: it is the group's leader, and the group
// holds the whole sandbox.
func (r *replica) sandboxSpec(path string, args []string) sandbox.Spec {
	inside := path
	if rel, err := filepath.Rel(r.Spec.Root, path); err == nil && filepath.IsLocal(rel) {
		inside = "/" + filepath.ToSlash(rel)
	}
	return sandbox.Spec{
		Name: sandboxName(r.Spec.Ref),
		Argv: slices.Concat([]string{inside}, args),
		Env:  r.env,
		Dir:  filepath.Clean("/" + r.Spec.WorkingDir),
		Root: r.Spec.Root,
	}
}

// resolve returns the file that runs as name: an absolute name or a bare one
// (looked for along the spec's PATH) in the image first, then on the host; a
// relative one from the working directory in the image.
// In a sandbox, a file of the host is found only where the sandbox shows
// it.
func resolve(spec runtime.ReplicaSpec, name string, inSandbox bool) (string, error) {
	var candidates []string
	switch {
	case filepath.IsAbs(name):
		candidates = []string{inRoot(spec.Root, name), name}
	case strings.Contains(name, "/"):
		candidates = []string{inRoot(spec.Root, filepath.Join(spec.WorkingDir, name))}
	default:
		dirs := filepath.SplitList(cmp.Or(spec.Variables["PATH"], defaultPath))
		for _, dir := range dirs {
			candidates = append(candidates, inRoot(spec.Root, filepath.Join(dir, name)))
		}
		for _, dir := range dirs {
			candidates = append(candidates, filepath.Join(dir, name))
		}
	}
	for _, c := range candidates {
		// In a sandbox, the host's files are there only under the system
		// directories that the image lacks.
		if inSandbox && !strings.HasPrefix(c, spec.Root+"/") && !sandbox.Visible(spec.Root, c) {
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%q is not an executable file of the image or of the host", name)
}

// inRoot returns name, a path inside the image, as a path of the host.
func inRoot(root, name string) string {
	return filepath.Join(root, filepath.Clean("/"+name))
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
