package source

// A repository on this machine is read and written directly with go-git
// rather than through go-git's file:// transport, which runs the
// git-upload-pack and git-receive-pack programs: socle must not need git.
// Objects are copied as a pack and the branch is moved with git's own
// lock-file protocol, so a git process working in the same repository at
// the same time sees either the old or the new branch, never a torn file.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// openLocal opens the repository at path: a working copy, a bare repository
// or a .git directory.
func openLocal(path string) (*git.Repository, error) {
	repo, err := git.PlainOpenWithOptions(path, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return repo, nil
}

func (r *Repo) fetchLocal(ctx context.Context, dst storer.Storer) error {
	src, err := openLocal(r.origin)
	if err != nil {
		return err
	}
	defer closeStorer(src.Storer)
	shallow, err := src.Storer.Shallow()
	if err != nil {
		return err
	}
	if len(shallow) > 0 {
		return fmt.Errorf("%s is a shallow clone: its history stops short, and the mirror needs all of it", r.origin)
	}
	ref, err := storer.ResolveReference(src.Storer, r.branch)
	if err != nil {
		return fmt.Errorf("branch %s: %w", r.branch.Short(), err)
	}
	if err := copyObjects(ctx, src.Storer, dst, ref.Hash()); err != nil {
		return err
	}
	return dst.SetReference(plumbing.NewHashReference(r.branch, ref.Hash()))
}

// copyObjects copies the commit want and everything it needs from src to
// dst, as one pack. It relies on what a repository guarantees: when dst has a
// commit it has all of its history, and when it has a tree it has all of its
// content, so the walk stops at the first object dst already has.
func copyObjects(ctx context.Context, src storer.EncodedObjectStorer, dst storer.Storer, want plumbing.Hash) error {
	seen := map[plumbing.Hash]bool{}
	var missing []plumbing.Hash
	need := func(h plumbing.Hash) bool {
		if seen[h] {
			return false
		}
		seen[h] = true
		if dst.HasEncodedObject(h) == nil {
			return false
		}
		missing = append(missing, h)
		return true
	}
	var addTree func(h plumbing.Hash) error
	addTree = func(h plumbing.Hash) error {
		if !need(h) {
			return nil
		}
		t, err := object.GetTree(src, h)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			switch e.Mode {
			case filemode.Dir:
				if err := addTree(e.Hash); err != nil {
					return err
				}
			case filemode.Submodule: // a commit of another repository
			default:
				need(e.Hash)
			}
		}
		return nil
	}
	for stack := []plumbing.Hash{want}; len(stack) > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !need(h) {
			continue
		}
		c, err := object.GetCommit(src, h)
		if err != nil {
			return err
		}
		if err := addTree(c.TreeHash); err != nil {
			return err
		}
		stack = append(stack, c.ParentHashes...)
	}
	if len(missing) == 0 {
		return nil
	}

	pr, pw := io.Pipe()
	go func() {
		_, err := packfile.NewEncoder(pw, src, false).Encode(missing, 0)
		pw.CloseWithError(err)
	}()
	err := packfile.UpdateObjectStorage(dst, pr)
	pr.CloseWithError(err) // unblocks the encoder if the writer gave up
	return err
}

// localTarget is a repository on this machine that Commit pushes to.
type localTarget struct {
	repo     *git.Repository
	gitDir   string // holds HEAD, index and refs
	workTree string // main working tree; "" for a bare repository
}

func openTarget(path string) (*localTarget, error) {
	t := &localTarget{gitDir: path}
	fi, err := os.Stat(filepath.Join(path, ".git"))
	switch {
	case err == nil && fi.IsDir():
		t.gitDir, t.workTree = filepath.Join(path, ".git"), path
	case err == nil:
		return nil, fmt.Errorf("%s is a linked worktree or a submodule; point socle at the main repository", path)
	}
	repo, err := openLocal(path)
	if err != nil {
		return nil, err
	}
	t.repo = repo
	if t.workTree == "" && filepath.Base(path) == ".git" {
		// The .git directory of a working copy rather than a bare repository.
		if cfg, err := repo.Config(); err == nil && !cfg.Core.IsBare {
			t.workTree = filepath.Dir(path)
		}
	}
	return t, nil
}

// push makes the branch of the target point to the commit next (found in
// src) if it still points to prev. When the branch is checked out in the
// target's working tree, git's receive.denyCurrentBranch setting decides,
// as it does for git push: by default the push is refused; with
// updateInstead the working tree and index are updated as well.
func (t *localTarget) push(ctx context.Context, src storer.EncodedObjectStorer, branch plumbing.ReferenceName, prev, next plumbing.Hash) error {
	update, err := t.checkedOut(branch)
	if err != nil {
		return err
	}
	var lock *lockFile
	var idx *index.Index
	var changes object.Changes
	if update {
		if err := t.recoverPush(branch, false); err != nil {
			return err
		}
		// An intent, so that a socle killed while it holds git's locks
		// finishes or undoes this push at its next one (recoverPush).
		if err := t.writeIntent(pushIntent{PID: os.Getpid(), Branch: branch.String(), Prev: prev.String(), Next: next.String()}); err != nil {
			return err
		}
		defer os.Remove(t.intentPath())
		// Checked before anything is written, so that a refused push
		// leaves the repository as it was.
		if lock, err = createLock(filepath.Join(t.gitDir, "index")); err != nil {
			return err
		}
		defer lock.abort()
		if idx, err = t.readIndex(); err != nil {
			return err
		}
		if changes, err = diffCommits(src, prev, next); err != nil {
			return err
		}
		if err := t.checkClean(idx, changes); err != nil {
			return err
		}
	}
	if err := copyObjects(ctx, src, t.repo.Storer, next); err != nil {
		return err
	}
	if err := t.setRef(branch, prev, next); err != nil || !update {
		return err
	}
	if err := t.checkout(idx, changes); err != nil {
		return fmt.Errorf("branch %s updated but not its working tree %s: %w", branch.Short(), t.workTree, err)
	}
	if err := index.NewEncoder(lock.f).Encode(idx); err != nil {
		return err
	}
	return lock.commit()
}

// pushIntent is what socle is about to do to a checked-out branch, written
// before it takes git's locks and removed once they are released.
type pushIntent struct {
	PID    int    `json:"pid"`
	Branch string `json:"branch"`
	Prev   string `json:"prev"`
	Next   string `json:"next"`
}

func (t *localTarget) intentPath() string { return filepath.Join(t.gitDir, "socle-push.json") }

func (t *localTarget) writeIntent(in pushIntent) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return os.WriteFile(t.intentPath(), b, 0o644)
}

// recoverPush finishes a push that a socle killed midway left: it removes
// the locks it held and, if the branch had moved already, brings the working
// tree and index to the new commit (the files it changes were clean when the
// push began). A push by a process still alive is left alone.
// anyBranch is set when the branch is not known yet (at Open): the intent
// names it.
func (t *localTarget) recoverPush(branch plumbing.ReferenceName, anyBranch bool) error {
	b, err := os.ReadFile(t.intentPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var in pushIntent
	if json.Unmarshal(b, &in) != nil || (!anyBranch && in.Branch != branch.String()) {
		return os.Remove(t.intentPath())
	}
	branch = plumbing.ReferenceName(in.Branch)
	if in.PID != os.Getpid() && unix.Kill(in.PID, 0) == nil {
		return nil // its owner lives: git's locks will say so
	}
	os.Remove(filepath.Join(t.gitDir, "index.lock"))
	os.Remove(filepath.Join(t.gitDir, filepath.FromSlash(branch.String())+".lock"))
	ref, err := t.repo.Storer.Reference(branch)
	if err == nil && ref.Hash().String() == in.Next {
		idx, err := t.readIndex()
		if err != nil {
			return err
		}
		changes, err := diffCommits(t.repo.Storer, plumbing.NewHash(in.Prev), plumbing.NewHash(in.Next))
		if err != nil {
			return err
		}
		lock, err := createLock(filepath.Join(t.gitDir, "index"))
		if err != nil {
			return err
		}
		defer lock.abort()
		if err := t.checkout(idx, changes); err != nil {
			return err
		}
		if err := index.NewEncoder(lock.f).Encode(idx); err != nil {
			return err
		}
		if err := lock.commit(); err != nil {
			return err
		}
	}
	return os.Remove(t.intentPath())
}

// checkedOut says whether pushing to branch must update the working tree; it
// fails where git push would be refused.
func (t *localTarget) checkedOut(branch plumbing.ReferenceName) (bool, error) {
	linked, _ := filepath.Glob(filepath.Join(t.gitDir, "worktrees", "*", "HEAD"))
	for _, head := range linked {
		if b, err := os.ReadFile(head); err == nil && strings.TrimSpace(string(b)) == "ref: "+branch.String() {
			return false, fmt.Errorf("branch %s is checked out in a linked worktree (%s); socle cannot update it", branch.Short(), filepath.Dir(head))
		}
	}
	if t.workTree == "" {
		return false, nil
	}
	head, err := t.repo.Storer.Reference(plumbing.HEAD)
	if err != nil || head.Type() != plumbing.SymbolicReference || head.Target() != branch {
		return false, nil
	}
	cfg, err := t.repo.Config()
	if err != nil {
		return false, err
	}
	switch v := cfg.Raw.Section("receive").Option("denyCurrentBranch"); strings.ToLower(v) {
	case "updateinstead":
		return true, nil
	case "ignore", "warn", "false", "no", "off", "0":
		return false, nil
	default:
		return false, fmt.Errorf("refusing to move branch %s, checked out in %s: run `git config receive.denyCurrentBranch updateInstead` there to let socle update that working tree", branch.Short(), t.workTree)
	}
}

// setRef moves branch from prev to next the way git does: under
// <ref>.lock, so that it fails if another process holds the branch and
// readers never see a partly written file.
func (t *localTarget) setRef(branch plumbing.ReferenceName, prev, next plumbing.Hash) error {
	lock, err := createLock(filepath.Join(t.gitDir, filepath.FromSlash(branch.String())))
	if err != nil {
		return err
	}
	defer lock.abort()
	ref, err := t.repo.Storer.Reference(branch)
	switch {
	case errors.Is(err, plumbing.ErrReferenceNotFound) && prev.IsZero():
	case err != nil:
		return err
	case ref.Type() != plumbing.HashReference || ref.Hash() != prev:
		return fmt.Errorf("branch %s is at %s, not %s: %w", branch.Short(), ref.Hash(), prev, ErrConflict)
	}
	if _, err := fmt.Fprintf(lock.f, "%s\n", next); err != nil {
		return err
	}
	return lock.commit()
}

// lockFile is git's way of replacing a file atomically: write <name>.lock,
// created exclusively, then rename it over <name>.
type lockFile struct {
	name string
	f    *os.File
	done bool
}

func createLock(name string) (*lockFile, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o777); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name+".lock", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s.lock exists: another git process is working in this repository", name)
	}
	if err != nil {
		return nil, err
	}
	return &lockFile{name: name, f: f}, nil
}

func (l *lockFile) commit() error {
	l.done = true
	if err := l.f.Sync(); err != nil {
		l.f.Close()
		os.Remove(l.f.Name())
		return err
	}
	if err := l.f.Close(); err != nil {
		os.Remove(l.f.Name())
		return err
	}
	return os.Rename(l.f.Name(), l.name)
}

func (l *lockFile) abort() {
	if !l.done {
		l.f.Close()
		os.Remove(l.f.Name())
	}
}

func (t *localTarget) readIndex() (*index.Index, error) {
	idx := &index.Index{Version: 2}
	f, err := os.Open(filepath.Join(t.gitDir, "index"))
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := index.NewDecoder(f).Decode(idx); err != nil {
		return nil, fmt.Errorf("reading the index of %s: %w", t.workTree, err)
	}
	return idx, nil
}

// diffCommits lists the files that differ between the trees of two commits.
func diffCommits(s storer.EncodedObjectStorer, from, to plumbing.Hash) (object.Changes, error) {
	tree := func(h plumbing.Hash) (*object.Tree, error) {
		if h.IsZero() {
			return &object.Tree{}, nil
		}
		c, err := object.GetCommit(s, h)
		if err != nil {
			return nil, err
		}
		return c.Tree()
	}
	a, err := tree(from)
	if err != nil {
		return nil, err
	}
	b, err := tree(to)
	if err != nil {
		return nil, err
	}
	return object.DiffTree(a, b)
}

// checkClean fails with ErrDirtyWorktree unless every file the push changes
// is, in the index and in the working tree, as the old commit has it, and no
// file the push adds would replace an untracked one. Unlike git's
// updateInstead, changes to other files do not block the push (as with git
// checkout), so that someone editing the repository does not stop socle from
// recording a promotion.
func (t *localTarget) checkClean(idx *index.Index, changes object.Changes) error {
	removed := map[string]bool{}
	for _, ch := range changes {
		if ch.To.Name == "" {
			removed[ch.From.Name] = true
		}
	}
	for _, ch := range changes {
		if name := ch.From.Name; name != "" {
			if err := t.unchanged(idx, name, ch.From.TreeEntry); err != nil {
				return err
			}
			continue
		}
		name := ch.To.Name
		if _, err := idx.Entry(name); err == nil {
			return fmt.Errorf("%s is staged in %s: %w", name, t.workTree, ErrDirtyWorktree)
		}
		// Neither the file nor a file in place of one of its directories
		// may exist, unless the push removes it.
		for p := name; p != "."; p = filepath.ToSlash(filepath.Dir(p)) {
			fi, err := os.Lstat(filepath.Join(t.workTree, filepath.FromSlash(p)))
			if err != nil || (p != name && fi.IsDir()) || removed[p] {
				continue
			}
			return fmt.Errorf("untracked %s in %s: %w", p, t.workTree, ErrDirtyWorktree)
		}
	}
	return nil
}

// unchanged fails with ErrDirtyWorktree unless the index and the working
// tree both hold want at name.
func (t *localTarget) unchanged(idx *index.Index, name string, want object.TreeEntry) error {
	e, err := idx.Entry(name)
	// Stage 0 is a merged entry (go-git's index.Merged is 1, an ancestor).
	if err != nil || e.Hash != want.Hash || e.Mode != want.Mode || e.Stage != 0 {
		return fmt.Errorf("%s is staged in %s: %w", name, t.workTree, ErrDirtyWorktree)
	}
	dirty := fmt.Errorf("%s is modified in %s: %w", name, t.workTree, ErrDirtyWorktree)
	p := filepath.Join(t.workTree, filepath.FromSlash(name))
	fi, err := os.Lstat(p)
	if err != nil {
		return dirty
	}
	var content []byte
	switch {
	case want.Mode == filemode.Symlink && fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		content = []byte(filepath.ToSlash(target))
	case fi.Mode().IsRegular() && (want.Mode == filemode.Executable) == (fi.Mode()&0o111 != 0):
		if content, err = os.ReadFile(p); err != nil {
			return err
		}
	default:
		return dirty
	}
	if plumbing.ComputeHash(plumbing.BlobObject, content) != want.Hash {
		return dirty
	}
	return nil
}

// checkout writes the changes to the working tree and records them in idx.
// Removals go first, so that a file can give way to a directory.
func (t *localTarget) checkout(idx *index.Index, changes object.Changes) error {
	sorted := append(object.Changes(nil), changes...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].To.Name == "" && sorted[j].To.Name != "" })
	for _, ch := range sorted {
		if ch.To.Name == "" {
			name := ch.From.Name
			if _, err := idx.Remove(name); err != nil {
				return err
			}
			p := filepath.Join(t.workTree, filepath.FromSlash(name))
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removeEmptyDirs(t.workTree, filepath.Dir(p))
			continue
		}
		e, err := t.writeFile(ch.To.Name, ch.To.TreeEntry)
		if err != nil {
			return err
		}
		_, _ = idx.Remove(e.Name)
		idx.Entries = append(idx.Entries, e)
	}
	idx.Cache = nil // git's cached tree of the index is stale now; git rebuilds it
	return nil
}

func (t *localTarget) writeFile(name string, te object.TreeEntry) (*index.Entry, error) {
	blob, err := object.GetBlob(t.repo.Storer, te.Hash)
	if err != nil {
		return nil, err
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	p := filepath.Join(t.workTree, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		return nil, err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := writeEntry(p, te.Mode, rd); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	e := &index.Entry{Name: name, Hash: te.Hash, Mode: te.Mode, Size: uint32(fi.Size()), ModifiedAt: fi.ModTime()}
	fillStat(e, fi)
	return e, nil
}

// writeEntry creates the file p, which must not exist, from a blob: a
// symbolic link or a regular file, executable or not.
func writeEntry(p string, mode filemode.FileMode, content io.Reader) error {
	if mode == filemode.Symlink {
		var target bytes.Buffer
		if _, err := target.ReadFrom(content); err != nil {
			return err
		}
		return os.Symlink(filepath.FromSlash(target.String()), p)
	}
	perm := os.FileMode(0o644)
	if mode == filemode.Executable {
		perm = 0o755
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// removeEmptyDirs removes dir and its parents up to root while they are
// empty, as git does when the last file of a directory goes.
func removeEmptyDirs(root, dir string) {
	for dir != root && strings.HasPrefix(dir, root) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
