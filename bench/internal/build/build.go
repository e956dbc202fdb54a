// Package build finds socle's module and builds the socle binary the
// benches run, as each bench did by hand before.
package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the directory of the module go runs in; bench names
// the bench in the error when that is not a module (go env GOMOD says
// os.DevNull outside one).
func ModuleRoot(ctx context.Context, bench string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run it from socle's module (go run ./bench/%s)", bench)
	}
	return filepath.Dir(gomod), nil
}

// Socle builds ./cmd/socle of the module at root into bin.
func Socle(ctx context.Context, root, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/socle")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building socle: %v\n%s", err, out)
	}
	return nil
}
