package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/wiring"
)

// persistedState reads, from the data directory of a socle that is not
// running, what its engine saved of web @ dev.
func persistedState(t *testing.T, data string) store.UnitState {
	t.Helper()
	// Through the wiring, as socle's commands open a data directory's
	// database: the test reads what socle saved, whatever store it is.
	db, err := wiring.OpenDB(t.Context(), filepath.Join(data, wiring.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.Store.UnitState(t.Context(), apps.ID, "web", "dev")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSocleKilledInSecondCanaryStep kills socle with SIGKILL during the
// pause of a canary's second step, under load. What socle persisted says
// the second step, pausing since when it began; socle started again goes
// on with that step and that pause (it never shows the first step again),
// and the rollout ends with the release it had begun, once.
func TestSocleKilledInSecondCanaryStep(t *testing.T) {
	repo, data := platform(t, "rollout:\n  strategy: canary\n  steps: [{weight: 20, pause: 1s}, {weight: 50, pause: 8s}]\n  analysis: {maxErrorRate: 0.05, minRequests: 10}", 2), t.TempDir()
	s := start(t, repo, data)
	first := head(t, repo)
	s.waitSynced(t, first, 3*time.Minute)
	l := startLoad(s.proxyPort, 10)
	defer l.halt()
	commitVersion(t, repo, "a version socle is killed while it rolls out, in its second canary step")
	second := head(t, repo)
	s.hook(t)
	u := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool {
		return u.Operation != nil && u.Operation.Step == 2 && u.Operation.Phase == "Pausing"
	})
	s.kill()
	op := u.Operation
	t.Logf("killed in %s: %s", op.Phase, u.Message)

	st := persistedState(t, data)
	if st.Operation == nil || st.Operation.Step != 1 || st.Operation.Phase != "Pausing" || st.Operation.Release != op.Release ||
		!st.Operation.StepStartedAt.Equal(op.StepStartedAt) || st.Operation.Target.Revision != second {
		t.Fatalf("persisted %+v, want release %d at its second step (index 1), pausing since %s", st.Operation, op.Release, op.StepStartedAt)
	}
	if len(st.Operation.StepData) == 0 {
		t.Errorf("no analysis baseline persisted")
	}

	s = start(t, repo, data)
	defer s.stop(t)
	deadline := time.Now().Add(2 * time.Minute)
	seen := map[int]bool{}
	for {
		u, _ = unit(s.status(t), "web", "dev")
		if o := u.Operation; o != nil {
			seen[o.Step] = true
			if o.Step < 2 || o.Release != op.Release || (o.Step == 2 && !o.StepStartedAt.Equal(op.StepStartedAt)) {
				t.Fatalf("after the restart: %+v, want release %d going on from its second step, pausing since %s", o, op.Release, op.StepStartedAt)
			}
		}
		if u.Phase == api.PhaseSynced && u.Revision == second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not end after the restart: %+v\n%s", u, tail(s.log.String(), 30))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !seen[2] {
		t.Errorf("the second step was never seen after the restart (steps seen: %v)", seen)
	}
	rels := s.releases(t)
	if len(rels) != 2 || rels[0].ID != op.Release || rels[0].Status != store.Succeeded {
		t.Errorf("releases after the restart: %+v, want release %d Succeeded after the first", rels, op.Release)
	}
	if st := persistedState(t, data); st.Operation != nil {
		t.Errorf("an operation is still persisted: %+v", st.Operation)
	}
}

// breakWeb commits a version of web that answers 500 to a third of its
// requests.
func breakWeb(t *testing.T, repo string) {
	t.Helper()
	main := filepath.Join(repo, "apps/web/main.go")
	b, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), `	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
`, `	var n atomic.Int64
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
`, 1)
	bad = strings.Replace(bad, "\t\"os\"\n", "\t\"os\"\n\t\"sync/atomic\"\n", 1)
	if bad == string(b) {
		t.Fatal("could not break main.go")
	}
	if err := os.WriteFile(main, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCommit(t, repo, "web: a version that fails a third of its requests")
}

// TestRolledBackNotRetriedAfterRestart: a canary rolled back by its
// analysis is not rolled out again by socle killed and started again: the
// unit says it was rolled back, what ran before keeps running, and no
// release is recorded; a new commit is rolled out.
func TestRolledBackNotRetriedAfterRestart(t *testing.T) {
	repo, data := platform(t, "rollout:\n  strategy: canary\n  steps: [{weight: 50, pause: 5s}]\n  analysis: {maxErrorRate: 0.05, minRequests: 20}", 2), t.TempDir()
	s := start(t, repo, data)
	good := head(t, repo)
	s.waitSynced(t, good, 3*time.Minute)
	l := startLoad(s.proxyPort, 20)
	breakWeb(t, repo)
	s.hook(t)
	s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Reason == api.ReasonRolledBack })
	l.halt()
	s.kill()
	if st := persistedState(t, data); st.Failed == nil || st.Failed.Release != 2 || st.Operation != nil {
		t.Fatalf("persisted %+v, want release 2's failure and no operation", st)
	}

	restarted := time.Now()
	s = start(t, repo, data)
	defer s.stop(t)
	s.hook(t) // the head again: nothing new, one more pass
	u := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool {
		return u.UpdatedAt.After(restarted) && u.Phase != api.PhasePending
	})
	if u.Phase != api.PhaseFailed || u.Reason != api.ReasonRolledBack || u.Revision != good {
		t.Errorf("after the restart web @ dev is %s (%s) at %s: %s; want the rollback said, the good version running", u.Phase, u.Reason, short7(u.Revision), u.Message)
	}
	rels := s.releases(t)
	if len(rels) != 2 || rels[0].Status != store.RolledBack || rels[1].Status != store.Succeeded {
		t.Fatalf("releases after the restart: %s; want the rolled back one last, and no new one", describe(rels))
	}

	commitVersion(t, repo, "web: a fix")
	fix := head(t, repo)
	s.hook(t)
	s.waitSynced(t, fix, 2*time.Minute)
	if rels := s.releases(t); len(rels) != 3 || rels[0].Status != store.Succeeded {
		t.Errorf("releases after the fix: %s", describe(rels))
	}
}

// TestCommitSupersedesCanaryPause: a commit made while a canary holds a
// pause of ten minutes supersedes it at the next pass: its rollout begins
// within the pause, the canary's release ends Superseded, and its replicas
// stop.
func TestCommitSupersedesCanaryPause(t *testing.T) {
	repo, data := platform(t, "rollout:\n  strategy: canary\n  steps: [{weight: 50, pause: 10m}]", 2), t.TempDir()
	s := start(t, repo, data)
	defer s.stop(t)
	s.waitSynced(t, head(t, repo), 3*time.Minute)
	commitVersion(t, repo, "a version that pauses for ten minutes")
	s.hook(t)
	paused := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Operation != nil && u.Operation.Phase == "Pausing" })
	commitVersion(t, repo, "a version that comes during the pause")
	third := head(t, repo)
	hooked := time.Now()
	s.hook(t)
	u := s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool {
		return u.Operation != nil && u.Operation.Release != paused.Operation.Release
	})
	t.Logf("the new rollout began %s after the hook", time.Since(hooked).Round(time.Millisecond))
	rels := s.releases(t)
	if len(rels) != 3 || rels[1].Status != store.Superseded || rels[0].Revision != third || rels[0].ID != u.Operation.Release {
		t.Fatalf("releases: %s; want the paused canary Superseded by the commit's", describe(rels))
	}
	if end := paused.Operation.StepStartedAt.Add(10 * time.Minute); !rels[0].StartedAt.Before(end) {
		t.Errorf("the new rollout began at %s, after the pause ended (%s)", rels[0].StartedAt, end)
	}
	old := fmt.Sprintf("r%d", paused.Operation.Release)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		u, _ = unit(s.status(t), "web", "dev")
		gone := true
		for _, r := range u.Replicas {
			if r.Release == old {
				gone = false
			}
		}
		if gone {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Errorf("the superseded canary's replicas still run: %+v", u.Replicas)
}
