package source

import (
	"container/heap"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Log returns the commits reachable from to and not from from, newest first
// (as git log from..to: by commit time, a commit always before its parents).
// from may be "" for the whole history and to "" for the head of the branch.
// With paths, only the commits that change something under one of them are
// returned: "apps/web/" is the directory apps/web, "apps/web" the file or the
// directory. A merge counts only if it differs from each of its parents there,
// as git log -- paths shows it.
func (r *Repo) Log(ctx context.Context, from, to string, paths ...string) ([]Revision, error) {
	filters := make([]pathFilter, len(paths))
	for i, p := range paths {
		f, err := newPathFilter(p)
		if err != nil {
			return nil, err
		}
		filters[i] = f
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	var head plumbing.Hash
	var err error
	if to == "" {
		head, err = r.head()
	} else {
		head, err = r.resolve(to)
	}
	if err != nil {
		return nil, err
	}
	hidden := map[plumbing.Hash]bool{}
	if from != "" {
		base, err := r.resolve(from)
		if err != nil {
			return nil, err
		}
		if _, err := r.walk(ctx, base, hidden); err != nil {
			return nil, err
		}
	}
	commits, err := r.walk(ctx, head, hidden)
	if err != nil {
		return nil, err
	}

	var revs []Revision
	for _, c := range newestFirst(commits) {
		if len(filters) > 0 {
			touched, err := r.touches(c, filters)
			if err != nil {
				return nil, err
			}
			if !touched {
				continue
			}
		}
		revs = append(revs, newRevision(c))
	}
	return revs, nil
}

// walk adds to seen the commits reachable from h that are not in seen yet,
// and returns them. The caller holds mu.
func (r *Repo) walk(ctx context.Context, h plumbing.Hash, seen map[plumbing.Hash]bool) ([]*object.Commit, error) {
	var found []*object.Commit
	for stack := []plumbing.Hash{h}; len(stack) > 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[h] {
			continue
		}
		seen[h] = true
		c, err := r.commit(h)
		if err != nil {
			return nil, fmt.Errorf("reading commit %s: %w", h, err)
		}
		found = append(found, c)
		stack = append(stack, c.ParentHashes...)
	}
	return found, nil
}

// newestFirst orders commits by commit time, newest first, but never a
// commit before one of its children (git log --date-order).
func newestFirst(commits []*object.Commit) []*object.Commit {
	byHash := make(map[plumbing.Hash]*object.Commit, len(commits))
	for _, c := range commits {
		byHash[c.Hash] = c
	}
	children := make(map[plumbing.Hash]int, len(commits))
	for _, c := range commits {
		for _, p := range c.ParentHashes {
			if byHash[p] != nil {
				children[p]++
			}
		}
	}
	ready := &commitHeap{}
	for _, c := range commits {
		if children[c.Hash] == 0 {
			heap.Push(ready, c)
		}
	}
	sorted := make([]*object.Commit, 0, len(commits))
	for ready.Len() > 0 {
		c := heap.Pop(ready).(*object.Commit)
		sorted = append(sorted, c)
		for _, p := range c.ParentHashes {
			if pc := byHash[p]; pc != nil {
				if children[p]--; children[p] == 0 {
					heap.Push(ready, pc)
				}
			}
		}
	}
	return sorted
}

// commitHeap pops the newest commit first (then by hash, to be stable).
type commitHeap []*object.Commit

func (h commitHeap) Len() int { return len(h) }
func (h commitHeap) Less(i, j int) bool {
	ti, tj := h[i].Committer.When, h[j].Committer.When
	if !ti.Equal(tj) {
		return ti.After(tj)
	}
	return h[i].Hash.String() < h[j].Hash.String()
}
func (h commitHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *commitHeap) Push(x any)   { *h = append(*h, x.(*object.Commit)) }
func (h *commitHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// pathFilter selects a file or directory of a tree.
type pathFilter struct {
	elems   []string // none: the whole tree
	dirOnly bool
}

func newPathFilter(p string) (pathFilter, error) {
	f := pathFilter{dirOnly: strings.HasSuffix(p, "/")}
	clean := path.Clean(strings.Trim(p, "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return pathFilter{}, fmt.Errorf("path %q is outside the repository", p)
	}
	if clean != "." {
		f.elems = strings.Split(clean, "/")
	}
	return f, nil
}

// touches says whether c changes what one of filters selects, compared with
// each of its parents.
func (r *Repo) touches(c *object.Commit, filters []pathFilter) (bool, error) {
	parents := c.ParentHashes
	if len(parents) == 0 {
		parents = []plumbing.Hash{plumbing.ZeroHash} // the root commit: compare with nothing
	}
	for _, f := range filters {
		mine, err := r.entryAt(c.TreeHash, f)
		if err != nil {
			return false, err
		}
		differs := true
		for _, p := range parents {
			var theirs plumbing.Hash
			if !p.IsZero() {
				pc, err := r.commit(p)
				if err != nil {
					return false, err
				}
				if theirs, err = r.entryAt(pc.TreeHash, f); err != nil {
					return false, err
				}
			}
			if theirs == mine {
				differs = false
				break
			}
		}
		if differs {
			return true, nil
		}
	}
	return false, nil
}

// entryAt returns the hash of what f selects in the tree h, or the zero
// hash. A file's mode is folded in so that a mode change counts as a change.
func (r *Repo) entryAt(h plumbing.Hash, f pathFilter) (plumbing.Hash, error) {
	mode := filemode.Dir
	for _, name := range f.elems {
		if mode != filemode.Dir {
			return plumbing.ZeroHash, nil
		}
		t, err := object.GetTree(r.st, h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		e, err := t.FindEntry(name)
		if err != nil {
			return plumbing.ZeroHash, nil
		}
		h, mode = e.Hash, e.Mode
	}
	if f.dirOnly && mode != filemode.Dir {
		return plumbing.ZeroHash, nil
	}
	if mode != filemode.Dir {
		// Same content, other mode (say, made executable): still a change.
		h = plumbing.ComputeHash(plumbing.BlobObject, []byte(mode.String()+h.String()))
	}
	return h, nil
}
