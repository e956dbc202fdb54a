package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Files returns the tree of the commit sha (full or abbreviated) as a
// read-only file system. The whole tree is read at once; file contents are
// read when a file is read. It implements fs.ReadFileFS, fs.ReadDirFS,
// fs.StatFS and fs.ReadLinkFS. Modes are 0644 or 0755 for files, as git
// records them, and modification times are the commit time. Symbolic links
// are followed when they point inside the tree (a path through one that
// leads out of it is an ErrOutside); submodules are left out.
func (r *Repo) Files(sha string) (fs.FS, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tree(sha)
}

// tree reads the tree of the commit sha. The caller holds mu.
func (r *Repo) tree(sha string) (*treeFS, error) {
	h, err := r.resolve(sha)
	if err != nil {
		return nil, err
	}
	c, err := r.commit(h)
	if err != nil {
		return nil, err
	}
	t := &treeFS{repo: r, nodes: map[string]*node{}, mtime: c.Committer.When}
	root := &node{name: ".", mode: filemode.Dir, hash: c.TreeHash}
	t.nodes["."] = root
	if err := t.load(root, ""); err != nil {
		return nil, fmt.Errorf("reading the tree of %s: %w", h, err)
	}
	return t, nil
}

var (
	_ interface {
		fs.ReadFileFS
		fs.ReadDirFS
		fs.StatFS
		fs.ReadLinkFS
	} = (*treeFS)(nil)
	_ interface {
		fs.ReadDirFile
		io.ReadSeeker
		io.ReaderAt
	} = (*file)(nil)
)

// treeFS is the tree of one commit.
type treeFS struct {
	repo  *Repo
	nodes map[string]*node // by path; the root is "."
	mtime time.Time
}

// node is a directory, a file or a symbolic link of a tree.
type node struct {
	name     string
	mode     filemode.FileMode
	hash     plumbing.Hash
	children []*node // of a directory, by name
	size     atomic.Int64
}

func (t *treeFS) load(dir *node, prefix string) error {
	tree, err := object.GetTree(t.repo.st, dir.hash)
	if err != nil {
		return err
	}
	for _, e := range tree.Entries {
		if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\\\x00") {
			return fmt.Errorf("invalid file name %q in %s", e.Name, dir.name)
		}
		switch e.Mode {
		case filemode.Submodule:
			continue
		case filemode.Dir, filemode.Regular, filemode.Executable, filemode.Symlink:
		case filemode.Deprecated:
			e.Mode = filemode.Regular
		default:
			return fmt.Errorf("file %s: unknown mode %o", path.Join(prefix, e.Name), uint32(e.Mode))
		}
		n := &node{name: e.Name, mode: e.Mode, hash: e.Hash}
		n.size.Store(-1)
		p := path.Join(prefix, e.Name)
		t.nodes[p] = n
		dir.children = append(dir.children, n)
		if e.Mode == filemode.Dir {
			if err := t.load(n, p); err != nil {
				return err
			}
		}
	}
	// git orders a directory as if its name ended in "/"; fs.ReadDir by name.
	sort.Slice(dir.children, func(i, j int) bool { return dir.children[i].name < dir.children[j].name })
	return nil
}

// find returns the node at name; it follows symbolic links in directories
// and, if follow, in the last element.
func (t *treeFS) find(op, name string, follow bool) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if n, ok := t.nodes[name]; ok && (!follow || n.mode != filemode.Symlink) {
		return n, nil // the common case: no link on the way
	}
	elems, dir, links := splitPath(name), ".", 0
	for i := 0; i < len(elems); i++ {
		p := path.Join(dir, elems[i])
		n, ok := t.nodes[p]
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if n.mode != filemode.Symlink || (i == len(elems)-1 && !follow) {
			dir = p
			continue
		}
		if links++; links > 40 {
			return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
		}
		target, err := t.repo.readBlob(n.hash)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		to := path.Join(dir, string(target))
		if path.IsAbs(string(target)) || to == ".." || strings.HasPrefix(to, "../") {
			// A revision holds nothing outside its tree: say so, rather
			// than that the file does not exist.
			return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s links to %s: %w", p, target, ErrOutside)}
		}
		elems, dir, i = append(splitPath(to), elems[i+1:]...), ".", -1
	}
	return t.nodes[dir], nil
}

func splitPath(p string) []string {
	if p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	n, err := t.find("open", name, true)
	if err != nil {
		return nil, err
	}
	return &file{fsys: t, n: n, path: name}, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	n, err := t.find("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.mode == filemode.Dir {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	b, err := t.repo.readBlob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return b, nil
}

// ReadDir implements fs.ReadDirFS.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := t.find("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if n.mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return t.entries(n.children), nil
}

// Stat implements fs.StatFS.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	n, err := t.find("stat", name, true)
	if err != nil {
		return nil, err
	}
	return t.stat(n, path.Base(name))
}

// Lstat implements fs.ReadLinkFS.
func (t *treeFS) Lstat(name string) (fs.FileInfo, error) {
	n, err := t.find("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return t.stat(n, path.Base(name))
}

// ReadLink implements fs.ReadLinkFS.
func (t *treeFS) ReadLink(name string) (string, error) {
	n, err := t.find("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	b, err := t.repo.readBlob(n.hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(b), nil
}

// ErrOutside is the error of a path that a symbolic link leads out of the
// revision's tree.
var ErrOutside = errors.New("a symbolic link out of the repository")

var (
	errIsDir  = errors.New("is a directory")
	errNotDir = errors.New("not a directory")
)

func (t *treeFS) entries(nodes []*node) []fs.DirEntry {
	entries := make([]fs.DirEntry, len(nodes))
	for i, n := range nodes {
		entries[i] = dirEntry{t, n}
	}
	return entries
}

func (t *treeFS) stat(n *node, name string) (fs.FileInfo, error) {
	size := n.size.Load()
	if size < 0 && n.mode == filemode.Dir {
		size = 0
	}
	if size < 0 {
		var err error
		if size, err = t.repo.blobSize(n.hash); err != nil {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
		}
		n.size.Store(size)
	}
	return fileInfo{name: name, size: size, mode: n.fsMode(), mtime: t.mtime}, nil
}

func (n *node) fsMode() fs.FileMode {
	switch n.mode {
	case filemode.Dir:
		return fs.ModeDir | 0o755
	case filemode.Executable:
		return 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	default:
		return 0o644
	}
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return fi.mtime }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

type dirEntry struct {
	fsys *treeFS
	n    *node
}

func (d dirEntry) Name() string               { return d.n.name }
func (d dirEntry) IsDir() bool                { return d.n.mode == filemode.Dir }
func (d dirEntry) Type() fs.FileMode          { return d.n.fsMode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return d.fsys.stat(d.n, d.n.name) }
func (d dirEntry) String() string             { return fs.FormatDirEntry(d) }

// file is an open file or directory; a file's content is read on first use.
type file struct {
	fsys *treeFS
	n    *node
	path string
	data *bytes.Reader
	next int // of a directory: the next entry ReadDir returns
}

func (f *file) Stat() (fs.FileInfo, error) { return f.fsys.stat(f.n, path.Base(f.path)) }

func (f *file) Close() error { return nil }

func (f *file) content(op string) (*bytes.Reader, error) {
	if f.n.mode == filemode.Dir {
		return nil, &fs.PathError{Op: op, Path: f.path, Err: errIsDir}
	}
	if f.data == nil {
		b, err := f.fsys.repo.readBlob(f.n.hash)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: f.path, Err: err}
		}
		f.data = bytes.NewReader(b)
	}
	return f.data, nil
}

func (f *file) Read(b []byte) (int, error) {
	rd, err := f.content("read")
	if err != nil {
		return 0, err
	}
	return rd.Read(b)
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	rd, err := f.content("read")
	if err != nil {
		return 0, err
	}
	return rd.ReadAt(b, off)
}

func (f *file) Seek(off int64, whence int) (int64, error) {
	rd, err := f.content("seek")
	if err != nil {
		return 0, err
	}
	return rd.Seek(off, whence)
}

// ReadDir implements fs.ReadDirFile.
func (f *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if f.n.mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: f.path, Err: errNotDir}
	}
	rest := f.n.children[f.next:]
	if n > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(n, len(rest))]
	}
	f.next += len(rest)
	return f.fsys.entries(rest), nil
}

// readBlob returns the content of a blob of the mirror.
func (r *Repo) readBlob(h plumbing.Hash) ([]byte, error) {
	var b []byte
	err := r.withBlob(h, func(size int64, rd io.Reader) error {
		b = make([]byte, size)
		_, err := io.ReadFull(rd, b)
		return err
	})
	return b, err
}

// withBlob calls f with the content of a blob of the mirror, holding mu.
func (r *Repo) withBlob(h plumbing.Hash, f func(size int64, rd io.Reader) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	obj, err := r.st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return err
	}
	rd, err := obj.Reader()
	if err != nil {
		return err
	}
	defer rd.Close()
	return f(obj.Size(), rd)
}

func (r *Repo) blobSize(h plumbing.Hash) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.EncodedObjectSize(h)
}

// Export writes the tree of the commit sha into dir, which must be missing or
// empty: files with git's modes (executable or not) and symbolic links, which
// are created last so that no file is ever written through one. Submodules are
// left out, and a tree that holds a .git entry is refused.
func (r *Repo) Export(sha, dir string) error {
	r.mu.Lock()
	t, err := r.tree(sha)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return err
	} else if len(entries) > 0 {
		return fmt.Errorf("exporting %s: %s is not empty", sha, dir)
	}
	var links []string
	var export func(n *node, rel string) error
	export = func(n *node, rel string) error {
		for _, c := range n.children {
			if strings.EqualFold(c.name, ".git") {
				return fmt.Errorf("exporting %s: the tree holds %s", sha, path.Join(rel, c.name))
			}
			p := path.Join(rel, c.name)
			switch c.mode {
			case filemode.Dir:
				if err := os.Mkdir(filepath.Join(dir, filepath.FromSlash(p)), 0o755); err != nil {
					return err
				}
				if err := export(c, p); err != nil {
					return err
				}
			case filemode.Symlink:
				links = append(links, p)
			default:
				if err := r.writeBlob(c, filepath.Join(dir, filepath.FromSlash(p))); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := export(t.nodes["."], ""); err != nil {
		return err
	}
	for _, p := range links {
		if err := r.writeBlob(t.nodes[p], filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) writeBlob(n *node, p string) error {
	return r.withBlob(n.hash, func(_ int64, rd io.Reader) error { return writeEntry(p, n.mode, rd) })
}
