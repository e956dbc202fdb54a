package source

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// packFiles lists the names of the files in the mirror's pack directory.
func packFiles(t *testing.T, mirror string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(mirror, "objects", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// newPack returns the path, without extension, of the one pack that after
// holds and before did not.
func newPack(t *testing.T, before, after map[string]bool) string {
	t.Helper()
	var found []string
	for n := range after {
		if strings.HasSuffix(n, ".pack") && !before[n] {
			found = append(found, strings.TrimSuffix(n, ".pack"))
		}
	}
	if len(found) != 1 {
		t.Fatalf("the fetch wrote packs %v, want one", found)
	}
	return found[0]
}

// TestFetchAfterAKillDuringAFetch kills socle, in effect, at each point of
// writing a fetched pack that leaves something behind, and checks that the
// next socle opens the mirror and fetches the same commit again. go-git
// writes a pack's index in place before it renames the pack beside it, and
// skips writing an index that exists: a truncated index left by a kill used
// to be kept for the identical pack of the next fetch, and every read of the
// mirror failed with EOF from then on (seen in the crash test in CI).
func TestFetchAfterAKillDuringAFetch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// kill leaves the mirror as a kill would, given the new pack's
		// path without extension.
		kill func(t *testing.T, pack string)
	}{
		{"index half written, no pack", func(t *testing.T, pack string) {
			truncateHalf(t, pack+".idx")
			remove(t, pack+".pack")
		}},
		{"index empty, no pack", func(t *testing.T, pack string) {
			if err := os.Truncate(pack+".idx", 0); err != nil {
				t.Fatal(err)
			}
			remove(t, pack+".pack")
		}},
		{"pack still a temporary file", func(t *testing.T, pack string) {
			if err := os.Rename(pack+".pack", filepath.Join(filepath.Dir(pack), "tmp_pack_123456")); err != nil {
				t.Fatal(err)
			}
			remove(t, pack+".idx")
		}},
		// A mirror left damaged by an earlier socle: the pack is there,
		// its index is not whole. The mirror is only a copy of the origin,
		// so socle fetches it again.
		{"pack with a truncated index", func(t *testing.T, pack string) {
			truncateHalf(t, pack+".idx")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			up := newGoGitUpstream(t, "main")
			one := up.Commit(t, "one", map[string]string{"a": "1"})
			dir := filepath.Join(t.TempDir(), "mirror")
			r, err := Open(ctx, Options{URL: up.Dir(), Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			two := up.Commit(t, "two", map[string]string{"a": "2", "b/c": "3"})
			before := packFiles(t, dir)
			if _, _, err := r.Fetch(ctx); err != nil {
				t.Fatal(err)
			}
			pack := filepath.Join(dir, "objects", "pack", newPack(t, before, packFiles(t, dir)))

			// The branch still names commit one when the kill comes
			// before the reference is written.
			st := newStorage(dir, false)
			if err := st.SetReference(plumbing.NewHashReference("refs/heads/main", plumbing.NewHash(one))); err != nil {
				t.Fatal(err)
			}
			st.Close()
			tc.kill(t, pack)

			r, err = Open(ctx, Options{URL: up.Dir(), Dir: dir})
			if err != nil {
				t.Fatalf("opening the mirror after the kill: %v", err)
			}
			rev, _, err := r.Fetch(ctx)
			if err != nil {
				t.Fatalf("fetching after the kill: %v", err)
			}
			if rev.SHA != two {
				t.Fatalf("head after the fetch = %s, want %s", rev.SHA, two)
			}
			files, err := r.Files(rev.SHA)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := fs.ReadFile(files, "b/c"); err != nil || string(b) != "3" {
				t.Fatalf("b/c = %q, %v; want 3", b, err)
			}
		})
	}
}

func truncateHalf(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
