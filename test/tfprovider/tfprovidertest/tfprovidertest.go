// Package tfprovidertest builds the socletest Terraform provider from
// source and installs it as air-gapped companies install theirs: in a
// filesystem mirror that a Terraform CLI configuration names, with direct
// downloads of its hostname excluded. Stacks that use it plan and apply
// with the real terraform binary and nothing from the network.
//
// The provider is built once per test binary; call Main from TestMain to
// remove it when the tests end.
package tfprovidertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Source and Version are what a stack writes in required_providers. The
// source is the address the provider serves (its main package's Address):
// a hostname that is no registry, so that nothing could download it.
const (
	Source  = "socle.test/socle/socletest"
	Version = "0.1.0"
)

// pkg is the provider's main package.
const pkg = "github.com/socle-dev/socle/test/tfprovider/cmd/terraform-provider-socletest"

var built struct {
	once   sync.Once
	mirror string
	err    error
}

// Mirror builds the provider (once per test binary) into a filesystem
// mirror laid out as terraform looks for it:
//
//	<mirror>/socle.test/socle/socletest/0.1.0/<os>_<arch>/terraform-provider-socletest_v0.1.0
//
// and returns the mirror's directory.
func Mirror(t testing.TB) string {
	t.Helper()
	built.once.Do(func() { built.mirror, built.err = build() })
	if built.err != nil {
		t.Fatalf("building the socletest provider: %v", built.err)
	}
	return built.mirror
}

func build() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command builds the provider: %w", err)
	}
	dir, err := os.MkdirTemp("", "socletest-mirror-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.FromSlash(Source), Version, runtime.GOOS+"_"+runtime.GOARCH, "terraform-provider-socletest_v"+Version)
	cmd := exec.Command(goBin, "build", "-o", bin, pkg)
	// A static binary: terraform starts it wherever the mirror is read.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return dir, nil
}

// CLIConfig builds the provider if it is not yet and writes a Terraform
// CLI configuration that installs it from the mirror, in a temporary
// directory of t. Its path is what TF_CLI_CONFIG_FILE names. The test is
// skipped when terraform is not on PATH: it would have nothing to run.
func CLIConfig(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: the socletest provider is for the real binary")
	}
	mirror := Mirror(t)
	// The hostname is no registry: direct installation is excluded for
	// it, so that a missing mirror fails here rather than asking DNS.
	conf := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = [%q]
  }
  direct {
    exclude = ["socle.test/*/*"]
  }
}
`, mirror, Source)
	path := filepath.Join(t.TempDir(), "terraform.rc")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Main runs the tests and removes the built mirror; a package's TestMain
// calls it as os.Exit(tfprovidertest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if built.mirror != "" {
		os.RemoveAll(built.mirror)
	}
	return code
}
