package server

import (
	"os/exec"
	"strings"
	"testing"
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
	if a := s.appAt("web", old); a == nil || a.Name != "web" || a.Config.Owner == "" {
		t.Errorf("web at %s = %+v, want the app with its socle.yaml", old[:7], a)
	}
}
