package server

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

// TestPinnedAppWhateverItsRuntimes: the app of a revision pinned earlier is
// read even where that revision's runtime blocks do not validate today (a
// type socle no longer has): it runs with the blocks in force.
func TestPinnedAppWhateverItsRuntimes(t *testing.T) {
	t.Parallel()
	repo := gitRepo(t)
	const sandbox = "runtime: {type: local}\n    sync: auto\n    prune: false"
	commit(t, repo, "socle.yaml", sandbox, strings.Replace(sandbox, "local", "terraform", 1), "sandbox on terraform")
	out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	old := strings.TrimSpace(string(out))
	commit(t, repo, "socle.yaml", strings.Replace(sandbox, "local", "terraform", 1), sandbox, "sandbox back on local")

	s := start(t, repo, t.TempDir())
	defer s.stop()
	fsys, err := s.repo.Files(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, ps := s.load(fsys); ps.Errors() == 0 {
		t.Fatalf("revision %s validates: the test needs one that does not", old[:7])
	}
	if a := s.pipeline.AppAt("web", old); a == nil || a.Name != "web" || a.Config.Owner == "" {
		t.Errorf("web at %s = %+v, want the app with its socle.yaml", old[:7], a)
	}
}

// TestPipelineChecksRuntimeBlocks: a commit whose runtime block does not
// decode fails in the revision pipeline with the problems socle validate
// prints for the same files (file, line and field), and the last good
// revision stays in force.
func TestPipelineChecksRuntimeBlocks(t *testing.T) {
	t.Parallel()
	repo := gitRepo(t)
	s := start(t, repo, t.TempDir())
	defer s.stop()
	good := s.waitFor(t, "the first revision", func(st Status) bool { return st.LastGood != nil && st.LastPlan != nil }).LastGood.SHA

	const sandbox = "runtime: {type: local}\n    sync: auto\n    prune: false"
	commit(t, repo, "socle.yaml", sandbox, "runtime: {type: kubernetes, context: kind, namespace: Sand_Box, replicas: 2}\n    sync: auto\n    prune: false", "sandbox on kubernetes")
	s.hook(t)
	st := s.waitFor(t, "the bad runtime block", func(st Status) bool { return st.Failing != nil })

	// socle validate loads the working tree with the same runtime types.
	_, want := wiring.Load(os.DirFS(repo), wiring.Runtimes(wiring.RuntimeOptions{}))
	if want.Errors() == 0 {
		t.Fatal("socle validate finds nothing wrong: the test needs a bad block")
	}
	got := make([]string, len(st.Failing.Problems))
	for i, p := range st.Failing.Problems {
		got[i] = spec.Problem(p).String()
	}
	wantS := make([]string, len(want))
	for i, p := range want {
		wantS[i] = p.String()
	}
	if !slices.Equal(got, wantS) {
		t.Errorf("pipeline problems:\n%s\nsocle validate's:\n%s", strings.Join(got, "\n"), strings.Join(wantS, "\n"))
	}
	for _, field := range []string{`socle.yaml:78:`, `environments[3].runtime.replicas: unknown field "replicas"`, `environments[3].runtime.namespace`} {
		if !strings.Contains(strings.Join(got, "\n"), field) {
			t.Errorf("pipeline problems lack %q:\n%s", field, strings.Join(got, "\n"))
		}
	}
	if st.LastGood == nil || st.LastGood.SHA != good {
		t.Errorf("in force: %+v, want %s, the last good revision", st.LastGood, good[:7])
	}
}
