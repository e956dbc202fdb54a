package source

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Options say which repository and branch to follow and where to mirror it.
type Options struct {
	// URL of the platform repository: a path to a repository on this machine
	// (a working copy or a bare repository), a file:// URL, an https:// or
	// ssh:// URL, or an scp-like SSH address such as git@host:org/platform.git.
	URL string
	// Branch to follow. Default: the branch the repository's HEAD points to,
	// else "main", else "master".
	Branch string
	// Dir is where socle keeps its own bare mirror of the repository, for
	// example <data>/git/<hash of URL>. It is created if missing.
	Dir string
	// Auth for HTTPS or SSH; nil means none for HTTPS and, for SSH, go-git's
	// default (the SSH agent named by SSH_AUTH_SOCK).
	Auth transport.AuthMethod
}

// remoteName is the name of the origin in the mirror's configuration.
const remoteName = "origin"

// Repo is socle's own bare mirror of one branch of the platform repository.
// socle never reads a user's working copy. The mirror follows the origin's
// branch, force-pushes included.
//
// A Repo is safe for concurrent use. Fetch and Commit run one at a time; they
// write the mirror through their own go-git storage and then swap the one that
// readers use, so reading (Head, Files, Log, ...) is not blocked while a fetch
// waits on the network.
type Repo struct {
	origin string // URL of the origin; an absolute path when it is on this machine
	local  bool   // whether origin is a path on this machine
	branch plumbing.ReferenceName
	dir    string
	auth   transport.AuthMethod

	wmu  sync.Mutex    // serialises Fetch and Commit
	last plumbing.Hash // head returned by the last Open or Fetch; guarded by wmu

	mu sync.Mutex // guards st: go-git storage is not safe for concurrent use
	st *filesystem.Storage
}

// Open opens the mirror in o.Dir, or creates it by cloning o.URL. An existing
// mirror of the same URL and branch is reused without going to the network,
// so socle starts even while the origin is unreachable; call Fetch to bring
// it up to date.
func Open(ctx context.Context, o Options) (*Repo, error) {
	if o.URL == "" {
		return nil, errors.New("opening platform repository: no URL")
	}
	if o.Dir == "" {
		return nil, errors.New("opening platform repository: no mirror directory")
	}
	origin, local, err := parseOrigin(o.URL)
	if err != nil {
		return nil, err
	}
	r := &Repo{origin: origin, local: local, dir: o.Dir, auth: o.Auth}
	if local {
		// A socle killed while it pushed to this repository left git's
		// locks and a half-updated working tree: finish that push first.
		if t, err := openTarget(origin); err == nil {
			err = t.recoverPush(plumbing.NewBranchReferenceName(strings.TrimPrefix(o.Branch, "refs/heads/")), true)
			closeStorer(t.repo.Storer)
			if err != nil {
				return nil, fmt.Errorf("opening %s: recovering an interrupted push: %w", redact(o.URL), err)
			}
		}
	}
	if err := r.open(ctx, strings.TrimPrefix(o.Branch, "refs/heads/")); err != nil {
		return nil, fmt.Errorf("opening %s: %w", redact(o.URL), err)
	}
	return r, nil
}

func (r *Repo) open(ctx context.Context, branch string) error {
	if branch != "" {
		if err := plumbing.NewBranchReferenceName(branch).Validate(); err != nil {
			return fmt.Errorf("branch %q: %w", branch, err)
		}
	}
	st, err := initMirror(r.dir)
	if err != nil {
		return err
	}
	defer st.Close()
	cfg, err := st.Config()
	if err != nil {
		return err
	}

	// The mirror keeps the branch under its own name (+refs/heads/B:refs/heads/B)
	// and HEAD points to it, so that it reads like any bare clone.
	reuse := false
	if rc := cfg.Remotes[remoteName]; rc != nil && len(rc.URLs) == 1 && rc.URLs[0] == r.origin && len(rc.Fetch) == 1 {
		tracked := plumbing.ReferenceName(rc.Fetch[0].Src())
		if branch == "" {
			branch = tracked.Short()
		}
		reuse = tracked == plumbing.NewBranchReferenceName(branch)
	}
	if branch == "" {
		if branch, err = r.defaultBranch(ctx); err != nil {
			return err
		}
	}
	r.branch = plumbing.NewBranchReferenceName(branch)

	var head plumbing.Hash
	if reuse {
		if ref, err := st.Reference(r.branch); err == nil {
			head = ref.Hash()
		}
	} else {
		cfg.Remotes[remoteName] = &config.RemoteConfig{
			Name:  remoteName,
			URLs:  []string{r.origin},
			Fetch: []config.RefSpec{config.RefSpec("+" + r.branch + ":" + r.branch)},
		}
		if err := st.SetConfig(cfg); err != nil {
			return err
		}
		if err := st.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, r.branch)); err != nil {
			return err
		}
	}

	r.wmu.Lock()
	defer r.wmu.Unlock()
	if head.IsZero() {
		if head, err = r.fetch(ctx); err != nil {
			return err
		}
	} else {
		r.refresh()
	}
	r.last = head
	return nil
}

// initMirror opens the bare repository in dir, creating it if dir is missing
// or empty.
func initMirror(dir string) (*filesystem.Storage, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := repairMirror(dir); err != nil {
		return nil, err
	}
	st := newStorage(dir, false)
	_, err := git.Open(st, nil)
	if !errors.Is(err, git.ErrRepositoryNotExists) {
		return st, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(entries) > 0 {
		return nil, fmt.Errorf("mirror directory %s is neither empty nor a git repository", dir)
	}
	if _, err := git.Init(st, nil); err != nil {
		return nil, fmt.Errorf("creating mirror in %s: %w", dir, err)
	}
	return st, nil
}

// repairMirror undoes what a socle killed in the middle of a fetch leaves in
// the mirror in dir. go-git writes a pack's index in place, then renames the
// pack beside it from a temporary file, and it skips writing an index that
// already exists. A kill therefore leaves an index without its pack, perhaps
// truncated; the next fetch of the same objects makes a pack of the same name,
// keeps the stale index, and from then on every read of the mirror fails with
// EOF. So: temporary files and indexes without their pack are removed. A pack
// whose index does not decode (a mirror damaged that way by an earlier socle)
// cannot be trusted, and other packs may depend on its objects; the mirror is
// only a copy of the origin, so it is emptied and the next Open fetches it
// whole. Nothing else writes dir meanwhile: one socle holds a data directory,
// and only its Open and Fetch write the mirror.
func repairMirror(dir string) error {
	packDir := filepath.Join(dir, "objects", "pack")
	entries, err := os.ReadDir(packDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("repairing the mirror: %w", err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name()] = true
	}
	damaged := false
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(packDir, name)
		switch {
		case strings.HasPrefix(name, "tmp_"):
			err = os.Remove(path)
		case strings.HasSuffix(name, ".idx") && !have[strings.TrimSuffix(name, ".idx")+".pack"]:
			err = os.Remove(path)
		case strings.HasSuffix(name, ".pack"):
			if checkIndex(strings.TrimSuffix(path, ".pack")+".idx") != nil {
				damaged = true
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("repairing the mirror: %w", err)
		}
	}
	if !damaged {
		return nil
	}
	top, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("emptying the damaged mirror: %w", err)
	}
	for _, e := range top {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("emptying the damaged mirror: %w", err)
		}
	}
	return nil
}

// checkIndex decodes the pack index at path whole.
func checkIndex(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return idxfile.NewDecoder(bufio.NewReader(f)).Decode(idxfile.NewMemoryIndex())
}

// newStorage opens the git storage in dir. keep holds pack files open, for
// the long-lived reader.
func newStorage(dir string, keep bool) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(),
		filesystem.Options{KeepDescriptors: keep})
}

// refresh replaces the readers' storage with a new one, which sees the packs
// written since the old one loaded its pack index.
func (r *Repo) refresh() {
	st := newStorage(r.dir, true)
	r.mu.Lock()
	old := r.st
	r.st = st
	r.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// defaultBranch is the branch the origin's HEAD points to, else main, else
// master.
func (r *Repo) defaultBranch(ctx context.Context) (string, error) {
	var refs []*plumbing.Reference
	if r.local {
		src, err := openLocal(r.origin)
		if err != nil {
			return "", err
		}
		defer closeStorer(src.Storer)
		iter, err := src.Storer.IterReferences()
		if err != nil {
			return "", err
		}
		if err := iter.ForEach(func(ref *plumbing.Reference) error {
			refs = append(refs, ref)
			return nil
		}); err != nil {
			return "", err
		}
		if head, err := src.Storer.Reference(plumbing.HEAD); err == nil {
			refs = append(refs, head)
		}
	} else {
		rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: remoteName, URLs: []string{r.origin}})
		var err error
		if refs, err = rem.ListContext(ctx, &git.ListOptions{Auth: r.auth}); err != nil {
			return "", err
		}
	}

	var head plumbing.ReferenceName
	branches := map[plumbing.ReferenceName]bool{}
	for _, ref := range refs {
		switch {
		case ref.Name() == plumbing.HEAD && ref.Type() == plumbing.SymbolicReference:
			head = ref.Target()
		case ref.Name().IsBranch():
			branches[ref.Name()] = true
		}
	}
	for _, b := range []plumbing.ReferenceName{head, plumbing.Main, plumbing.Master} {
		if b.IsBranch() && branches[b] {
			return b.Short(), nil
		}
	}
	return "", errors.New("cannot tell which branch to follow: HEAD names no branch and there is neither main nor master; set the branch")
}

// fetch brings the mirror's branch up to date with the origin and returns
// its head. The caller holds wmu.
func (r *Repo) fetch(ctx context.Context) (plumbing.Hash, error) {
	st := newStorage(r.dir, false)
	defer st.Close()
	var err error
	if r.local {
		err = r.fetchLocal(ctx, st)
	} else {
		err = r.fetchRemote(ctx, st)
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetching branch %s from %s: %w", r.branch.Short(), redact(r.origin), err)
	}
	ref, err := st.Reference(r.branch)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("reading branch %s: %w", r.branch.Short(), err)
	}
	r.refresh()
	return ref.Hash(), nil
}

func (r *Repo) fetchRemote(ctx context.Context, st *filesystem.Storage) error {
	repo, err := git.Open(st, nil)
	if err != nil {
		return err
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		Auth:       r.auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// Fetch brings the mirror up to date with the origin and returns the head of
// the branch and whether it differs from the head returned by the previous
// Fetch (or by Open). Nothing new to fetch is not an error.
func (r *Repo) Fetch(ctx context.Context) (Revision, bool, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	h, err := r.fetch(ctx)
	if err != nil {
		return Revision{}, false, err
	}
	rev, err := r.revision(h)
	if err != nil {
		return Revision{}, false, err
	}
	changed := h != r.last
	r.last = h
	return rev, changed, nil
}

// Branch returns the name of the branch the mirror follows.
func (r *Repo) Branch() string { return r.branch.Short() }

// Head returns the head of the branch in the mirror, as of the last Fetch or
// Commit.
func (r *Repo) Head() (Revision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.head()
	if err != nil {
		return Revision{}, err
	}
	return revisionOf(r.st, h)
}

// head returns the hash of the branch in the mirror. The caller holds mu.
func (r *Repo) head() (plumbing.Hash, error) {
	ref, err := r.st.Reference(r.branch)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("reading branch %s: %w", r.branch.Short(), err)
	}
	return ref.Hash(), nil
}

// Revision returns the commit whose sha is given in full or abbreviated to at
// least 4 hexadecimal digits, or an error wrapping ErrUnknownRevision (or
// ErrAmbiguousRevision).
func (r *Repo) Revision(sha string) (Revision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.resolve(sha)
	if err != nil {
		return Revision{}, err
	}
	return revisionOf(r.st, h)
}

func (r *Repo) revision(h plumbing.Hash) (Revision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return revisionOf(r.st, h)
}

// resolve finds the commit named by a full or abbreviated sha. The caller
// holds mu.
func (r *Repo) resolve(sha string) (plumbing.Hash, error) {
	s := strings.ToLower(strings.TrimSpace(sha))
	if len(s) < 4 || len(s) > 40 || strings.Trim(s, "0123456789abcdef") != "" {
		return plumbing.ZeroHash, fmt.Errorf("revision %q: %w (want 4 to 40 hexadecimal digits)", sha, ErrUnknownRevision)
	}
	isCommit := func(h plumbing.Hash) bool {
		_, err := r.st.EncodedObject(plumbing.CommitObject, h)
		return err == nil
	}
	if len(s) == 40 {
		h := plumbing.NewHash(s)
		if !isCommit(h) {
			return plumbing.ZeroHash, fmt.Errorf("revision %s: %w", s, ErrUnknownRevision)
		}
		return h, nil
	}
	prefix, err := hex.DecodeString(s[:len(s)&^1])
	if err != nil {
		return plumbing.ZeroHash, err
	}
	candidates, err := r.st.HashesWithPrefix(prefix)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	var found []plumbing.Hash
	for _, h := range candidates {
		if strings.HasPrefix(h.String(), s) && isCommit(h) {
			found = append(found, h)
		}
	}
	switch len(found) {
	case 0:
		return plumbing.ZeroHash, fmt.Errorf("revision %s: %w", s, ErrUnknownRevision)
	case 1:
		return found[0], nil
	default:
		return plumbing.ZeroHash, fmt.Errorf("revision %s matches %d commits: %w", s, len(found), ErrAmbiguousRevision)
	}
}

// commit reads a commit of the mirror. The caller holds mu.
func (r *Repo) commit(h plumbing.Hash) (*object.Commit, error) {
	return object.GetCommit(r.st, h)
}

// parseOrigin tells a repository on this machine (a path or a file:// URL,
// returned as an absolute path) from one reached over the network, following
// git's rule for scp-like addresses: a colon before the first slash.
func parseOrigin(raw string) (origin string, local bool, err error) {
	if rest, ok := strings.CutPrefix(raw, "file://"); ok {
		u, err := url.Parse(raw)
		if err != nil {
			return "", false, fmt.Errorf("repository URL %q: %w", raw, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", false, fmt.Errorf("repository URL %q: a file:// URL names no host", raw)
		}
		p := u.Path
		if p == "" {
			p = rest
		}
		abs, err := filepath.Abs(filepath.FromSlash(p))
		return abs, true, err
	}
	if strings.Contains(raw, "://") {
		return raw, false, nil
	}
	colon, slash := strings.IndexByte(raw, ':'), strings.IndexByte(raw, '/')
	drive := colon == 1 && filepath.VolumeName(raw) != ""
	if colon > 0 && (slash < 0 || colon < slash) && !drive {
		return raw, false, nil
	}
	abs, err := filepath.Abs(raw)
	return abs, true, err
}

// redact hides the password of a URL, for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// closeStorer releases the files a storage holds open.
func closeStorer(s storer.Storer) {
	if c, ok := s.(io.Closer); ok {
		_ = c.Close()
	}
}
