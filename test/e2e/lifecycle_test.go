package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// TestFailedBuildLeavesWhatRuns commits code that does not compile: the
// status says the build failed, with the compiler's words, and the version
// that ran keeps serving.
func TestFailedBuildLeavesWhatRuns(t *testing.T) {
	repo, data := platform(t, "rollout: {strategy: rolling}", 1), t.TempDir()
	s := start(t, repo, data)
	defer s.stop(t)
	good := head(t, repo)
	s.waitSynced(t, good, 3*time.Minute)
	main := filepath.Join(repo, "apps/web/main.go")
	b, _ := os.ReadFile(main)
	os.WriteFile(main, append(b, []byte("\nfunc broken() { undefinedThing() }\n")...), 0o644)
	gitCommit(t, repo, "web: does not compile")
	s.hook(t)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		u, _ := unit(s.status(t), "web", "dev")
		if u.Phase == "Failed" {
			if u.Reason != api.ReasonBuildFailed || !strings.Contains(u.Message, "build of") || strings.Contains(u.Message, "\n") {
				t.Errorf("the status does not say in one line that the build failed: %s %q", u.Reason, u.Message)
			}
			if !strings.Contains(u.LogTail, "undefined: undefinedThing") {
				t.Errorf("the status does not carry the build log's tail: %q", u.LogTail)
			}
			if u.Revision != good || u.Ready != 1 {
				t.Errorf("what ran was disturbed: %+v", u)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed build never showed: %+v", u)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l := startLoad(s.proxyPort, 5)
	time.Sleep(200 * time.Millisecond)
	l.halt()
	if l.failed.Load() != 0 || l.versions[good] == 0 {
		t.Errorf("after the failed build: %d ok, %d failed (%q), versions %v\n%s", l.ok.Load(), l.failed.Load(), l.failures[:1], l.versions, tail(s.log.String(), 30))
	}
}

// TestStopAndKeepRunning: SIGTERM stops the apps gracefully; with
// --keep-running they keep serving and the next socle re-attaches to the same
// processes instead of starting new ones.
func TestStopAndKeepRunning(t *testing.T) {
	repo, data := platform(t, "rollout: {strategy: rolling}", 2), t.TempDir()
	s := start(t, repo, data, "--keep-running")
	rev := head(t, repo)
	u := s.waitSynced(t, rev, 3*time.Minute)
	var pids []int
	for _, r := range u.Replicas {
		pids = append(pids, r.PID)
	}
	s.stop(t)
	if got := replicaProcesses(t, data); len(got) != 2 {
		t.Fatalf("with --keep-running, %d replicas run after socle stopped, want 2", len(got))
	}
	s = start(t, repo, data)
	u = s.waitSynced(t, rev, time.Minute)
	for _, r := range u.Replicas {
		if !slices.Contains(pids, r.PID) {
			t.Errorf("replica %s runs as pid %d, not one of the adopted %v", r.Name, r.PID, pids)
		}
	}
	if n := len(s.releases(t)); n != 1 {
		t.Errorf("%d releases after re-attaching, want 1", n)
	}
	s.stop(t)
	if got := replicaProcesses(t, data); len(got) != 0 {
		t.Errorf("socle stopped without --keep-running, yet %d replicas run: %v", len(got), got)
	}
}
