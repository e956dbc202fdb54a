package container

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
)

// TestConformance runs the replica-level suite against real Podman, with
// the test server in an image of its own (podman import of a rootfs that
// holds the static binary alone).
func TestConformance(t *testing.T) {
	image := testImage(t, "testserver", map[string]string{"/testserver": buildServer(t)})
	runtimetest.Run(t, runtimetest.Harness{
		Open: func(t *testing.T) (runtime.Driver, func() runtime.Driver) {
			dir := t.TempDir()
			d := open(t, dir)
			return d, func() runtime.Driver { return open(t, dir) }
		},
		Server: func(t *testing.T, args ...string) runtime.ReplicaSpec {
			return runtime.ReplicaSpec{Image: image, Command: append([]string{"/testserver"}, args...)}
		},
	})
}

// needPodman skips the test on a machine without podman (scripts/test
// installs it).
func needPodman(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (scripts/test installs it)")
	}
}

// open returns a driver over dir whose containers are removed when the test
// ends, whatever it left.
func open(t *testing.T, dir string) *Driver {
	t.Helper()
	needPodman(t)
	d, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if names, err := Prune(ctx, dir); err != nil || len(names) > 0 {
			t.Logf("pruned %v (%v)", names, err)
		}
	})
	return d
}

func buildServer(t *testing.T) string {
	t.Helper()
	needPodman(t)
	bin, err := runtimetest.BuildServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// testImage imports an image whose rootfs holds files (path in the image →
// file of the host) and returns its reference; it is removed when the test
// ends.
func testImage(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	needPodman(t)
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for in, host := range files {
		b, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: in[1:], Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp/", "etc/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o1777, Typeflag: tar.TypeDir}); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(tw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	pm, err := newPodman(filepath.Join(dir, "containers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	ref := "localhost/socle-test-" + name + ":" + randomHex(6)
	if _, err := pm.run(t.Context(), "import", "--quiet", tarPath, ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pm.run(context.Background(), "rmi", "--force", ref); err != nil {
			t.Logf("removing the test image: %v", err)
		}
	})
	return ref
}
