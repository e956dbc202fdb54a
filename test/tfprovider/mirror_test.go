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
	b := newBench(t, "files", map[string]string{"stack.yaml": fileStack(filepath.Join(t.TempDir(), "motd")), "main.tf": fileTF})
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
