package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/server"
)

// billionLaughs is issue 15's bomb: nine anchors, each a list of nine
// aliases to the one before, 9^9 strings once expanded, under keys named
// prefix0…prefix8.
func billionLaughs(prefix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n", prefix)
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "%s%d: &lol%d [%s*lol%d]\n", prefix, i, i, strings.Repeat(fmt.Sprintf("*lol%d, ", i-1), 8), i-1)
	}
	return b.String()
}

// appendBomb appends the bomb to a file of a repository's directory.
func appendBomb(t *testing.T, dir, file string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(billionLaughs("x-lol")); err != nil {
		t.Fatal(err)
	}
}

// commitBomb appends the bomb to a file of the repository's working copy
// and commits it.
func commitBomb(t *testing.T, repo, file string) string {
	t.Helper()
	appendBomb(t, repo, file)
	gitCommit(t, repo, "a billion laughs in "+file)
	return head(t, repo)
}

// peakRSS is a process's peak resident memory (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// waitRefused waits until the status reports sha invalid, with a problem
// about aliases in file; it returns the status.
func (s *socle) waitRefused(t *testing.T, sha, file string) server.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := s.status(t)
		if st.Failing != nil && st.Failing.Revision.SHA == sha {
			for _, p := range st.Failing.Problems {
				if p.File == file && p.Line > 0 && strings.Contains(p.Message, "aliases expand the file past") {
					return st
				}
			}
			t.Fatalf("%s is refused, but not for its aliases: %v", sha[:7], st.Failing.Problems)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was never refused; status %+v\n%s", sha[:7], st.Failing, tail(s.log.String(), 30))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// checkServes checks that the last good revision is in force and that web
// answers with it.
func (s *socle) checkServes(t *testing.T, st server.Status, good string) {
	t.Helper()
	if st.LastGood == nil || st.LastGood.SHA != good {
		t.Errorf("the revision in force is %+v, want the last good one, %s", st.LastGood, good[:7])
	}
	if u, _ := unit(st, "web", "dev"); u.Revision != good || u.Ready != 1 {
		t.Errorf("what ran was disturbed: %+v", u)
	}
	l := startLoad(s.proxyPort, 2)
	time.Sleep(200 * time.Millisecond)
	l.halt()
	if l.failed.Load() != 0 || l.versions[good] == 0 {
		t.Errorf("web: %d ok, %d failed (%q), versions %v", l.ok.Load(), l.failed.Load(), l.failures, l.versions)
	}
}

// TestAliasBomb is issue 15's alias bomb, which took socle past 5 GB and
// kept it from starting. socle starts with the bomb at the head of its
// repository (committed while it was down, so the start reads it), and
// refuses a second one pushed while it runs; each time the last good
// revision keeps serving and socle stays under 200 MB.
func TestAliasBomb(t *testing.T) {
	repo, data := platform(t, "rollout: {strategy: rolling}", 1), t.TempDir()
	s := start(t, repo, data)
	good := head(t, repo)
	s.waitSynced(t, good, 3*time.Minute)
	s.stop(t)

	bomb := commitBomb(t, repo, "socle.yaml")
	s = start(t, repo, data)
	defer s.stop(t)
	st := s.waitRefused(t, bomb, "socle.yaml")
	s.waitSynced(t, good, time.Minute)
	s.checkServes(t, s.status(t), good)
	rss := peakRSS(t, s.cmd.Process.Pid)
	t.Logf("socle's peak RSS after starting with the bomb at the head: %d MB", rss>>20)
	if rss > 200<<20 {
		t.Errorf("socle's peak RSS is %d MB, want under 200", rss>>20)
	}

	bomb = commitBomb(t, repo, "apps/web/score.yaml")
	s.hook(t)
	st = s.waitRefused(t, bomb, "apps/web/score.yaml")
	s.checkServes(t, st, good)
	rss = peakRSS(t, s.cmd.Process.Pid)
	t.Logf("socle's peak RSS after refusing a second bomb while running: %d MB", rss>>20)
	if rss > 200<<20 {
		t.Errorf("socle's peak RSS is %d MB, want under 200", rss>>20)
	}
}

// TestValidateAliasBomb runs `socle validate` on a Score file that holds
// the bomb (it reached 3 GB in 15 s): a clear error, in little memory (the
// process's peak RSS, from its rusage).
func TestValidateAliasBomb(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "platform")
	if err := os.CopyFS(dir, os.DirFS("../../examples/platform")); err != nil {
		t.Fatal(err)
	}
	validate := func() (string, int, int64) { return peakOf(t, socleBin, "validate", dir) }
	_, code, clean := validate()
	if code != 0 {
		t.Fatalf("the demo platform does not validate: exit code %d", code)
	}
	appendBomb(t, dir, "apps/web/score.yaml")
	out, code, rss := validate()
	t.Logf("socle validate's peak RSS: %d MB on the demo platform, %d MB with the bomb", clean>>20, rss>>20)
	if code != 1 || !strings.Contains(out, "apps/web/score.yaml:") || !strings.Contains(out, "aliases expand the file past") {
		t.Errorf("exit code %d, output:\n%s", code, out)
	}
	// The bomb must cost next to nothing beyond reading the platform: the
	// peak of the clean run varies with the machine's load (when the
	// collector runs), so the bound is relative to it, under the 200 MB the
	// issue sets for the server.
	if rss > 200<<20 || rss > clean+64<<20 {
		t.Errorf("socle validate's peak RSS is %d MB (%d MB on the demo platform alone), want under 200 MB and within 64 MB of the demo's", rss>>20, clean>>20)
	}
}

// peakEnv, set, makes the test binary run peakChild instead of the tests.
const peakEnv = "SOCLE_E2E_PEAK_OF"

// peakOf runs a command and returns its output, exit code and peak RSS.
// The command is started by a fresh copy of the test binary (peakChild),
// not by this process: Linux counts in a process's peak RSS (ru_maxrss)
// the memory of the process it was exec'd from, and Go starts commands
// sharing the parent's memory until exec, so a command started from a test
// process of 200 MB reports at least 200 MB whatever it uses itself.
func peakOf(t *testing.T, args ...string) (string, int, int64) {
	t.Helper()
	argv, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), peakEnv+"="+string(argv))
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("measuring %v: %v", args, err)
	}
	var r peakResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("measuring %v: %v: %q", args, err, b)
	}
	return r.Output, r.Code, r.MaxRSS
}

type peakResult struct {
	Output string
	Code   int
	MaxRSS int64 // bytes
}

// peakChild runs the command peakEnv names, and writes a peakResult to
// stdout.
func peakChild() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(peakEnv)), &args); err != nil || len(args) == 0 {
		fmt.Fprintln(os.Stderr, "bad", peakEnv, err)
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r := peakResult{Output: string(out), Code: cmd.ProcessState.ExitCode(), MaxRSS: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 2
	}
	return 0
}
