package source

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

var firstTree = map[string]string{
	"socle.yaml":            "kind: Platform\n",
	"apps/web/score.yaml":   "apiVersion: score.dev/v1b1\nmetadata: {name: web}\n",
	"apps/web/build.sh":     "#!/bin/sh\necho build\n",
	"apps/web/static/a.txt": "a\n",
	"stacks/net/main.tf":    "resource \"x\" \"y\" {}\n",
}

// TestOpenFetchFiles follows an upstream through commits, for repositories
// made by go-git and by git, reached by path, by file:// URL and (for a
// working copy) through its .git directory.
func TestOpenFetchFiles(t *testing.T) {
	t.Parallel()
	urls := map[string]func(dir string) string{
		"path":     func(dir string) string { return dir },
		"file-url": func(dir string) string { return "file://" + filepath.ToSlash(dir) },
		"git-dir":  func(dir string) string { return filepath.Join(dir, ".git") },
	}
	for _, mk := range makers {
		for how, url := range urls {
			t.Run(mk.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				up := mk.new(t, "main")
				first := up.Commit(t, "first\n\nwith a body\n", firstTree)
				ctx := context.Background()
				r := open(t, url(up.Dir()))

				head, err := r.Head()
				if err != nil {
					t.Fatal(err)
				}
				if head.SHA != first || head.Subject() != "first" || head.Message != "first\n\nwith a body" || head.Short() != first[:7] {
					t.Fatalf("head = %+v, want %s with message \"first\\n\\nwith a body\"", head, first)
				}
				if r.Branch() != "main" {
					t.Errorf("branch = %q, want main", r.Branch())
				}
				if _, changed, err := r.Fetch(ctx); err != nil || changed {
					t.Fatalf("Fetch with nothing new: changed = %v, err = %v", changed, err)
				}

				if g, ok := up.(*gitUpstream); ok {
					runGit(t, g.dir, "gc", "-q") // packed objects and packed refs
				}
				second := up.Commit(t, "second", map[string]string{
					"apps/web/score.yaml": "changed\n",
					"apps/api/score.yaml": "api\n",
				}, "stacks/net/main.tf")
				rev, changed, err := r.Fetch(ctx)
				if err != nil || !changed || rev.SHA != second {
					t.Fatalf("Fetch after a commit = %s, %v, %v; want %s, true", rev.SHA, changed, err, second)
				}
				if _, changed, err := r.Fetch(ctx); err != nil || changed {
					t.Fatalf("second Fetch: changed = %v, err = %v", changed, err)
				}

				want := map[string]string{
					"socle.yaml":            firstTree["socle.yaml"],
					"apps/web/score.yaml":   "changed\n",
					"apps/web/build.sh":     firstTree["apps/web/build.sh"],
					"apps/web/static/a.txt": "a\n",
					"apps/api/score.yaml":   "api\n",
				}
				fsys, err := r.Files(second[:8])
				if err != nil {
					t.Fatal(err)
				}
				if d := diffMaps(contents(t, fsys), want); d != "" {
					t.Errorf("Files(second):\n%s", d)
				}
				if _, err := fs.Stat(fsys, "stacks"); !os.IsNotExist(err) {
					t.Errorf("stacks/ was emptied by the second commit, yet Stat says %v", err)
				}
				old, err := r.Files(first)
				if err != nil {
					t.Fatal(err)
				}
				if d := diffMaps(contents(t, old), firstTree); d != "" {
					t.Errorf("Files(first):\n%s", d)
				}
				for name, mode := range map[string]fs.FileMode{"apps/web/build.sh": 0o755, "socle.yaml": 0o644, "apps": fs.ModeDir | 0o755} {
					fi, err := fs.Stat(fsys, name)
					if err != nil || fi.Mode() != mode {
						t.Errorf("mode of %s = %v (%v), want %v", name, fi.Mode(), err, mode)
					}
				}
			})
		}
	}
}

// TestOpenReuse reopens a mirror while the origin is gone: socle starts from
// what it has.
func TestOpenReuse(t *testing.T) {
	t.Parallel()
	up := newGoGitUpstream(t, "main")
	sha := up.Commit(t, "one", map[string]string{"a": "1"})
	dir := filepath.Join(t.TempDir(), "mirror")
	ctx := context.Background()
	if _, err := Open(ctx, Options{URL: up.Dir(), Dir: dir}); err != nil {
		t.Fatal(err)
	}
	gone := up.Dir() + ".gone"
	if err := os.Rename(up.Dir(), gone); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, Options{URL: up.Dir(), Dir: dir})
	if err != nil {
		t.Fatalf("reopening without the origin: %v", err)
	}
	if head, err := r.Head(); err != nil || head.SHA != sha {
		t.Fatalf("head = %s, %v; want %s", head.SHA, err, sha)
	}
	if _, _, err := r.Fetch(ctx); err == nil {
		t.Fatal("Fetch from a missing origin succeeded")
	}

	// Another branch of the same origin needs the origin.
	if _, err := Open(ctx, Options{URL: up.Dir(), Dir: dir, Branch: "other"}); err == nil {
		t.Fatal("opening another branch without the origin succeeded")
	}
	if err := os.Rename(gone, up.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Options{URL: up.Dir(), Dir: dir, Branch: "other"}); err == nil || !strings.Contains(err.Error(), "other") {
		t.Fatalf("opening a missing branch: %v, want an error naming it", err)
	}

	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Options{URL: up.Dir(), Dir: busy}); err == nil {
		t.Fatal("Open made a mirror in a directory holding other files")
	}
}

func TestOpenShallow(t *testing.T) {
	t.Parallel()
	up := newGitUpstream(t, "main")
	up.Commit(t, "one", map[string]string{"a": "1"})
	up.Commit(t, "two", map[string]string{"a": "2"})
	shallow := t.TempDir()
	runGit(t, shallow, "clone", "-q", "--depth", "1", "file://"+up.Dir(), ".")
	if _, err := Open(context.Background(), Options{URL: shallow, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "shallow") {
		t.Fatalf("Open of a shallow clone: %v, want an error that says so", err)
	}
}

func TestDefaultBranch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mk := range makers {
		t.Run(mk.name, func(t *testing.T) {
			t.Parallel()
			up := mk.new(t, "trunk")
			trunk := up.Commit(t, "on trunk", map[string]string{"a": "1"})
			createBranch(t, up.Dir(), "main")
			createBranch(t, up.Dir(), "master")
			r := open(t, up.Dir())
			if r.Branch() != "trunk" {
				t.Fatalf("branch = %q, want trunk (where HEAD points)", r.Branch())
			}
			if head, _ := r.Head(); head.SHA != trunk {
				t.Fatalf("head = %s, want %s", head.SHA, trunk)
			}
			// An explicit branch wins.
			r2, err := Open(ctx, Options{URL: up.Dir(), Dir: t.TempDir() + "/m", Branch: "refs/heads/trunk"})
			if err != nil || r2.Branch() != "trunk" {
				t.Fatalf("Open with Branch refs/heads/trunk: %v, %v", r2, err)
			}
			if _, err := Open(ctx, Options{URL: up.Dir(), Dir: t.TempDir(), Branch: "a..b"}); err == nil {
				t.Fatal("Open accepted an invalid branch name")
			}
		})
	}
}

func TestRevision(t *testing.T) {
	t.Parallel()
	up := newGoGitUpstream(t, "main")
	first := up.Commit(t, "one", map[string]string{"a": "1"})
	second := up.Commit(t, "two", map[string]string{"a": "2"})
	r := open(t, up.Dir())
	for _, sha := range []string{first, first[:4], strings.ToUpper(second[:12]), " " + second + "\n"} {
		rev, err := r.Revision(sha)
		if err != nil || !strings.HasPrefix(rev.SHA, strings.ToLower(strings.TrimSpace(sha))) {
			t.Errorf("Revision(%q) = %s, %v", sha, rev.SHA, err)
		}
	}
	blob := plumbing.ComputeHash(plumbing.BlobObject, []byte("1")).String()
	for _, sha := range []string{"", "abc", "zzzz", strings.Repeat("0", 40), blob, first + "0"} {
		_, err := r.Revision(sha)
		mustErr(t, err, ErrUnknownRevision)
		if _, err := r.Files(sha); err == nil {
			t.Errorf("Files(%q) succeeded", sha)
		}
	}

	// Find two commits whose shas share 4 digits and add both to the mirror.
	byPrefix := map[string]*plumbing.MemoryObject{}
	var ambiguous string
	r.mu.Lock()
	for i := 0; ambiguous == ""; i++ {
		obj := &plumbing.MemoryObject{}
		c := &object.Commit{Message: strings.Repeat("x", i), Author: object.Signature{When: time.Unix(0, 0)}, Committer: object.Signature{When: time.Unix(0, 0)}}
		if err := c.Encode(obj); err != nil {
			t.Fatal(err)
		}
		prefix := obj.Hash().String()[:4]
		if twin, ok := byPrefix[prefix]; ok {
			for _, o := range []*plumbing.MemoryObject{twin, obj} {
				if _, err := r.st.SetEncodedObject(o); err != nil {
					t.Fatal(err)
				}
			}
			ambiguous = obj.Hash().String()
		}
		byPrefix[prefix] = obj
	}
	r.mu.Unlock()
	_, err := r.Revision(ambiguous[:4])
	mustErr(t, err, ErrAmbiguousRevision)
	if rev, err := r.Revision(ambiguous); err != nil || rev.SHA != ambiguous {
		t.Fatalf("Revision(full) = %v, %v", rev.SHA, err)
	}
}

func TestFilesFS(t *testing.T) {
	t.Parallel()
	for _, mk := range makers {
		t.Run(mk.name, func(t *testing.T) {
			t.Parallel()
			up := mk.new(t, "main")
			tree := map[string]string{"apps.yaml": "x"} // git sorts it before apps/, fs.ReadDir after
			for k, v := range firstTree {
				tree[k] = v
			}
			up.Commit(t, "first", tree)
			link := func(links map[string]string) string {
				for name, target := range links {
					if err := os.Symlink(target, filepath.Join(up.Dir(), name)); err != nil {
						t.Fatal(err)
					}
				}
				return up.Commit(t, "links", nil)
			}
			good := link(map[string]string{"current": "apps/web", "apps/web/up": "../.."})
			sha := link(map[string]string{"apps/out": "../../etc", "loop": "loop"})
			r := open(t, up.Dir())
			fsys, err := r.Files(good)
			if err != nil {
				t.Fatal(err)
			}
			if err := fstest.TestFS(fsys, "socle.yaml", "apps/web/score.yaml", "apps/web/build.sh", "apps/web/static/a.txt", "stacks/net/main.tf", "current"); err != nil {
				t.Fatal(err)
			}
			if fsys, err = r.Files(sha); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{
				"current/score.yaml":          firstTree["apps/web/score.yaml"],
				"apps/web/up/socle.yaml":      firstTree["socle.yaml"],
				"current/up/current/build.sh": firstTree["apps/web/build.sh"],
			} {
				if b, err := fs.ReadFile(fsys, name); err != nil || string(b) != want {
					t.Errorf("ReadFile(%s) = %q, %v; want %q", name, b, err, want)
				}
			}
			for _, name := range []string{"apps/out", "apps/out/passwd", "loop", "nope", "socle.yaml/x"} {
				if _, err := fs.ReadFile(fsys, name); err == nil {
					t.Errorf("ReadFile(%s) succeeded", name)
				}
			}
			if target, err := fs.ReadLink(fsys, "current"); err != nil || target != "apps/web" {
				t.Errorf("ReadLink(current) = %q, %v", target, err)
			}
			if fi, err := fs.Lstat(fsys, "current"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
				t.Errorf("Lstat(current) = %v, %v", fi, err)
			}
			if fi, err := fs.Stat(fsys, "current"); err != nil || !fi.IsDir() || fi.Name() != "current" {
				t.Errorf("Stat(current) = %v, %v; want the directory it points to", fi, err)
			}
			entries, err := fs.ReadDir(fsys, "apps/web")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if got := strings.Join(names, " "); got != "build.sh score.yaml static up" {
				t.Errorf("ReadDir(apps/web) = %s", got)
			}
			root, err := fs.ReadDir(fsys, ".")
			if err != nil {
				t.Fatal(err)
			}
			names = names[:0]
			for _, e := range root {
				names = append(names, e.Name())
			}
			if got := strings.Join(names, " "); got != "apps apps.yaml current loop socle.yaml stacks" {
				t.Errorf("ReadDir(.) = %s", got)
			}
			if _, err := fs.ReadFile(fsys, "apps"); err == nil {
				t.Error("ReadFile of a directory succeeded")
			}
			if _, err := fs.ReadFile(fsys, "/socle.yaml"); err == nil {
				t.Error("ReadFile of an invalid path succeeded")
			}
		})
	}
}

func TestParseOrigin(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in     string
		origin string
		local  bool
		err    bool
	}{
		{in: "/srv/platform", origin: "/srv/platform", local: true},
		{in: "platform", origin: filepath.Join(wd, "platform"), local: true},
		{in: "./a:b", origin: filepath.Join(wd, "a:b"), local: true},
		{in: "file:///srv/platform.git", origin: "/srv/platform.git", local: true},
		{in: "file://localhost/srv/p", origin: "/srv/p", local: true},
		{in: "file://elsewhere/srv/p", err: true},
		{in: "https://git.example.com/org/platform.git", origin: "https://git.example.com/org/platform.git"},
		{in: "ssh://git@git.example.com:2222/org/platform.git", origin: "ssh://git@git.example.com:2222/org/platform.git"},
		{in: "git@github.com:org/platform.git", origin: "git@github.com:org/platform.git"},
		{in: "host:platform", origin: "host:platform"},
	} {
		origin, local, err := parseOrigin(tc.in)
		if (err != nil) != tc.err || origin != tc.origin && !tc.err || local != tc.local {
			t.Errorf("parseOrigin(%q) = %q, %v, %v; want %q, %v, error %v", tc.in, origin, local, err, tc.origin, tc.local, tc.err)
		}
	}
	if got := redact("https://bob:s3cret@example.com/p.git"); strings.Contains(got, "s3cret") {
		t.Errorf("redact left the password: %s", got)
	}
}

func TestRevisionText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ msg, subject string }{
		{"one line", "one line"},
		{"subject\n\nbody\nmore", "subject"},
		{"", ""},
	} {
		if got := (Revision{Message: tc.msg}).Subject(); got != tc.subject {
			t.Errorf("Subject(%q) = %q, want %q", tc.msg, got, tc.subject)
		}
	}
	if got := (Revision{SHA: "0123456789abcdef"}).Short(); got != "0123456" {
		t.Errorf("Short = %q", got)
	}
}
