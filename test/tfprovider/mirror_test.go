package tfprovider_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/stack"
)

// TestWithoutMirror plans the file stack with a CLI configuration that
// names no mirror: terraform init fails on the provider, which nothing
// could download, and the Runner says so. It shows the other tests'
// provider comes from the mirror that TF_CLI_CONFIG_FILE names, passed
// on by the Runner, and not from anywhere else.
func TestWithoutMirror(t *testing.T) {
	b := fileBench(t, filepath.Join(t.TempDir(), "motd"))
	empty := filepath.Join(t.TempDir(), "empty.rc")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TF_CLI_CONFIG_FILE", empty)
	repo, ps := loadRepo(b)
	if ps != "" {
		t.Fatal(ps)
	}
	res := b.r.Plan(t.Context(), repo, os.DirFS(b.repo), repo.Stack("files"), "dev")
	if res.Status != stack.StatusFailed || res.Reason != stack.ReasonInitFailed {
		t.Fatalf("plan without the mirror: %s (%s) %s; want Failed (InitFailed)", res.Status, res.Reason, res.Message)
	}
	if !strings.Contains(res.Message, "socle.test/socle/socletest") {
		t.Errorf("the init failure does not name the provider: %s", res.Message)
	}
}

// TestValidate runs socle's terraform validate over a stack that misuses
// socletest_file: with the mirror, the provider's schema is known and the
// mistakes are errors at the repository's file:line; without it, the
// stack is said not to be checked, a warning.
func TestValidate(t *testing.T) {
	bad := strings.Replace(fileTF, `content = "hello ${var.env}\n"`, `mode    = "0644"`, 1)
	path := filepath.Join(t.TempDir(), "motd")
	b := newBench(t, "files", map[string]string{"stack.yaml": fileStack(path), "main.tf": bad}, map[string]string{"env": "dev", "path": path})
	repo, ps := loadRepo(b)
	if ps != "" {
		t.Fatal(ps)
	}
	t.Run("with the mirror", func(t *testing.T) {
		got := b.r.Validate(t.Context(), repo, os.DirFS(b.repo))
		var unsupported, missing bool
		for _, p := range got {
			if p.Warning || p.File != "stacks/files/main.tf" {
				continue
			}
			unsupported = unsupported || p.Line == 23 && strings.Contains(p.Message, "Unsupported argument")
			missing = missing || p.Line == 21 && strings.Contains(p.Message, "Missing required argument") && strings.Contains(p.Message, `"content"`)
		}
		if !unsupported || !missing {
			t.Fatalf("want errors at stacks/files/main.tf.tf:23 (unsupported mode) and :21 (content missing), got:\n%v", got)
		}
	})
	t.Run("without it", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.rc")
		if err := os.WriteFile(empty, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TF_CLI_CONFIG_FILE", empty)
		got := b.r.Validate(t.Context(), repo, os.DirFS(b.repo))
		if len(got) != 1 || !got[0].Warning || !strings.Contains(got[0].Message, "not checked") {
			t.Fatalf("want one warning that the stack was not checked, got:\n%v", got)
		}
	})
}
