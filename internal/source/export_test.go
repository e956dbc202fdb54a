package source

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func TestExport(t *testing.T) {
	t.Parallel()
	for _, mk := range makers {
		t.Run(mk.name, func(t *testing.T) {
			t.Parallel()
			up := mk.new(t, "main")
			first := up.Commit(t, "first", firstTree)
			if err := os.Symlink("apps/web", filepath.Join(up.Dir(), "current")); err != nil {
				t.Fatal(err)
			}
			sha := up.Commit(t, "link", nil, "stacks")
			r := open(t, up.Dir())

			dir := filepath.Join(t.TempDir(), "build", "src")
			if err := r.Export(sha[:10], dir); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for k, v := range firstTree {
				want[k] = v
			}
			delete(want, "stacks/net/main.tf")
			if d := diffMaps(contents(t, os.DirFS(dir)), want); d != "" {
				t.Errorf("exported:\n%s", d)
			}
			for name, perm := range map[string]fs.FileMode{"apps/web/build.sh": 0o100, "socle.yaml": 0} {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil || fi.Mode().Perm()&0o100 != perm {
					t.Errorf("%s: mode %v, %v; want owner-execute bit %o", name, fi.Mode(), err, perm)
				}
			}
			if target, err := os.Readlink(filepath.Join(dir, "current")); err != nil || target != "apps/web" {
				t.Errorf("current -> %q, %v", target, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "stacks")); !os.IsNotExist(err) {
				t.Errorf("stacks/, removed by the commit, was exported: %v", err)
			}

			if err := r.Export(first, dir); err == nil {
				t.Error("Export into a non-empty directory succeeded")
			}
			if err := r.Export("feed", t.TempDir()); err == nil {
				t.Error("Export of an unknown revision succeeded")
			}
		})
	}
}

// TestExportRefusesGitDir exports a tree that holds a .git directory, which
// git itself never writes: refused before anything lands there.
func TestExportRefusesGitDir(t *testing.T) {
	t.Parallel()
	up := newGoGitUpstream(t, "main")
	up.Commit(t, "first", map[string]string{"a": "1"})
	r := open(t, up.Dir())

	r.mu.Lock()
	hook, err := writeTree(r.st, plumbing.ZeroHash, map[string]edit{"hooks/post-checkout": {data: []byte("#!/bin/sh\n")}}, "")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := storeTree(r.st, []object.TreeEntry{{Name: ".GIT", Mode: filemode.Dir, Hash: hook}})
	if err != nil {
		t.Fatal(err)
	}
	obj := r.st.NewEncodedObject()
	if err := (&object.Commit{Message: "evil", TreeHash: tree}).Encode(obj); err != nil {
		t.Fatal(err)
	}
	evil, err := r.st.SetEncodedObject(obj)
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := r.Export(evil.String(), dir); err == nil {
		t.Fatal("Export of a tree with .GIT succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, ".GIT")); !os.IsNotExist(err) {
		t.Errorf(".GIT was written: %v", err)
	}
}
