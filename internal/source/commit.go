package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Change is a commit for Commit to make on top of the branch.
type Change struct {
	// Files to write, by slash-separated path from the root of the
	// repository. A file that exists keeps its mode; a new one is not
	// executable.
	Files map[string][]byte
	// Delete lists files or directories to remove; those that do not exist
	// are ignored. Removals come before writes, so that a file can be
	// replaced by a directory of the same name or the reverse.
	Delete []string
	// Author and Email name the author and committer; Author is required.
	Author, Email string
	// Message is the commit message; required.
	Message string
	// Parent, if set, is the sha (full or abbreviated) the branch must still
	// be at; if it has moved, Commit fails with ErrConflict. If not set, the
	// change is applied to whatever the head is, and made again on the new
	// head if someone else commits while it is pushed.
	Parent string
}

// commitAttempts bounds how often Commit rebuilds a change without Parent
// because someone else committed during the push.
const commitAttempts = 3

// Commit fetches the branch, makes the change on top of its head and pushes
// the new commit to the origin, which it returns. A change that leaves the
// tree as it is makes no commit: Commit returns the head as it is.
//
// A repository on this machine is written directly. If its working tree has
// the branch checked out, git's receive.denyCurrentBranch setting in that
// repository applies as it would to git push: refused by default; with
// updateInstead (which Init sets) the working tree and index are updated too,
// and the commit fails with ErrDirtyWorktree if that would overwrite
// uncommitted changes to the files it changes.
func (r *Repo) Commit(ctx context.Context, c Change) (Revision, error) {
	edits, err := c.edits()
	if err != nil {
		return Revision{}, err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	for attempt := 1; ; attempt++ {
		rev, err := r.commitOnce(ctx, c, edits)
		if err == nil || c.Parent != "" || attempt == commitAttempts || !errors.Is(err, ErrConflict) {
			return rev, err
		}
	}
}

func (r *Repo) commitOnce(ctx context.Context, c Change, edits map[string]edit) (Revision, error) {
	head, err := r.fetch(ctx)
	if err != nil {
		return Revision{}, err
	}
	if c.Parent != "" && !strings.HasPrefix(head.String(), strings.ToLower(c.Parent)) {
		return Revision{}, fmt.Errorf("committing: branch %s is at %s, not %s: %w", r.branch.Short(), head, c.Parent, ErrConflict)
	}
	st := newStorage(r.dir, false)
	defer st.Close()
	next, err := writeCommit(st, head, edits, c)
	if err != nil {
		return Revision{}, fmt.Errorf("committing: %w", err)
	}
	if next.IsZero() {
		return revisionOf(st, head)
	}
	if err := r.push(ctx, st, head, next); err != nil {
		err = fmt.Errorf("pushing %s to %s: %w", next, redact(r.origin), err)
		if !errors.Is(err, ErrConflict) {
			// The push may have failed because someone else pushed first.
			if now, ferr := r.fetch(ctx); ferr == nil && now != head {
				err = fmt.Errorf("%w: %w", ErrConflict, err)
			}
		}
		return Revision{}, err
	}
	if err := st.SetReference(plumbing.NewHashReference(r.branch, next)); err != nil {
		return Revision{}, err
	}
	r.refresh()
	return revisionOf(st, next)
}

// push moves the origin's branch from prev to next.
func (r *Repo) push(ctx context.Context, st *filesystem.Storage, prev, next plumbing.Hash) error {
	if r.local {
		t, err := openTarget(r.origin)
		if err != nil {
			return err
		}
		defer closeStorer(t.repo.Storer)
		return t.push(ctx, st, r.branch, prev, next)
	}
	repo, err := git.Open(st, nil)
	if err != nil {
		return err
	}
	// A plain (not forced) push: the server refuses it unless the branch is
	// still at prev.
	return repo.PushContext(ctx, &git.PushOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{config.RefSpec(next.String() + ":" + r.branch.String())},
		Auth:       r.auth,
	})
}

// edit is the new content of one path, or its removal.
type edit struct {
	data []byte
	del  bool
}

func (c Change) edits() (map[string]edit, error) {
	if strings.TrimSpace(c.Author) == "" {
		return nil, errors.New("committing: no author")
	}
	if strings.TrimSpace(c.Message) == "" {
		return nil, errors.New("committing: no message")
	}
	if p := c.Parent; p != "" && (len(p) < 4 || len(p) > 40 || strings.Trim(strings.ToLower(p), "0123456789abcdef") != "") {
		return nil, fmt.Errorf("committing: parent %q is not a sha", p)
	}
	edits := make(map[string]edit, len(c.Files)+len(c.Delete))
	for p, data := range c.Files {
		if err := checkPath(p); err != nil {
			return nil, err
		}
		edits[p] = edit{data: data}
	}
	for _, p := range c.Delete {
		if err := checkPath(p); err != nil {
			return nil, err
		}
		if e, ok := edits[p]; ok && !e.del {
			return nil, fmt.Errorf("committing: %s is both written and deleted", p)
		}
		edits[p] = edit{del: true}
	}
	if len(edits) == 0 {
		return nil, errors.New("committing: the change is empty")
	}
	return edits, nil
}

func checkPath(p string) error {
	if !fs.ValidPath(p) || p == "." || strings.ContainsAny(p, "\\\x00") {
		return fmt.Errorf("committing: invalid path %q", p)
	}
	for _, elem := range strings.Split(p, "/") {
		if strings.EqualFold(elem, ".git") {
			return fmt.Errorf("committing: path %q is inside .git", p)
		}
	}
	return nil
}

// writeCommit writes the objects of a commit that applies edits on top of
// head and returns its hash, or the zero hash if the tree would not change.
func writeCommit(s storer.EncodedObjectStorer, head plumbing.Hash, edits map[string]edit, c Change) (plumbing.Hash, error) {
	var base plumbing.Hash
	var parents []plumbing.Hash
	if !head.IsZero() {
		hc, err := object.GetCommit(s, head)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		base, parents = hc.TreeHash, []plumbing.Hash{head}
	}
	tree, err := writeTree(s, base, edits, "")
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if tree.IsZero() {
		if tree, err = storeTree(s, nil); err != nil { // everything was deleted
			return plumbing.ZeroHash, err
		}
	}
	if tree == base {
		return plumbing.ZeroHash, nil
	}
	sig := object.Signature{Name: c.Author, Email: c.Email, When: time.Now()}
	msg := strings.TrimSpace(c.Message) + "\n"
	commit := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: parents}
	obj := s.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// writeTree writes the tree base with edits applied (paths relative to it)
// and returns its hash, or the zero hash if it ends up empty. Unchanged
// subtrees are not read.
func writeTree(s storer.EncodedObjectStorer, base plumbing.Hash, edits map[string]edit, dir string) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if !base.IsZero() {
		t, err := object.GetTree(s, base)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	nested := map[string]map[string]edit{}
	for p, e := range edits {
		name, rest, ok := strings.Cut(p, "/")
		switch {
		case ok:
			if nested[name] == nil {
				nested[name] = map[string]edit{}
			}
			nested[name][rest] = e
		case e.del:
			delete(entries, name)
		}
	}
	for name, e := range edits {
		if e.del || strings.Contains(name, "/") {
			continue
		}
		mode := filemode.Regular
		switch old, ok := entries[name]; {
		case ok && old.Mode == filemode.Dir:
			return plumbing.ZeroHash, fmt.Errorf("%s is a directory", dir+name)
		case ok && old.Mode == filemode.Executable:
			mode = filemode.Executable
		}
		obj := s.NewEncodedObject()
		obj.SetType(plumbing.BlobObject)
		w, err := obj.Writer()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if _, err := w.Write(e.data); err != nil {
			return plumbing.ZeroHash, err
		}
		if err := w.Close(); err != nil {
			return plumbing.ZeroHash, err
		}
		h, err := s.SetEncodedObject(obj)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[name] = object.TreeEntry{Name: name, Mode: mode, Hash: h}
	}
	for name, sub := range nested {
		var subBase plumbing.Hash
		if old, ok := entries[name]; ok {
			if old.Mode != filemode.Dir {
				if onlyRemovals(sub) {
					continue // nothing to remove under a file
				}
				return plumbing.ZeroHash, fmt.Errorf("%s is a file", dir+name)
			}
			subBase = old.Hash
		}
		h, err := writeTree(s, subBase, sub, dir+name+"/")
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if h.IsZero() {
			delete(entries, name)
		} else {
			entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
		}
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	list := make([]object.TreeEntry, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	return storeTree(s, list)
}

func onlyRemovals(edits map[string]edit) bool {
	for _, e := range edits {
		if !e.del {
			return false
		}
	}
	return true
}

// storeTree writes a tree, in git's order: by name, a directory's name
// compared as if it ended in "/".
func storeTree(s storer.EncodedObjectStorer, entries []object.TreeEntry) (plumbing.Hash, error) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	obj := s.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}
