package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// upstream is a platform repository that a test commits to, the way a
// person would: in a working copy.
type upstream interface {
	// Dir is the working copy.
	Dir() string
	// Commit writes files (a name ending in .sh is executable), removes
	// paths, commits everything and returns the new head.
	Commit(t *testing.T, msg string, write map[string]string, remove ...string) string
	// Head returns the sha the branch points to.
	Head(t *testing.T) string
}

// makers builds an upstream with go-git and, when installed, with git, so
// that repositories made by either are read the same.
var makers = []struct {
	name string
	new  func(t *testing.T, branch string) upstream
}{
	{"go-git", newGoGitUpstream},
	{"git", newGitUpstream},
}

// tick gives successive commits of a test distinct, increasing times.
type tick struct{ n int }

func (c *tick) next() time.Time {
	c.n++
	return time.Date(2025, 3, 1, 12, 0, c.n, 0, time.UTC)
}

func writeWorkTree(t *testing.T, dir string, write map[string]string, remove []string) {
	t.Helper()
	for name, content := range write {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		perm := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			perm = 0o755
		}
		os.Remove(p)
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range remove {
		if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
}

type goGitUpstream struct {
	dir string
	tick
}

func newGoGitUpstream(t *testing.T, branch string) upstream {
	dir := t.TempDir()
	_, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &goGitUpstream{dir: dir}
}

func (u *goGitUpstream) Dir() string { return u.dir }

func (u *goGitUpstream) Commit(t *testing.T, msg string, write map[string]string, remove ...string) string {
	t.Helper()
	writeWorkTree(t, u.dir, write, remove)
	// Opened anew: a go-git storage does not see packs written after it
	// loaded its pack index, and socle pushes packs to this repository.
	st := filesystem.NewStorage(osfs.New(filepath.Join(u.dir, ".git")), cache.NewObjectLRUDefault())
	repo, err := git.Open(atomicRefs{st, filepath.Join(u.dir, ".git")}, osfs.New(u.dir))
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Ada", Email: "ada@example.com", When: u.next()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// atomicRefs moves a branch the way git does, by renaming a new file
// over the old: go-git truncates the file and writes it anew, and a
// socle fetching at that instant (a watcher's poll) would find no branch.
type atomicRefs struct {
	*filesystem.Storage
	gitDir string
}

func (s atomicRefs) SetReference(ref *plumbing.Reference) error {
	if ref.Type() != plumbing.HashReference || !ref.Name().IsBranch() {
		return s.Storage.SetReference(ref)
	}
	p := filepath.Join(s.gitDir, filepath.FromSlash(ref.Name().String()))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p+".lock", []byte(ref.Hash().String()+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(p+".lock", p)
}

func (s atomicRefs) CheckAndSetReference(ref, _ *plumbing.Reference) error {
	return s.SetReference(ref)
}

func (u *goGitUpstream) Head(t *testing.T) string {
	t.Helper()
	return headOf(t, u.dir)
}

// headOf reads, with go-git, where the branch HEAD names points in the
// repository at dir.
func headOf(t *testing.T, dir string) string {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Hash().String()
}

type gitUpstream struct {
	dir string
	tick
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: skipping the test against repositories made by the git binary")
	}
}

func newGitUpstream(t *testing.T, branch string) upstream {
	needGit(t)
	dir := t.TempDir()
	runGit(t, dir, "init", "-q", "-b", branch)
	return &gitUpstream{dir: dir}
}

func (u *gitUpstream) Dir() string { return u.dir }

func (u *gitUpstream) Commit(t *testing.T, msg string, write map[string]string, remove ...string) string {
	t.Helper()
	writeWorkTree(t, u.dir, write, remove)
	runGit(t, u.dir, "add", "-A")
	date := u.next().Format(time.RFC3339)
	runGitEnv(t, u.dir, []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}, "commit", "-q", "--allow-empty", "-m", msg)
	return u.Head(t)
}

func (u *gitUpstream) Head(t *testing.T) string {
	t.Helper()
	return runGit(t, u.dir, "rev-parse", "HEAD")
}

// runGit runs git in dir, isolated from the user's configuration, and
// returns its trimmed output.
func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return runGitEnv(t, dir, nil, args...)
}

func runGitEnv(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := gitCmd(dir, env, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func gitCmd(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Grace", "GIT_AUTHOR_EMAIL=grace@example.com",
		"GIT_COMMITTER_NAME=Grace", "GIT_COMMITTER_EMAIL=grace@example.com",
		"GIT_TERMINAL_PROMPT=0")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// open opens a mirror of url in a new directory.
func open(t *testing.T, url string) *Repo {
	t.Helper()
	r, err := Open(context.Background(), Options{URL: url, Dir: filepath.Join(t.TempDir(), "mirror")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// contents reads every regular file of fsys with fs.WalkDir and ReadFile.
func contents(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		got[p] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// diffMaps describes how got differs from want, or returns "".
func diffMaps(got, want map[string]string) string {
	var lines []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			lines = append(lines, fmt.Sprintf("missing %s", k))
		} else if g != w {
			lines = append(lines, fmt.Sprintf("%s = %q, want %q", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("unexpected %s", k))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func shas(revs []Revision) []string {
	out := make([]string, len(revs))
	for i, r := range revs {
		out[i] = r.SHA
	}
	return out
}

func mustErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}
