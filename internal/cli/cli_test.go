package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

const (
	example = "../../examples/platform"
	broken  = "../spec/testdata/broken"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

// TestOffline covers the commands that work on a directory, with golden
// output: what a person reads is part of the product.
func TestOffline(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		golden string // compared with stdout
	}{
		{"validate", []string{"validate", example}, ExitOK, "validate.txt"},
		{"validate-json", []string{"validate", example, "-o", "json"}, ExitOK, "validate.json"},
		{"validate-broken", []string{"validate", broken}, ExitProblems, "validate-broken.txt"},
		{"validate-broken-json", []string{"validate", broken, "-o", "json"}, ExitProblems, "validate-broken.json"},
		{"plan", []string{"plan", example, "--data", empty}, ExitProblems, "plan.txt"},
		{"plan-sandbox", []string{"plan", example, "--data", empty, "--env", "sandbox"}, ExitProblems, "plan-sandbox.txt"},
		{"plan-preprod", []string{"plan", example, "--data", empty, "--env", "preprod"}, ExitOK, "plan-preprod.txt"},
		{"plan-json", []string{"plan", example, "--data", empty, "-o", "json", "--env", "dev"}, ExitOK, "plan-dev.json"},
		{"plan-broken", []string{"plan", broken, "--data", empty}, ExitProblems, ""},
		{"schema-list", []string{"schema"}, ExitOK, "schema-list.txt"},
		{"bad-output", []string{"validate", example, "-o", "yaml"}, ExitUsage, ""},
		{"missing-dir", []string{"validate", filepath.Join(empty, "nope")}, ExitUsage, ""},
		{"unknown-env", []string{"plan", example, "--env", "qa", "--data", empty}, ExitUsage, ""},
		{"unknown-command", []string{"deploi"}, ExitUsage, ""},
		{"extra-args", []string{"validate", "a", "b"}, ExitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if tt.golden != "" {
				out = strings.ReplaceAll(out, empty, "EMPTY")
				golden.Check(t, filepath.Join("testdata", tt.golden), []byte(out))
			}
			if code != ExitOK && code != ExitProblems && errOut == "" {
				t.Error("a failing command must say why on stderr")
			}
		})
	}
}

func TestSchemaMatchesSpec(t *testing.T) {
	t.Parallel()
	for _, name := range spec.SchemaNames() {
		out, _, code := run(t, "schema", name)
		want, _ := wiring.Schema(name, runtimeTypes())
		if code != 0 || out != string(want) {
			t.Errorf("socle schema %s differs from the published schema", name)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil || v["$id"] == nil {
			t.Errorf("schema %s is not a JSON Schema with an $id: %v", name, err)
		}
	}
	dir := t.TempDir()
	if _, _, code := run(t, "schema", "--dir", dir); code != 0 {
		t.Fatal("schema --dir failed")
	}
	if _, err := os.Stat(filepath.Join(dir, "platform.json")); err != nil {
		t.Error(err)
	}
}

// TestInit creates a repository, which must validate and be a git
// repository with one commit.
func TestInit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "acme")
	out, errOut, code := run(t, "init", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("init: %d %s", code, errOut)
	}
	var res struct{ Dir, Revision string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Revision) != 40 {
		t.Fatalf("init output %q: %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		t.Fatal("not a git repository:", err)
	}
	if _, errOut, code := run(t, "validate", dir); code != 0 {
		t.Errorf("the new repository does not validate: %s", errOut)
	}
	if _, _, code := run(t, "init", dir); code != ExitUsage {
		t.Errorf("init over a non-empty directory: exit %d, want %d", code, ExitUsage)
	}
}
