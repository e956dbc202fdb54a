package source

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	// The test reads a revision as the server does: with the spec loader
	// (a test dependency only; source itself knows nothing of spec).
	"github.com/socle-dev/socle/internal/spec"
)

// TestLinksInARevision: symbolic links committed to git are refused by
// the loader as in a checkout (internal/cli tests that one), saying what
// they are, where a revision used to be invalid with "file does not
// exist"; and a path through a link out of the tree says so.
func TestLinksInARevision(t *testing.T) {
	t.Parallel()
	for _, mk := range makers {
		t.Run(mk.name, func(t *testing.T) {
			t.Parallel()
			up := mk.new(t, "main")
			up.Commit(t, "first", map[string]string{
				"socle.yaml":          "apiVersion: socle.dev/v1\nkind: Platform\nmetadata: {name: p}\nenvironments:\n  - {name: dev, runtime: {type: local}, sync: auto}\n",
				"teams.yaml":          "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: web\n    members: [{user: ann, role: developer}]\n",
				"apps/web/score.yaml": "apiVersion: score.dev/v1b1\nmetadata: {name: web}\ncontainers:\n  main: {image: nginx}\n",
				"apps/api/score.yaml": "apiVersion: score.dev/v1b1\nmetadata: {name: api}\ncontainers:\n  main: {image: nginx}\n",
				"shared/index.html":   "<p>hi</p>\n",
			})
			for name, target := range map[string]string{
				"apps/web/index.html": "../../shared/index.html", // inside the repository
				"apps/web/etc":        "/etc",                    // out of it
				"apps/api/score.yaml": "../web/score.yaml",
			} {
				p := filepath.Join(up.Dir(), name)
				os.Remove(p)
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
			}
			sha := up.Commit(t, "links", nil)
			fsys, err := open(t, up.Dir()).Files(sha)
			if err != nil {
				t.Fatal(err)
			}
			// go-git's worktree records an absolute target relative to
			// its root (/../../../etc); git records it as written.
			etc, err := fs.ReadLink(fsys, "apps/web/etc")
			if err != nil || !strings.HasSuffix(etc, "/etc") {
				t.Fatalf("ReadLink(apps/web/etc) = %q, %v", etc, err)
			}
			_, problems := spec.Load(fsys)
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			all := strings.Join(got, "\n")
			for _, want := range []string{
				"apps/web/index.html: is a symbolic link (to ../../shared/index.html); socle reads regular files only",
				"apps/web/etc: is a symbolic link (to " + etc + ")",
				"apps/api/score.yaml: is a symbolic link (to ../web/score.yaml)",
			} {
				if !strings.Contains(all, want) {
					t.Errorf("want %q, got:\n%s", want, all)
				}
			}
			if strings.Contains(all, "does not exist") || strings.Contains(all, "missing") {
				t.Errorf("a link is reported as something else:\n%s", all)
			}

			_, err = fs.ReadFile(fsys, "apps/web/etc/passwd")
			if !errors.Is(err, ErrOutside) || !strings.Contains(err.Error(), "apps/web/etc links to "+etc) {
				t.Errorf("ReadFile through a link out of the tree: %v", err)
			}
		})
	}
}
