package examples

import (
	"os"
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
