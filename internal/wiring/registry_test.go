package wiring

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/spec"
)

// TestBuiltinRuntimes: socle is built with the local, container and
// kubernetes runtimes, and terraform is none.
func TestBuiltinRuntimes(t *testing.T) {
	t.Parallel()
	if got := Runtimes(RuntimeOptions{}).Names(); !slices.Equal(got, []string{"container", "kubernetes", "local"}) {
		t.Errorf("runtime types = %v, want container, kubernetes, local", got)
	}
}

// TestPublishedSchemas keeps what `socle schema` prints: spec's schemas,
// the platform's with each runtime type's block in it. Change a runtime's
// config, run `go test ./internal/wiring -run PublishedSchemas -update`.
func TestPublishedSchemas(t *testing.T) {
	t.Parallel()
	reg := Runtimes(RuntimeOptions{})
	for _, name := range spec.SchemaNames() {
		got, err := Schema(name, reg)
		if err != nil {
			t.Fatal(err)
		}
		if name == "platform" {
			golden.Check(t, filepath.Join("testdata", "schemas", name+".json"), got)
			for _, want := range []string{`"runtime-kubernetes"`, `"runtime-local"`, `"runtime-container"`, `"namespace"`, `"gateway"`} {
				if !bytes.Contains(got, []byte(want)) {
					t.Errorf("the platform's schema lacks %s", want)
				}
			}
			continue
		}
		if base, _ := spec.Schema(name); !bytes.Equal(got, base) {
			t.Errorf("the published schema of %s is not spec's", name)
		}
	}
}

// TestLoadChecksBuiltinRuntimes: validating a repository checks every
// environment's block with its runtime type, as socle validate and the
// server's revision pipeline do.
func TestLoadChecksBuiltinRuntimes(t *testing.T) {
	t.Parallel()
	reg := Runtimes(RuntimeOptions{})
	for _, tc := range []struct{ name, dev, want string }{
		{"local", "{type: local}", ""},
		{"kubernetes", "{type: kubernetes, context: kind, namespace: shop}", ""},
		{"kubernetes field on local", "{type: local, namespace: shop}",
			`socle.yaml:6:28: environments[0].runtime.namespace: unknown field "namespace"; expected one of: type`},
		{"terraform", "{type: terraform}",
			`socle.yaml:6:21: environments[0].runtime.type: terraform is not a runtime: Terraform and OpenTofu configurations are stacks, units of their own (stacks/<stack>/), not where an environment's apps run (runtime types: container, kubernetes, local)`},
		{"container", "{type: container}", ""},
		{"kubernetes field on container", "{type: container, namespace: shop}",
			`socle.yaml:6:32: environments[0].runtime.namespace: unknown field "namespace"; expected one of: type`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			platform, _, _ := strings.Cut(toyPlatform, "  - name: play")
			dir := writeRepo(t, map[string]string{"socle.yaml": strings.Replace(platform, "{type: local}", tc.dev, 1)})
			_, ps := Load(os.DirFS(dir), reg)
			if got := ps.String(); got != tc.want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// writeRepo writes the toy platform repository with files replaced.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{
		"socle.yaml":          toyPlatform,
		"teams.yaml":          "apiVersion: socle.dev/v1\nkind: Teams\nteams: [{name: core}]\n",
		"apps/web/score.yaml": toyScore,
		"apps/web/socle.yaml": "apiVersion: socle.dev/v1\nkind: App\nowner: core\n",
	}
	for f, data := range files {
		all[f] = data
	}
	for f, data := range all {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// BenchmarkLoadExample: what checking the runtime blocks with their types
// adds to loading the demo platform.
func BenchmarkLoadExample(b *testing.B) {
	fsys := os.DirFS("../../examples/platform")
	reg := Runtimes(RuntimeOptions{})
	for _, bc := range []struct {
		name string
		load func() spec.Problems
	}{
		{"spec.Load", func() spec.Problems { _, ps := spec.Load(fsys); return ps }},
		{"wiring.Load", func() spec.Problems { _, ps := Load(fsys, reg); return ps }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if ps := bc.load(); len(ps) > 0 {
					b.Fatal(ps)
				}
			}
		})
	}
}
