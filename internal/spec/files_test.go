package spec

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestLoadSymlinks: a symbolic link anywhere socle reads is a problem that
// says what it is and where it points, and is never read through, whether
// it stays in the repository or not. (The same loader reads a checkout and
// a git revision: cli and source test those two file systems.)
func TestLoadSymlinks(t *testing.T) {
	t.Parallel()
	link := func(target string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	}
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"score out of the repository", fstest.MapFS{"apps/shop/score.yaml": link("/etc/passwd")},
			"apps/shop/score.yaml: is a symbolic link (to /etc/passwd); socle reads regular files only"},
		{"score inside the repository", fstest.MapFS{"apps/shop/score.yaml": link("../../shared/score.yaml"), "shared/score.yaml": {Data: []byte(minimalScore)}},
			"apps/shop/score.yaml: is a symbolic link (to ../../shared/score.yaml)"},
		{"source file of an app", fstest.MapFS{"apps/shop/static/index.html": link("../../../README.md"), "README.md": {Data: []byte("hi")}},
			"apps/shop/static/index.html: is a symbolic link (to ../../../README.md)"},
		{"platform file", fstest.MapFS{"socle.yaml": link("platform.yaml"), "platform.yaml": {Data: []byte(minimalPlatform)}},
			"socle.yaml: is a symbolic link (to platform.yaml)"},
		{"app directory", fstest.MapFS{"apps/cart": link("shop")},
			"apps/cart: is a symbolic link (to shop)"},
		{"apps directory", fstest.MapFS{"apps": link("services"), "services/shop/score.yaml": {Data: []byte(minimalScore)}},
			"apps: is a symbolic link (to services)"},
		{"policy file", fstest.MapFS{"policies/p.yaml": link("/etc/passwd")},
			"policies/p.yaml: is a symbolic link (to /etc/passwd)"},
		{"template directory", fstest.MapFS{"templates/svc": link("/tmp")},
			"templates/svc: is a symbolic link (to /tmp)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fsys := minimalRepo()
			for name, f := range tc.files {
				if name == "apps" {
					delete(fsys, "apps/shop/score.yaml")
				}
				fsys[name] = f
			}
			_, ps := Load(fsys)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			all := strings.Join(got, "\n")
			if !strings.Contains(all, tc.want) {
				t.Errorf("want a problem containing\n  %s\ngot:\n%s", tc.want, all)
			}
			if strings.Contains(all, "missing") || strings.Contains(all, "does not exist") {
				t.Errorf("a link is reported as something else:\n%s", all)
			}
		})
	}
}
