package cli

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// exampleCopy copies the demo platform into a new directory.
func exampleCopy(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "platform")
	if err := os.CopyFS(dir, os.DirFS(example)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestValidateSymlinks: offline, a symbolic link is refused as the server
// refuses it in a git revision, and nothing it points to is read, out of
// the repository least of all (/etc/passwd was printed in an error).
func TestValidateSymlinks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		link, target, want string
	}{
		{"apps/web/score.yaml", "/etc/passwd", "apps/web/score.yaml: is a symbolic link (to /etc/passwd); socle reads regular files only"},
		{"apps/web/score.yaml", "../api/score.yaml", "apps/web/score.yaml: is a symbolic link (to ../api/score.yaml); socle reads regular files only"},
		{"apps/web/static", "/etc", "apps/web/static: is a symbolic link (to /etc)"},
		{"policies/builtins/overrides.yaml", "/etc/passwd", "policies/builtins/overrides.yaml: is a symbolic link (to /etc/passwd)"},
		{"policies/tests", "/etc", "policies/tests: is a symbolic link (to /etc)"},
	} {
		t.Run(tc.link+"→"+tc.target, func(t *testing.T) {
			t.Parallel()
			dir := exampleCopy(t)
			p := filepath.Join(dir, tc.link)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.RemoveAll(p)
			if err := os.Symlink(tc.target, p); err != nil {
				t.Fatal(err)
			}
			args := []string{"validate", dir}
			if tc.link == "policies/tests" {
				args = []string{"policy", "test", dir}
			}
			out, errOut, code := run(t, args...)
			if code != ExitProblems {
				t.Errorf("exit code %d, want %d", code, ExitProblems)
			}
			if !strings.Contains(out+errOut, tc.want) {
				t.Errorf("want %q in the output:\n%s%s", tc.want, out, errOut)
			}
			if strings.Contains(out+errOut, "root:") {
				t.Errorf("the output shows what the link points to:\n%s%s", out, errOut)
			}
		})
	}
}

// TestDirFSStaysInside: under the loader, the file system of an offline
// repository itself refuses to lead out of it.
func TestDirFSStaysInside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(dirFS(dir), "out/passwd"); err == nil {
		t.Errorf("read /etc/passwd through a link: %.20q…", b)
	}
	if _, err := fs.ReadFile(dirFS(filepath.Join(dir, "nope")), "socle.yaml"); err == nil {
		t.Error("read a file of a directory that does not exist")
	}
}

// TestValidateAliasBomb: socle validate on a Score file holding issue 15's
// bomb (which took it to 3 GB in 15 s) says where the aliases go over,
// without expanding them. (Not parallel: it measures what validate
// allocates; test/e2e measures the process's peak memory.)
func TestValidateAliasBomb(t *testing.T) {
	dir := exampleCopy(t)
	var bomb strings.Builder
	bomb.WriteString("x-lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&bomb, "x-lol%d: &lol%d [%s*lol%d]\n", i, i, strings.Repeat(fmt.Sprintf("*lol%d, ", i-1), 8), i-1)
	}
	score := filepath.Join(dir, "apps/web/score.yaml")
	b, err := os.ReadFile(score)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(score, append(b, bomb.String()...), 0o644); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(string(b), "\n") + 6 // x-lol5, the first over
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, _, code := run(t, "validate", dir)
	runtime.ReadMemStats(&after)
	if code != ExitProblems {
		t.Errorf("exit code %d, want %d", code, ExitProblems)
	}
	want := fmt.Sprintf("apps/web/score.yaml:%d:", line)
	if !strings.Contains(out, want) || !strings.Contains(out, "aliases expand the file past what socle reads of one file") {
		t.Errorf("want the alias at %s refused, got:\n%s", want, out)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("validate allocated %d MB", n>>20)
	}
}

// setRuntimes replaces the runtime blocks of the demo's environments, in
// order (dev at line 50, preprod 54, prod 61, sandbox 78), in a copy of it.
func setRuntimes(t *testing.T, blocks ...string) string {
	t.Helper()
	dir := exampleCopy(t)
	file := filepath.Join(dir, "socle.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, block := range blocks {
		if !strings.Contains(s, "runtime: {type: local}") {
			t.Fatal("fewer environments than blocks")
		}
		s = strings.Replace(s, "runtime: {type: local}", "runtime: "+block, 1)
	}
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(s, "runtime: {type: kept}", "runtime: {type: local}")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestValidateRuntimeBlocks: socle validate checks each environment's
// runtime block with its registered type, and names the file, line and
// field of every problem.
func TestValidateRuntimeBlocks(t *testing.T) {
	t.Parallel()
	dir := setRuntimes(t, "{type: kept}", "{type: kubernetes, context: kind, namespace: alpenrose}",
		"{type: kubernetes, context: kind, namespace: alpenrose, gateway: {name: public}}", "{type: terraform}")
	out, _, code := run(t, "validate", dir)
	if code != ExitProblems {
		t.Errorf("exit code %d, want %d", code, ExitProblems)
	}
	for _, want := range []string{
		`socle.yaml:61:79: environments[2].runtime.gateway.domain: missing required field "domain"`,
		`socle.yaml:78:21: environments[3].runtime.type: terraform is not a runtime`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	// Fixed, the two clusters' namespaces are checked together.
	dir = setRuntimes(t, "{type: kept}", "{type: kubernetes, context: kind, namespace: alpenrose}",
		"{type: kubernetes, context: kind, namespace: alpenrose, gateway: {name: public, domain: shop.example.com}}")
	out, _, _ = run(t, "validate", dir)
	if want := `socle.yaml:61:59: environments[2].runtime.namespace: environment "preprod" already runs in namespace "alpenrose" of context "kind"`; !strings.Contains(out, want) {
		t.Errorf("want %q in:\n%s", want, out)
	}
}
