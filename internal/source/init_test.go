package source

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestInit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := t.TempDir()
	writeWorkTree(t, src, map[string]string{
		"socle.yaml":             "kind: Platform\n",
		"apps/web/score.yaml":    "web\n",
		"apps/web/start.sh":      "#!/bin/sh\n",
		".gitignore":             "*.tfstate\nscratch/\n",
		"stacks/net/main.tf":     "x\n",
		"stacks/net/a.tfstate":   "secret state\n",
		"scratch/notes.txt":      "x\n",
		".git/HEAD":              "not copied\n",
		"apps/web/.git/config":   "nested repository, not copied\n",
		".socle/state.db":        "not copied\n",
		"templates/svc/.keep.sh": "",
	}, nil)
	if err := os.Symlink("apps/web", filepath.Join(src, "web")); err != nil {
		t.Fatal(err)
	}
	// socle up keeps its data, and so this repository, under .socle.
	dst := filepath.Join(src, ".socle", "repo")

	rev, err := Init(ctx, src, dst, "socle", "socle@example.com", "initial platform\n")
	if err != nil {
		t.Fatal(err)
	}
	if rev.Subject() != "initial platform" || rev.Author != "socle" {
		t.Errorf("revision = %+v", rev)
	}
	if headOf(t, dst) != rev.SHA {
		t.Fatal("Init's revision is not the head of the new repository")
	}
	r := open(t, dst)
	if r.Branch() != "main" {
		t.Errorf("branch = %s, want main", r.Branch())
	}
	fsys, err := r.Files(rev.SHA)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"socle.yaml":             "kind: Platform\n",
		"apps/web/score.yaml":    "web\n",
		"apps/web/start.sh":      "#!/bin/sh\n",
		".gitignore":             "*.tfstate\nscratch/\n",
		"stacks/net/main.tf":     "x\n",
		"templates/svc/.keep.sh": "",
	}
	if d := diffMaps(contents(t, fsys), want); d != "" {
		t.Errorf("Init committed:\n%s", d)
	}
	if fi, err := fs.Stat(fsys, "apps/web/start.sh"); err != nil || fi.Mode() != 0o755 {
		t.Errorf("start.sh: %v, %v; want executable", fi, err)
	}
	for _, name := range []string{"stacks/net/a.tfstate", "scratch", ".socle", "apps/web/.git"} {
		if _, err := os.Lstat(filepath.Join(dst, name)); !os.IsNotExist(err) {
			t.Errorf("%s was copied into the new repository: %v", name, err)
		}
	}
	if target, err := fs.ReadLink(fsys, "web"); err != nil || target != "apps/web" {
		t.Errorf("symbolic link web = %q, %v", target, err)
	}
	cleanWorkTree(t, dst)

	// socle commits to it, and its working tree follows.
	prom, err := r.Commit(ctx, Change{Files: map[string][]byte{"releases/dev.yaml": []byte("web: 1\n")}, Author: "socle", Message: "promote", Parent: rev.SHA})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dst, "releases/dev.yaml")); got != "web: 1\n" {
		t.Errorf("working tree releases/dev.yaml = %q", got)
	}
	cleanWorkTree(t, dst)

	// So does git push from a clone: git honours updateInstead.
	needGit(t)
	clone := t.TempDir()
	runGit(t, clone, "clone", "-q", dst, ".")
	writeWorkTree(t, clone, map[string]string{"apps/api/score.yaml": "api\n"}, []string{"stacks"})
	runGit(t, clone, "add", "-A")
	runGit(t, clone, "commit", "-q", "-m", "add api")
	runGit(t, clone, "push", "-q", "origin", "main")
	pushed := runGit(t, clone, "rev-parse", "HEAD")
	if got := headOf(t, dst); got != pushed {
		t.Fatalf("after git push, main = %s, want %s", got, pushed)
	}
	if got := readFile(t, filepath.Join(dst, "apps/api/score.yaml")); got != "api\n" {
		t.Errorf("git push did not update the working tree: %q", got)
	}
	cleanWorkTree(t, dst)
	if got, changed, err := r.Fetch(ctx); err != nil || !changed || got.SHA != pushed {
		t.Errorf("Fetch after git push = %s, %v, %v", got.SHA, changed, err)
	}
	if log, err := r.Log(ctx, rev.SHA, ""); err != nil || len(log) != 2 || log[1].SHA != prom.SHA {
		t.Errorf("Log = %s, %v", subjects(log), err)
	}
}

func TestInitRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := t.TempDir()
	writeWorkTree(t, src, map[string]string{"a": "1"}, nil)

	busy := t.TempDir()
	writeWorkTree(t, busy, map[string]string{"mine": "1"}, nil)
	if _, err := Init(ctx, src, busy, "a", "", "m"); err == nil {
		t.Error("Init into a non-empty directory succeeded")
	}
	if got := readFile(t, filepath.Join(busy, "mine")); got != "1" {
		t.Error("a refused Init touched the directory")
	}
	if _, err := Init(ctx, src, src, "a", "", "m"); err == nil {
		t.Error("Init of a directory onto itself succeeded")
	}
	if _, err := Init(ctx, filepath.Join(src, "missing"), t.TempDir(), "a", "", "m"); err == nil {
		t.Error("Init from a missing directory succeeded")
	}
	if _, err := Init(ctx, src, filepath.Join(t.TempDir(), "x"), "", "", "m"); err == nil {
		t.Error("Init without author succeeded")
	}
	// Nothing to commit: the failed attempt leaves nothing behind.
	empty, dst := t.TempDir(), filepath.Join(t.TempDir(), "repo")
	if _, err := Init(ctx, empty, dst, "a", "", "m"); err == nil {
		t.Error("Init of an empty directory succeeded")
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("a failed Init left %s: %v", dst, err)
	}
}
