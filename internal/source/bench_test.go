package source

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
)

// bigRepo opens a mirror of a repository whose tree has files files: 200
// applications, each with half its files in a subdirectory.
func bigRepo(b *testing.B, files int) (*Repo, string) {
	b.Helper()
	edits := make(map[string]edit, files)
	for i := range files {
		app, n := i%200, i/200
		dir := fmt.Sprintf("apps/app%03d", app)
		if n%2 == 1 {
			dir += "/config"
		}
		edits[fmt.Sprintf("%s/f%03d.yaml", dir, n)] = edit{data: fmt.Appendf(nil, "app: app%03d\nfile: %d\n%s", app, n, strings.Repeat("# padding\n", 20))}
	}
	mem := memory.NewStorage()
	head, err := writeCommit(mem, plumbing.ZeroHash, edits, Change{Author: "bench", Message: "big"})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		b.Fatal(err)
	}
	if err := copyObjects(context.Background(), mem, repo.Storer, head); err != nil {
		b.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.Main, head)); err != nil {
		b.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.Main)); err != nil {
		b.Fatal(err)
	}
	r, err := Open(context.Background(), Options{URL: dir, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	return r, head.String()
}

// BenchmarkFiles reads a tree of 20,000 files: the tree alone, then every
// file with fs.WalkDir and ReadFile, with the mirror's caches warm and cold.
func BenchmarkFiles(b *testing.B) {
	const files = 20000
	r, sha := bigRepo(b, files)
	b.Run("tree", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.Files(sha); err != nil {
				b.Fatal(err)
			}
		}
	})
	walk := func(b *testing.B, cold bool) {
		for b.Loop() {
			if cold {
				r.refresh() // a new storage, with empty caches
			}
			fsys, err := r.Files(sha)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				n++
				_, err = fs.ReadFile(fsys, p)
				return err
			})
			if err != nil || n != files {
				b.Fatalf("read %d files, %v", n, err)
			}
		}
	}
	b.Run("walk+read", func(b *testing.B) { walk(b, false) })
	b.Run("walk+read-cold", func(b *testing.B) { walk(b, true) })
}
