package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// allowPush lets a push update the checked-out branch of a working copy, as
// Init does.
func allowPush(t *testing.T, dir string) {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Raw.Section("receive").SetOption("denyCurrentBranch", "updateInstead")
	if err := repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

// cleanWorkTree fails unless the working copy at dir has no change against
// its head, for go-git and, if installed, for git.
func cleanWorkTree(t *testing.T, dir string) {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	st, err := wt.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsClean() {
		t.Errorf("go-git status of %s:\n%s", dir, st)
	}
	if gitCmd(dir, nil, "version").Run() == nil {
		if out := runGit(t, dir, "status", "--porcelain"); out != "" {
			t.Errorf("git status of %s:\n%s", dir, out)
		}
		runGit(t, dir, "fsck", "--strict", "--no-progress")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCommitLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mk := range makers {
		t.Run(mk.name, func(t *testing.T) {
			t.Parallel()
			up := mk.new(t, "main")
			first := up.Commit(t, "first", firstTree)
			allowPush(t, up.Dir())
			r := open(t, up.Dir())

			rev, err := r.Commit(ctx, Change{
				Files: map[string][]byte{
					"releases/dev.yaml": []byte("web: 1.2.3\n"),
					"apps/web/build.sh": []byte("#!/bin/sh\necho v2\n"),
				},
				Delete:  []string{"stacks", "not/there"},
				Author:  "socle",
				Email:   "socle@example.com",
				Message: "  promote web 1.2.3 to dev\n\nby ada\n",
				Parent:  first[:7],
			})
			if err != nil {
				t.Fatal(err)
			}
			if rev.Subject() != "promote web 1.2.3 to dev" || rev.Author != "socle" || rev.Email != "socle@example.com" {
				t.Errorf("revision = %+v", rev)
			}
			if got := up.Head(t); got != rev.SHA {
				t.Fatalf("origin's branch = %s, want the new commit %s", got, rev.SHA)
			}
			if head, _ := r.Head(); head.SHA != rev.SHA {
				t.Errorf("mirror head = %s, want %s", head.SHA, rev.SHA)
			}
			if log, err := r.Log(ctx, first, rev.SHA); err != nil || len(log) != 1 {
				t.Errorf("Log(first, new) = %v, %v; want the one new commit", shas(log), err)
			}
			want := map[string]string{
				"socle.yaml":            firstTree["socle.yaml"],
				"apps/web/score.yaml":   firstTree["apps/web/score.yaml"],
				"apps/web/build.sh":     "#!/bin/sh\necho v2\n",
				"apps/web/static/a.txt": "a\n",
				"releases/dev.yaml":     "web: 1.2.3\n",
			}
			fsys, err := r.Files(rev.SHA)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffMaps(contents(t, fsys), want); d != "" {
				t.Errorf("Files(new):\n%s", d)
			}
			if fi, err := fs.Stat(fsys, "apps/web/build.sh"); err != nil || fi.Mode() != 0o755 {
				t.Errorf("rewritten build.sh: %v, %v; want it to stay executable", fi, err)
			}
			// The working copy follows, as with git's updateInstead.
			if got := readFile(t, filepath.Join(up.Dir(), "releases/dev.yaml")); got != "web: 1.2.3\n" {
				t.Errorf("working copy releases/dev.yaml = %q", got)
			}
			if _, err := os.Stat(filepath.Join(up.Dir(), "stacks")); !os.IsNotExist(err) {
				t.Errorf("stacks/ is still in the working copy: %v", err)
			}
			if fi, err := os.Stat(filepath.Join(up.Dir(), "apps/web/build.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
				t.Errorf("working copy build.sh: %v, %v", fi, err)
			}
			cleanWorkTree(t, up.Dir())

			// Fetch reports the commit as a change since the last Fetch.
			if got, changed, err := r.Fetch(ctx); err != nil || !changed || got.SHA != rev.SHA {
				t.Errorf("Fetch after Commit = %s, %v, %v", got.SHA, changed, err)
			}

			// A stale parent is a conflict and changes nothing.
			_, err = r.Commit(ctx, Change{Files: map[string][]byte{"x": []byte("x")}, Author: "a", Message: "m", Parent: first})
			mustErr(t, err, ErrConflict)
			if got := up.Head(t); got != rev.SHA {
				t.Fatalf("a conflicting commit moved the branch to %s", got)
			}

			// Someone commits upstream; a change without Parent goes on top.
			theirs := up.Commit(t, "theirs", map[string]string{"apps/api/score.yaml": "api\n"})
			mine, err := r.Commit(ctx, Change{Files: map[string][]byte{"releases/dev.yaml": []byte("web: 1.2.4\n")}, Author: "a", Message: "m"})
			if err != nil {
				t.Fatal(err)
			}
			if log, _ := r.Log(ctx, rev.SHA, mine.SHA); len(log) != 2 || log[1].SHA != theirs {
				t.Errorf("Log after committing on a moved branch = %s", subjects(log))
			}

			// A change that changes nothing makes no commit.
			same, err := r.Commit(ctx, Change{Files: map[string][]byte{"releases/dev.yaml": []byte("web: 1.2.4\n")}, Delete: []string{"gone"}, Author: "a", Message: "m"})
			if err != nil || same.SHA != mine.SHA || up.Head(t) != mine.SHA {
				t.Errorf("no-op Commit = %s, %v; want %s and no new commit", same.SHA, err, mine.SHA)
			}
			cleanWorkTree(t, up.Dir())
		})
	}
}

func TestCommitDirtyWorkTree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mk := range makers {
		t.Run(mk.name, func(t *testing.T) {
			t.Parallel()
			up := mk.new(t, "main")
			up.Commit(t, "first", map[string]string{"releases/dev.yaml": "1\n", "apps/web/score.yaml": "web\n", "apps/api/score.yaml": "api\n"})
			allowPush(t, up.Dir())
			r := open(t, up.Dir())
			head := up.Head(t)
			commit := func(files map[string][]byte, del ...string) (Revision, error) {
				return r.Commit(ctx, Change{Files: files, Delete: del, Author: "a", Message: "m"})
			}

			// Someone is editing a file the commit changes: refused, nothing moves.
			edited := filepath.Join(up.Dir(), "releases/dev.yaml")
			if err := os.WriteFile(edited, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := commit(map[string][]byte{"releases/dev.yaml": []byte("2\n")})
			mustErr(t, err, ErrDirtyWorktree)
			if up.Head(t) != head || readFile(t, edited) != "mine\n" {
				t.Fatal("a refused commit moved the branch or touched the edit")
			}
			if packs, _ := filepath.Glob(filepath.Join(up.Dir(), ".git/objects/pack/*.pack")); len(packs) > 0 {
				t.Errorf("a refused commit wrote objects: %v", packs)
			}
			_, err = commit(nil, "releases")
			mustErr(t, err, ErrDirtyWorktree)

			// An untracked file where the commit adds one, or in place of a
			// directory it adds.
			for _, untracked := range []string{"releases/prod.yaml", "apps/db"} {
				p := filepath.Join(up.Dir(), untracked)
				if err := os.WriteFile(p, []byte("draft"), 0o644); err != nil {
					t.Fatal(err)
				}
				_, err = commit(map[string][]byte{"releases/prod.yaml": []byte("x"), "apps/db/score.yaml": []byte("x")})
				mustErr(t, err, ErrDirtyWorktree)
				os.Remove(p)
			}

			// A change staged but not committed.
			if g, ok := up.(*gitUpstream); ok {
				if err := os.WriteFile(filepath.Join(g.dir, "apps/api/score.yaml"), []byte("staged\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				runGit(t, g.dir, "add", "apps/api/score.yaml")
				writeWorkTree(t, g.dir, map[string]string{"apps/api/score.yaml": "api\n"}, nil)
				_, err = commit(map[string][]byte{"apps/api/score.yaml": []byte("new\n")})
				mustErr(t, err, ErrDirtyWorktree)
				runGit(t, g.dir, "reset", "-q")
			}

			// Edits elsewhere do not block a commit, and survive it.
			rev, err := commit(map[string][]byte{"apps/web/score.yaml": []byte("web 2\n")})
			if err != nil {
				t.Fatal(err)
			}
			if up.Head(t) != rev.SHA || readFile(t, edited) != "mine\n" || readFile(t, filepath.Join(up.Dir(), "apps/web/score.yaml")) != "web 2\n" {
				t.Fatal("commit next to an edit: branch, edit or working tree wrong")
			}
			if g, ok := up.(*gitUpstream); ok {
				if out := runGit(t, g.dir, "status", "--porcelain"); out != "M releases/dev.yaml" {
					t.Errorf("git status = %q, want only the edit", out)
				}
			}
		})
	}
}

func TestCommitCheckedOutBranch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	change := Change{Files: map[string][]byte{"b": []byte("b")}, Author: "a", Message: "m"}

	// Without updateInstead, as git push: refused.
	up := newGoGitUpstream(t, "main")
	head := up.Commit(t, "one", map[string]string{"a": "1"})
	r := open(t, up.Dir())
	if _, err := r.Commit(ctx, change); err == nil || !strings.Contains(err.Error(), "denyCurrentBranch") {
		t.Fatalf("Commit to a checked-out branch: %v, want a refusal that says how to allow it", err)
	}
	if up.Head(t) != head {
		t.Fatal("a refused commit moved the branch")
	}

	// Another branch of the same working copy is not checked out: fine.
	createBranch(t, up.Dir(), "release")
	rel, err := Open(ctx, Options{URL: up.Dir(), Dir: filepath.Join(t.TempDir(), "m"), Branch: "release"})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := rel.Commit(ctx, change)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(up.Dir(), "b")); !os.IsNotExist(err) {
		t.Error("a commit to a branch that is not checked out wrote the working tree")
	}
	if got := refOf(t, up.Dir(), "release"); got != rev.SHA {
		t.Errorf("release = %s, want %s", got, rev.SHA)
	}

	// A bare repository.
	needGit(t)
	bare := filepath.Join(t.TempDir(), "platform.git")
	runGit(t, ".", "clone", "-q", "--bare", up.Dir(), bare)
	rb := open(t, bare)
	rev, err = rb.Commit(ctx, change)
	if err != nil {
		t.Fatal(err)
	}
	if got := runGit(t, bare, "rev-parse", "main"); got != rev.SHA {
		t.Errorf("bare main = %s, want %s", got, rev.SHA)
	}
	runGit(t, bare, "fsck", "--strict", "--no-progress")

	// Another process holds the branch: git's lock file is honoured.
	lock := filepath.Join(bare, "refs/heads/main.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Commit(ctx, Change{Files: map[string][]byte{"c": nil}, Author: "a", Message: "m"}); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("Commit while main.lock exists: %v, want a plain error", err)
	}
	if got := runGit(t, bare, "rev-parse", "main"); got != rev.SHA {
		t.Error("Commit moved a locked branch")
	}
}

func TestCommitInvalid(t *testing.T) {
	t.Parallel()
	up := newGoGitUpstream(t, "main")
	up.Commit(t, "one", map[string]string{"dir/file": "1", "file": "2"})
	allowPush(t, up.Dir())
	r := open(t, up.Dir())
	ok := func(c Change) Change {
		if c.Author == "" {
			c.Author = "a"
		}
		if c.Message == "" {
			c.Message = "m"
		}
		return c
	}
	for name, c := range map[string]Change{
		"no author":      {Files: map[string][]byte{"a": nil}, Message: "m"},
		"no message":     {Files: map[string][]byte{"a": nil}, Author: "a"},
		"empty":          ok(Change{}),
		"dot-dot":        ok(Change{Files: map[string][]byte{"../a": nil}}),
		"absolute":       ok(Change{Files: map[string][]byte{"/a": nil}}),
		"into .git":      ok(Change{Files: map[string][]byte{"x/.GIT/config": nil}}),
		"root":           ok(Change{Delete: []string{"."}}),
		"bad parent":     ok(Change{Files: map[string][]byte{"a": nil}, Parent: "main"}),
		"write+delete":   ok(Change{Files: map[string][]byte{"a": nil}, Delete: []string{"a"}}),
		"file over dir":  ok(Change{Files: map[string][]byte{"dir": nil}}),
		"dir over file":  ok(Change{Files: map[string][]byte{"file/x": nil}}),
		"file and child": ok(Change{Files: map[string][]byte{"new": nil, "new/x": nil}}),
	} {
		if _, err := r.Commit(context.Background(), c); err == nil {
			t.Errorf("%s: Commit succeeded", name)
		}
	}
	// Replacing a file by a directory takes a removal.
	rev, err := r.Commit(context.Background(), ok(Change{Files: map[string][]byte{"file/x": []byte("x")}, Delete: []string{"file", "dir/file/y"}}))
	if err != nil {
		t.Fatal(err)
	}
	fsys, _ := r.Files(rev.SHA)
	if d := diffMaps(contents(t, fsys), map[string]string{"dir/file": "1", "file/x": "x"}); d != "" {
		t.Error(d)
	}
	cleanWorkTree(t, up.Dir())
}

// createBranch creates branch at HEAD in the repository at dir.
func createBranch(t *testing.T, dir, branch string) {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), head.Hash())); err != nil {
		t.Fatal(err)
	}
}

// refOf reads a branch of the repository at dir.
func refOf(t *testing.T, dir, branch string) string {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		t.Fatal(err)
	}
	return ref.Hash().String()
}

// TestLocalPushStale pushes a commit built on a head the branch has left:
// the branch is moved only if it is where the commit was built.
func TestLocalPushStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up := newGoGitUpstream(t, "main")
	a := plumbing.NewHash(up.Commit(t, "a", map[string]string{"x": "1", "y": "1"}))
	b := up.Commit(t, "b", map[string]string{"x": "2"})
	allowPush(t, up.Dir())
	r := open(t, up.Dir())

	st := newStorage(r.dir, false)
	defer st.Close()
	next, err := writeCommit(st, a, map[string]edit{"y": {data: []byte("mine")}}, Change{Author: "a", Message: "m"})
	if err != nil {
		t.Fatal(err)
	}
	target, err := openTarget(up.Dir())
	if err != nil {
		t.Fatal(err)
	}
	err = target.push(ctx, st, r.branch, a, next)
	mustErr(t, err, ErrConflict)
	if up.Head(t) != b || readFile(t, filepath.Join(up.Dir(), "y")) != "1" {
		t.Fatal("a stale push moved the branch or wrote the working tree")
	}
	if _, err := os.Stat(filepath.Join(up.Dir(), ".git", "index.lock")); !os.IsNotExist(err) {
		t.Errorf("index.lock left behind: %v", err)
	}
	cleanWorkTree(t, up.Dir())
}

// TestRecoverInterruptedPush leaves a checked-out repository as a socle
// killed in the middle of a push does (its intent, git's index lock, the
// branch moved but not the working tree), then opens it again: the push is
// finished, the locks are gone and git sees a clean working tree.
func TestRecoverInterruptedPush(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	up := newGitUpstream(t, "main")
	up.Commit(t, "first", map[string]string{"releases/prod.yaml": "one\n", "apps/web/score.yaml": "web\n"})
	prev := up.Head(t)
	// The branch points at the next commit, as after setRef, but the index
	// and working tree are still the previous commit's.
	if err := os.WriteFile(filepath.Join(up.Dir(), "releases/prod.yaml"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runGit(t, up.Dir(), "commit", "-qam", "promote")
	next := up.Head(t)
	runGit(t, up.Dir(), "read-tree", prev)
	if err := os.WriteFile(filepath.Join(up.Dir(), "releases/prod.yaml"), []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitDir := filepath.Join(up.Dir(), ".git")
	os.WriteFile(filepath.Join(gitDir, "index.lock"), nil, 0o644)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	intent := fmt.Sprintf(`{"pid":%d,"branch":"refs/heads/main","prev":%q,"next":%q}`, dead.Process.Pid, prev, next)
	if err := os.WriteFile(filepath.Join(gitDir, "socle-push.json"), []byte(intent), 0o644); err != nil {
		t.Fatal(err)
	}

	open(t, up.Dir())
	for _, f := range []string{"index.lock", "socle-push.json"} {
		if _, err := os.Stat(filepath.Join(gitDir, f)); err == nil {
			t.Errorf("%s is still there", f)
		}
	}
	if got := readFile(t, filepath.Join(up.Dir(), "releases/prod.yaml")); got != "two\n" {
		t.Errorf("releases/prod.yaml = %q, want the pushed commit's", got)
	}
	if st := runGit(t, up.Dir(), "status", "--porcelain"); strings.TrimSpace(st) != "" {
		t.Errorf("git status after the recovery:\n%s", st)
	}
}
