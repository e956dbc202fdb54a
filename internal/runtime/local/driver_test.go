package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
	"github.com/socle-dev/socle/internal/sandbox"
)

// The test binary runs as the socle stand-in of TestReattachAfterKill9 when
// hostEnv names a state directory.
const (
	hostEnv  = "SOCLE_LOCAL_TEST_HOST"
	imageEnv = "SOCLE_LOCAL_TEST_IMAGE"
)

var (
	testRoot string // every test's state directory is under it
	image    string // the image root: a directory holding the test server
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(hostEnv); dir != "" {
		image = os.Getenv(imageEnv)
		os.Exit(runHost(dir))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if testRoot, err = os.MkdirTemp("", "socle-local-test-"); err == nil {
		// The sandboxes run as users of their own when the tests run as
		// root: they must reach the image.
		err = os.Chmod(testRoot, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(testRoot)
	image = filepath.Join(testRoot, "image")
	if err := os.Mkdir(image, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := runtimetest.BuildServer(image); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	// Whatever a test left running is a leak of the driver or of the test.
	procs(func(pid int, st stat) {
		if dir, ok := markerOf(pid); ok && strings.HasPrefix(dir, testRoot+"/") && !st.zombie() {
			fmt.Fprintf(os.Stderr, "left running: pid %d of replica %s\n", pid, dir)
			signalGroup(st.pgid, unix.SIGKILL)
			code = 1
		}
	})
	return code
}

// imageDir returns a new directory for an image, which a sandbox's own
// user can reach (t.TempDir's parent is searchable by root alone).
func imageDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// isBwrap reports whether pid is a process of bwrap (its monitor outside
// the sandbox, or the init inside): the sandbox around a replica.
func isBwrap(pid int) bool {
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return string(comm) == "bwrap\n"
}

// server returns the spec of the test server run with args.
func server(args ...string) runtime.ReplicaSpec {
	return runtime.ReplicaSpec{Root: image, Command: []string{"/testserver"}, Args: args}
}

// stateDir returns a new state directory.
func stateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(testRoot, "state-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// open returns a driver over dir that is stopped and closed at the end of
// the test.
func open(t *testing.T, dir string, opts Options) *Driver {
	t.Helper()
	opts.StateDir = dir
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := d.StopAll(context.Background()); err != nil && !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("StopAll: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Open: func(t *testing.T) (runtime.Driver, func() runtime.Driver) {
			dir := stateDir(t)
			return open(t, dir, Options{}), func() runtime.Driver { return open(t, dir, Options{}) }
		},
		Server: func(_ *testing.T, args ...string) runtime.ReplicaSpec { return server(args...) },
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startReady(t *testing.T, d runtime.Driver, spec runtime.ReplicaSpec) runtime.Status {
	t.Helper()
	ctx := testContext(t)
	h, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return waitFor(t, d, h, "ready", runtime.IsReady)
}

func waitFor(t *testing.T, d runtime.Driver, h runtime.Handle, what string, cond func(runtime.Status) bool) runtime.Status {
	t.Helper()
	st, err := runtime.WaitFor(testContext(t), d, h, cond)
	if err != nil {
		t.Fatalf("waiting until %s: %v", what, err)
	}
	return st
}

// get returns the body of GET path from the replica, or an error.
func get(st runtime.Status, path string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + st.Ports[0].Address + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// running reports whether pid runs and is not a zombie.
func running(pid int) bool {
	st, err := readStat(pid)
	return err == nil && !st.zombie()
}

func TestKill9OfReplicaRestartsIt(t *testing.T) {
	t.Parallel()
	d := open(t, stateDir(t), Options{})
	st := startReady(t, d, runtimetest.Spec(server("-child"), 0))
	members := groupMembers(st.PID)
	if err := unix.Kill(st.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	now := waitFor(t, d, st.Handle, "restarted", func(s runtime.Status) bool { return s.Restarts == 1 && s.Ready })
	for _, pid := range members {
		if running(pid) {
			t.Errorf("pid %d of the killed replica's group still runs", pid)
		}
	}
	if now.PID == st.PID || now.Ports[0].Address != st.Ports[0].Address {
		t.Errorf("after restart: pid %d at %s, want a new pid at %s", now.PID, now.Ports[0].Address, st.Ports[0].Address)
	}
	if e := now.LastExit; e == nil || e.Signal != "SIGKILL" || e.Code != -1 {
		t.Errorf("LastExit = %+v, want killed by SIGKILL", e)
	}
	if _, err := get(now, "/id"); err != nil {
		t.Errorf("the restarted replica does not answer: %v", err)
	}
}

func TestStopLeavesNothingOfTheGroup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		grace  time.Duration
		killed bool
	}{
		// A group that ends on SIGTERM ends well within 10 s, even on
		// a loaded machine (300 ms was passed once under -race); one that
		// ignores it is killed when the grace period is over.
		{"graceful", []string{"-child"}, 10 * time.Second, false},
		{"ignoring SIGTERM", []string{"-child", "-ignore-term"}, 300 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := open(t, stateDir(t), Options{})
			spec := runtimetest.Spec(server(tc.args...), 0)
			spec.GracePeriod = tc.grace
			st := startReady(t, d, spec)
			members := slices.DeleteFunc(groupMembers(st.PID), isBwrap)
			if len(members) != 2 {
				t.Fatalf("group %d has %v, want the server and its child", st.PID, members)
			}
			events := d.Watch(testContext(t))
			if err := d.Stop(testContext(t), st.Handle); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			for _, pid := range members {
				if running(pid) {
					t.Errorf("pid %d of the group still runs", pid)
				}
			}
			if left := groupMembers(st.PID); len(left) > 0 {
				t.Errorf("group %d still has %v", st.PID, left)
			}
			for ev := range events {
				if ev.Type == runtime.EventStopped {
					if killed := strings.Contains(ev.Message, "SIGKILL"); killed != tc.killed {
						t.Errorf("Stopped: %q, want killed=%v", ev.Message, tc.killed)
					}
					break
				}
			}
			if _, err := os.Stat(filepath.Join(d.opts.StateDir, replicasDir, st.Handle.ID)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the replica's directory remains: %v", err)
			}
		})
	}
}

func TestLogRotation(t *testing.T) {
	t.Parallel()
	const size, keep = 16 << 10, 2
	d := open(t, stateDir(t), Options{LogSize: size, LogFiles: keep})
	st := startReady(t, d, runtimetest.Spec(server("-spam", "100"), 0))
	path := d.logPath(st.Handle.ID)

	follow, err := d.Logs(testContext(t), st.Handle, true)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	// Until the logs have rotated more often than they are kept, the
	// followed lines come in order, across rotations.
	sc := bufio.NewScanner(follow)
	last := -1
	for sc.Scan() {
		if n, ok := lineNumber(sc.Text()); ok {
			if n <= last {
				t.Fatalf("followed line %d after %d", n, last)
			}
			last = n
		}
		if _, err := os.Stat(rotated(path, keep)); err == nil {
			break
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("following: %v", err)
	}
	if _, err := os.Stat(rotated(path, keep+1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("more than %d rotated logs: %v", keep, err)
	}
	for n := 1; n <= keep; n++ {
		if fi, err := os.Stat(rotated(path, n)); err != nil || fi.Size() < size {
			t.Errorf("rotated log %d: %v, want at least %d bytes", n, err, size)
		}
	}

	// Everything kept reads in order, oldest first.
	rc, err := d.Logs(testContext(t), st.Handle, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc = bufio.NewScanner(rc)
	last, lines := -1, 0
	for sc.Scan() {
		if n, ok := lineNumber(sc.Text()); ok {
			if n <= last {
				t.Fatalf("line %d after %d", n, last)
			}
			last, lines = n, lines+1
		}
	}
	if lines < 2*size/100 {
		t.Errorf("read %d lines of the kept logs, want more than the rotated ones hold", lines)
	}
}

// lineNumber parses the test server's "line 000042 xxx".
func lineNumber(s string) (int, bool) {
	f := strings.Fields(s)
	if len(f) < 2 || f[0] != "line" {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

func TestReattachAfterKill9(t *testing.T) {
	t.Parallel()
	dir := stateDir(t)
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), hostEnv+"="+dir, imageEnv+"="+image)
	host.Stderr = t.Output()
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	var before []runtime.Status
	if err := json.NewDecoder(out).Decode(&before); err != nil {
		host.Process.Kill()
		host.Wait()
		t.Fatalf("reading the host's replicas: %v", err)
	}
	if err := host.Process.Kill(); err != nil { // kill -9 of socle
		t.Fatal(err)
	}
	_ = host.Wait()

	// While socle is down, replica 2 dies too.
	lost := before[2]
	if err := unix.Kill(lost.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for running(lost.PID) {
		time.Sleep(10 * time.Millisecond)
	}
	ids := map[int]string{}
	for _, st := range before[:2] {
		id, err := get(st, "/id")
		if err != nil {
			t.Fatalf("replica %d does not answer with socle dead: %v", st.Ref.Index, err)
		}
		ids[st.Ref.Index] = id
	}

	d := open(t, dir, Options{})
	list, err := d.List(testContext(t))
	if err != nil || len(list) != len(before) {
		t.Fatalf("List = %+v, %v; want %d replicas", list, err, len(before))
	}
	for i, st := range list {
		want := runtime.Detached
		if i == 2 {
			want = runtime.Lost
		}
		if st.Handle != before[i].Handle || st.State != want || (want == runtime.Detached && st.PID != before[i].PID) {
			t.Errorf("replica %d: %s pid %d, want %s pid %d", i, st.State, st.PID, want, before[i].PID)
		}
	}
	// Replica 3 is not wanted any more: stopped without being recovered.
	if err := d.Stop(testContext(t), before[3].Handle); err != nil {
		t.Fatalf("Stop of a detached replica: %v", err)
	}
	if running(before[3].PID) {
		t.Errorf("the detached replica still runs after Stop")
	}
	for _, st := range before[:3] {
		if err := d.Recover(testContext(t), st.Handle); err != nil {
			t.Fatalf("Recover: %v", err)
		}
	}
	for _, st := range before[:2] {
		now := waitFor(t, d, st.Handle, "ready", runtime.IsReady)
		id, err := get(now, "/id")
		if now.PID != st.PID || now.Restarts != 0 || err != nil || id != ids[st.Ref.Index] {
			t.Errorf("replica %d: pid %d, %d restarts, id %q (%v); want it untouched", st.Ref.Index, now.PID, now.Restarts, id, err)
		}
	}
	now := waitFor(t, d, lost.Handle, "started again", func(s runtime.Status) bool { return s.Ready && s.Restarts == 1 })
	if now.LastExit == nil || now.LastExit.Reason != lostReason {
		t.Errorf("LastExit = %+v, want %q", now.LastExit, lostReason)
	}
	if marked := findMarked(dir + "/"); len(marked) != 3 {
		t.Errorf("%d processes of the state directory run, want 3: %v", len(marked), marked)
	}

	if err := d.StopAll(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if marked := findMarked(dir + "/"); len(marked) != 0 {
		t.Errorf("processes left after StopAll: %v", marked)
	}
	for _, st := range before {
		if left := groupMembers(st.PID); len(left) > 0 {
			t.Errorf("group %d still has %v", st.PID, left)
		}
	}
}

// runHost is socle in TestReattachAfterKill9: it starts four replicas on
// dir, prints their statuses once they are ready, and waits to be killed.
func runHost(dir string) int {
	ctx := context.Background()
	d, err := New(Options{StateDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var sts []runtime.Status
	for i := range 4 {
		h, err := d.Start(ctx, runtimetest.Spec(server(), i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		st, err := runtime.WaitFor(ctx, d, h, runtime.IsReady)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		sts = append(sts, st)
	}
	if err := json.NewEncoder(os.Stdout).Encode(sts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {}
}

func TestReusedPIDIsNotAdopted(t *testing.T) {
	t.Parallel()
	// The recorded pid is another process's now: one with the replica's
	// marker but another start time, or one with the recorded start time
	// (counted in 10ms ticks) but no marker.
	for _, tc := range []struct {
		name      string
		marker    bool
		sameTicks bool
	}{
		{"other start time", true, false},
		{"no marker", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := stateDir(t)
			d := open(t, dir, Options{})
			st := startReady(t, d, runtimetest.Spec(server(), 0))
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			signalGroup(st.PID, unix.SIGKILL)
			for running(st.PID) {
				time.Sleep(10 * time.Millisecond)
			}
			replicaDir := filepath.Join(dir, replicasDir, st.Handle.ID)
			time.Sleep(20 * time.Millisecond) // a tick later at least
			other := exec.Command("sleep", "60")
			if tc.marker {
				other.Env = []string{markerVar + "=" + replicaDir}
			}
			if err := other.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { other.Process.Kill(); other.Wait() }()
			b, err := os.ReadFile(filepath.Join(replicaDir, recordName))
			if err != nil {
				t.Fatal(err)
			}
			var rec record
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			rec.PID = other.Process.Pid
			if tc.sameTicks {
				ost, err := readStat(rec.PID)
				if err != nil {
					t.Fatal(err)
				}
				rec.StartTicks = ost.ticks
			}
			if b, err = json.Marshal(rec); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(replicaDir, recordName), b, 0o600); err != nil {
				t.Fatal(err)
			}

			d2 := open(t, dir, Options{})
			now, err := d2.Status(testContext(t), st.Handle)
			if err != nil || now.State != runtime.Lost {
				t.Fatalf("Status = %s, %v; want Lost", now.State, err)
			}
			if err := d2.Stop(testContext(t), st.Handle); err != nil {
				t.Fatal(err)
			}
			if !running(other.Process.Pid) {
				t.Errorf("Stop killed the process that reused the pid")
			}
		})
	}
}

func TestStartRefusesWhatCannotRunHere(t *testing.T) {
	t.Parallel()
	root := imageDir(t)
	b, err := os.ReadFile(filepath.Join(image, "testserver"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := hostMachine + 1 // e_machine, at offset 18, little-endian
	b[18], b[19] = byte(foreign), byte(foreign>>8)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("foreign", b)
	write("text", []byte("not a program\n"))
	server, err := os.ReadFile(filepath.Join(image, "testserver"))
	if err != nil {
		t.Fatal(err)
	}
	write("testserver", server)
	write("script", []byte("#!/bin/sh\ncd \"$(dirname \"$0\")\" && exec ./testserver\n"))
	d := open(t, stateDir(t), Options{})
	for _, tc := range []struct{ command, want string }{
		{"/foreign", "built for"},
		{"/text", "neither an ELF executable nor a script"},
		{"/missing", "not an executable file"},
	} {
		spec := runtimetest.Spec(runtime.ReplicaSpec{Root: root, Command: []string{tc.command}}, 0)
		_, err := d.Start(testContext(t), spec)
		if !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start %s = %v, want ErrInvalid saying %q", tc.command, err, tc.want)
		}
	}
	// A script runs, with the host's interpreter.
	startReady(t, d, runtimetest.Spec(runtime.ReplicaSpec{Root: root, Command: []string{"/script"}}, 0))
}

func TestStateDirectoryIsLocked(t *testing.T) {
	t.Parallel()
	dir := stateDir(t)
	open(t, dir, Options{})
	if _, err := New(Options{StateDir: dir}); !errors.Is(err, ErrStateLocked) {
		t.Errorf("second New = %v, want ErrStateLocked", err)
	}
}

// TestCommandLineNamesTheReplica: ps tells replicas of one image apart, as
// their command line starts with the replica's name; the program still runs
// with its arguments, and a script (which the kernel hands its path, not
// argv[0]) still finds itself through $0.
func TestCommandLineNamesTheReplica(t *testing.T) {
	// An image whose entrypoint is a script next to the test server.
	script := imageDir(t)
	data, err := os.ReadFile(filepath.Join(image, "testserver"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(script, "testserver"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	run := "#!/bin/sh\ncd \"$(dirname \"$0\")\" && exec ./testserver \"$@\"\n"
	if err := os.WriteFile(filepath.Join(script, "run.sh"), []byte(run), 0o755); err != nil {
		t.Fatal(err)
	}

	// The title is that of a plain process: in a sandbox, the command
	// line is bwrap's, which names the image's files.
	d := open(t, stateDir(t), Options{Sandbox: sandbox.Off()})
	program := runtimetest.Spec(server("-ready=true"), 1)
	program.Ref.App, program.Ref.Release = "web", "r3"
	st := startReady(t, d, program)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"), []string{"socle:web.test/r3/1 /testserver", "-ready=true"}; !slices.Equal(got, want) {
		t.Errorf("command line %q, want %q", got, want)
	}
	if body, err := get(st, "/env?name=GREETING"); err != nil || body != "hello" {
		t.Errorf("the program answers %q, %v", body, err)
	}

	sh := runtimetest.Spec(runtime.ReplicaSpec{Root: script, Command: []string{"/run.sh"}, Args: []string{"-ready=true"}}, 0)
	sh.Ref.App = "script"
	st = startReady(t, d, sh)
	if body, err := get(st, "/env?name=GREETING"); err != nil || body != "hello" {
		t.Errorf("the script's program answers %q, %v", body, err)
	}
}

// A replica's start is dated by the driver's clock: socle measures the
// progress deadline from it with its own clock, which a test moves, so a
// start dated by the system's time would look hours old after a move.
func TestStartedAtIsTheClocks(t *testing.T) {
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	d := open(t, stateDir(t), Options{Clock: clock.NewFake(at)})
	st := startReady(t, d, runtimetest.Spec(server("-ready=true"), 1))
	if !st.StartedAt.Equal(at) {
		t.Errorf("StartedAt = %v, want the clock's %v", st.StartedAt, at)
	}
}

// A start that failed (the program is gone when the replica is to start
// again) is dated by the driver's clock too: the replica is Starting with
// it until its supervisor takes the failure, and the progress deadline
// reads it meanwhile.
func TestStartedAtOfAFailedStartIsTheClocks(t *testing.T) {
	t.Parallel()
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	root := imageDir(t)
	b, err := os.ReadFile(filepath.Join(image, "testserver"))
	if err != nil {
		t.Fatal(err)
	}
	program := filepath.Join(root, "testserver")
	if err := os.WriteFile(program, b, 0o755); err != nil {
		t.Fatal(err)
	}
	d := open(t, stateDir(t), Options{Clock: clock.NewFake(at)})
	h, err := d.Start(testContext(t), runtimetest.Spec(runtime.ReplicaSpec{Root: root, Command: []string{"/testserver"}, Args: []string{"-exit", "3"}}, 0))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// The process runs from its own copy: every start after this one fails.
	if err := os.Remove(program); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, d, h, "a start that failed", func(st runtime.Status) bool {
		return st.LastExit != nil && strings.HasPrefix(st.LastExit.Reason, "could not start")
	})
	if !st.StartedAt.Equal(at) {
		t.Errorf("StartedAt = %v, want the clock's %v", st.StartedAt, at)
	}
}
