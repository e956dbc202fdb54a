package proxyd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMachoBuildID reads the build ID of a real macOS binary, built here by
// cross-compiling, as the go command reads it.
func TestMachoBuildID(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a macOS binary")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "buildid", bin).Output()
	if err != nil {
		t.Fatalf("go tool buildid: %v", err)
	}
	want := "go:" + strings.TrimSpace(string(out))
	got, err := machoBuildID(bin)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("machoBuildID = %q, want %q", got, want)
	}
	// An ELF file is not a Mach-O one.
	if _, err := machoBuildID("/proc/self/exe"); err == nil {
		t.Error("machoBuildID of an ELF file: no error")
	}
}
