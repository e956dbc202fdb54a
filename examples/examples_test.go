package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/golden"
)

func TestArchiveUpToDate(t *testing.T) {
	got, err := Archive(os.DirFS("platform"))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "platform.tar", got)
}

func TestWritePlatform(t *testing.T) {
	dir := t.TempDir()
	if err := WritePlatform(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"socle.yaml", "teams.yaml", "apps/web/main.go", "apps/web/go.mod", "releases/prod.yaml"} {
		want, err := os.ReadFile(filepath.Join("platform", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from examples/platform", f)
		}
	}
	if err := WritePlatform(dir); err == nil {
		t.Error("writing over an existing platform must fail")
	}
}

// TestCostSampleUpToDate checks that the README's sample export is what
// costs/generate.go writes (rewrite it with go test ./examples -update).
func TestCostSampleUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs costs/generate.go")
	}
	out, err := exec.Command("go", "run", filepath.Join("costs", "generate.go")).Output()
	if err != nil {
		t.Fatalf("go run costs/generate.go: %v", err)
	}
	golden.Check(t, filepath.Join("costs", "focus-alpenrose-2024-09.csv"), out)
}
