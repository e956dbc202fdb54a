package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/wiring"
)

var planID = regexp.MustCompile(`"planId": "sha256:[0-9a-f]{64}"`)

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
	// The demo's stacks are planned with the machine's terraform, wherever
	// it is installed: the goldens name it TERRAFORM.
	tf, _ := stack.Binary()
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
		{"plan", []string{"plan", example, "--data", "EMPTY"}, ExitProblems, "plan.txt"},
		{"plan-sandbox", []string{"plan", example, "--data", "EMPTY", "--env", "sandbox"}, ExitProblems, "plan-sandbox.txt"},
		{"plan-preprod", []string{"plan", example, "--data", "EMPTY", "--env", "preprod"}, ExitOK, "plan-preprod.txt"},
		{"plan-json", []string{"plan", example, "--data", "EMPTY", "-o", "json", "--env", "dev"}, ExitOK, "plan-dev.json"},
		{"plan-broken", []string{"plan", broken, "--data", "EMPTY"}, ExitProblems, ""},
		{"schema-list", []string{"schema"}, ExitOK, "schema-list.txt"},
		{"bad-output", []string{"validate", example, "-o", "yaml"}, ExitUsage, ""},
		{"missing-dir", []string{"validate", filepath.Join(empty, "nope")}, ExitUsage, ""},
		{"unknown-env", []string{"plan", example, "--env", "qa", "--data", "EMPTY"}, ExitUsage, ""},
		{"unknown-command", []string{"deploi"}, ExitUsage, ""},
		{"extra-args", []string{"validate", "a", "b"}, ExitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tf == "" && tt.args[0] == "plan" && tt.golden != "" {
				t.Skip("no terraform or tofu on PATH: the plan goldens hold the demo's stack plans")
			}
			// Each plan keeps its stacks' runs in a data directory of
			// its own: plans in parallel on one would find its run
			// locks held.
			data, args := t.TempDir(), slices.Clone(tt.args)
			for i, a := range args {
				if a == "EMPTY" {
					args[i] = data
				}
			}
			out, errOut, code := run(t, args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if tt.golden != "" {
				out = strings.ReplaceAll(out, data, "EMPTY")
				if tf != "" {
					out = strings.ReplaceAll(out, tf, "TERRAFORM")
				}
				// A plan ID is the hash of terraform's plan file, which
				// is not reproducible (the variables are a protobuf map,
				// written in random order, in a zip with its time).
				out = planID.ReplaceAllString(out, `"planId": "PLANID"`)
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
