package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/store"
)

var strategies = []struct{ name, rollout string }{
	{"rolling", "rollout: {strategy: rolling, maxSurge: 1, maxUnavailable: 0}"},
	{"blueGreen", "rollout: {strategy: blueGreen}"},
	{"canary", "rollout:\n  strategy: canary\n  steps: [{weight: 20, pause: 300ms}, {weight: 50, pause: 300ms}]\n  analysis: {maxErrorRate: 0.01, minRequests: 10}"},
}

var rolloutsFlag = flag.Int("rollouts", 0, "rollouts per strategy of the zero-downtime tests (0: 20 on the local runtime, 5 on the container runtime, 3 with -short)")

// TestZeroDowntimeRollouts rolls out new versions of web, each built from a
// new commit, under steady load from 50 concurrent clients, for each
// strategy: no request may fail, and every answer comes from a version that
// was committed.
func TestZeroDowntimeRollouts(t *testing.T) {
	zeroDowntimeRollouts(t, "local")
}

// zeroDowntimeRollouts is TestZeroDowntimeRollouts on a runtime of
// replicas behind socle's proxy.
func zeroDowntimeRollouts(t *testing.T, runtimeType string) {
	rollouts := 20
	if runtimeType != "local" {
		// A container rollout takes seconds (podman create, start,
		// probes): the suite runs 5 a strategy, -rollouts 20 measures.
		rollouts = 5
	}
	if testing.Short() {
		rollouts = 3
	}
	if *rolloutsFlag > 0 {
		rollouts = *rolloutsFlag
	}
	for _, st := range strategies {
		t.Run(st.name, func(t *testing.T) {
			repo, data := platformOn(t, runtimeType, st.rollout, 2), t.TempDir()
			s := start(t, repo, data)
			defer s.stop(t)
			revs := []string{head(t, repo)}
			s.waitSynced(t, revs[0], 3*time.Minute)

			l := startLoad(s.proxyPort, 50)
			began := time.Now()
			for i := 1; i <= rollouts; i++ {
				commitVersion(t, repo, fmt.Sprintf("%s rollout %d", st.name, i))
				revs = append(revs, head(t, repo))
				s.hook(t)
				s.waitSynced(t, revs[i], 2*time.Minute)
			}
			l.halt()
			took := time.Since(began)

			t.Logf("%s on %s: %d rollouts in %s, %d requests served, %d failed", st.name, runtimeType, rollouts, took.Round(time.Millisecond), l.ok.Load(), l.failed.Load())
			if n := l.failed.Load(); n != 0 {
				t.Errorf("%d requests failed during %s rollouts; first: %q", n, st.name, l.failures)
			}
			if l.ok.Load() < int64(rollouts)*50 {
				t.Errorf("only %d requests got through: the load did not run", l.ok.Load())
			}
			for v := range l.versions {
				if !slices.Contains(revs, v) {
					t.Errorf("an answer came from version %s, which was never committed", v)
				}
			}
			if l.versions[revs[len(revs)-1]] == 0 {
				t.Errorf("no answer came from the last version")
			}
			rels := s.releases(t)
			if len(rels) != rollouts+1 {
				t.Errorf("%d releases recorded, want %d", len(rels), rollouts+1)
			}
			for _, r := range rels {
				if r.Status != store.Succeeded || r.Strategy != st.name {
					t.Errorf("release %d: %s %s (%s)", r.ID, r.Strategy, r.Status, r.Reason)
				}
			}
		})
	}
}

// TestCanaryRollsBack deploys a version that answers 500 to a third of its
// requests: the canary analysis rolls it back, the release says why, and
// the clients see an error rate within the configured threshold.
func TestCanaryRollsBack(t *testing.T) {
	repo, data := platform(t, "rollout:\n  strategy: canary\n  steps: [{weight: 10, pause: 5s}, {weight: 50, pause: 5s}]\n  analysis: {maxErrorRate: 0.05, minRequests: 20}", 2), t.TempDir()
	s := start(t, repo, data)
	defer s.stop(t)
	good := head(t, repo)
	s.waitSynced(t, good, 3*time.Minute)

	l := startLoad(s.proxyPort, 50)
	breakWeb(t, repo)
	s.hook(t)

	deadline := time.Now().Add(2 * time.Minute)
	var rel store.Release
	for time.Now().Before(deadline) {
		rels := s.releases(t)
		if len(rels) == 2 && rels[0].Status.Final() {
			rel = rels[0]
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.halt()
	if rel.Status != store.RolledBack || !strings.Contains(rel.Reason, "canary error rate") {
		t.Fatalf("the bad release ended %q (%s), want RolledBack because of its error rate\n%s", rel.Status, rel.Reason, tail(s.log.String(), 30))
	}
	t.Logf("rolled back: %s", rel.Reason)
	u, _ := unit(s.status(t), "web", "dev")
	if u.Revision != good || u.Phase != api.PhaseFailed || u.Reason != api.ReasonRolledBack || !strings.Contains(u.Message, "rolledback") {
		t.Errorf("after the rollback web @ dev is %s at %s: %s", u.Phase, u.Revision, u.Message)
	}
	total := l.ok.Load() + l.failed.Load()
	rate := float64(l.failed.Load()) / float64(total)
	t.Logf("clients: %d requests, %d failed (%.2f%%)", total, l.failed.Load(), 100*rate)
	if rate > 0.05 {
		t.Errorf("clients saw %.2f%% errors, above the 5%% threshold", 100*rate)
	}
	for v := range l.versions {
		if v != good && v != head(t, repo) {
			t.Errorf("unknown version %s", v)
		}
	}
}

// TestReplicaKilled kills a replica with SIGKILL under load: it is started
// again, and no client sees a failure (the proxy retries on the other one).
func TestReplicaKilled(t *testing.T) {
	repo, data := platform(t, "rollout: {strategy: rolling}", 2), t.TempDir()
	s := start(t, repo, data)
	defer s.stop(t)
	rev := head(t, repo)
	u := s.waitSynced(t, rev, 3*time.Minute)
	l := startLoad(s.proxyPort, 50)
	time.Sleep(300 * time.Millisecond)
	victim := u.Replicas[0]
	if victim.PID == 0 {
		t.Fatal("no PID in the replica's status")
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		u, _ = unit(s.status(t), "web", "dev")
		if u.Phase == "Synced" && u.Replicas[0].PID != victim.PID && u.Replicas[0].Restarts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed replica was not replaced: %+v", u)
		}
		time.Sleep(25 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	l.halt()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed after a replica was killed: %q", n, l.failures)
	}
	t.Logf("%d requests, 0 failed; replica %s restarted (pid %d → %d)", l.ok.Load(), victim.Name, victim.PID, u.Replicas[0].PID)
}

// TestSocleKilledMidRollout kills socle with SIGKILL while a rollout is in
// progress, then starts it again: it converges on the new version, leaves no
// process behind, and records no release twice.
func TestSocleKilledMidRollout(t *testing.T) {
	repo, data := platform(t, "rollout:\n  strategy: canary\n  steps: [{weight: 50, pause: 3s}]", 2), t.TempDir()
	s := start(t, repo, data)
	first := head(t, repo)
	s.waitSynced(t, first, 3*time.Minute)
	commitVersion(t, repo, "a version socle is killed while rolling out")
	second := head(t, repo)
	s.hook(t)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		u, _ := unit(s.status(t), "web", "dev")
		if u.Phase == "Progressing" && strings.Contains(u.Message, "canary") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout never got to its canary: %+v", u)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.kill()
	// The replicas keep serving while socle is down.
	if out := replicaProcesses(t, data); len(out) < 2 {
		t.Errorf("after socle was killed only %d replicas run", len(out))
	}

	s = start(t, repo, data)
	defer s.stop(t)
	u := s.waitSynced(t, second, 2*time.Minute)
	rels := s.releases(t)
	seen := map[string]bool{}
	for _, r := range rels {
		k := r.Revision + r.Artifact + r.ConfigHash
		if seen[k] {
			t.Errorf("release target %s recorded twice", r.Revision[:7])
		}
		seen[k] = true
	}
	if len(rels) != 2 || rels[0].Status != store.Succeeded {
		t.Errorf("releases after the restart: %+v", rels)
	}
	procs := replicaProcesses(t, data)
	if len(procs) != len(u.Replicas) {
		t.Errorf("%d replica processes run, want %d: %v", len(procs), len(u.Replicas), procs)
	}
	for _, r := range u.Replicas {
		if !slices.Contains(procs, r.PID) {
			t.Errorf("replica %s (pid %d) is not among the running processes %v", r.Name, r.PID, procs)
		}
	}
}

// replicaProcesses lists the live processes that the local runtime started
// for this data directory: they carry its replica marker in their
// environment.
func replicaProcesses(t *testing.T, data string) []int {
	t.Helper()
	abs, _ := filepath.Abs(data)
	marker := []byte("SOCLE_LOCAL_REPLICA=" + abs + string(filepath.Separator))
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, marker) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			continue // a zombie: ended, not yet reaped
		}
		pids = append(pids, pid)
	}
	return pids
}
