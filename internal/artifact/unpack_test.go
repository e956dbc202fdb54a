package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/socle-dev/socle/internal/artifact/registry"
)

// file is a tar entry: a directory (name ends with /), a symbolic link
// (link set) or a file.
type file struct {
	name, body, link string
	mode             int64
}

func tarOf(t *testing.T, files []file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(f.name, "/"):
			h.Typeflag, h.Size = tar.TypeDir, 0
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storeImage writes an image of the given layers into a new registry and
// returns the registry and the image's digest.
func storeImage(t *testing.T, layers ...[]file) (*registry.Store, string) {
	t.Helper()
	img := empty.Image
	for _, files := range layers {
		data := tarOf(t, files)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	img, err := mutate.Config(img, v1.Config{Entrypoint: []string{"/usr/bin/tool"}, Env: []string{"A=1"}, WorkingDir: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := reg.WriteImage("test/image", "", img)
	if err != nil {
		t.Fatal(err)
	}
	return reg, h.String()
}

func TestUnpack(t *testing.T) {
	reg, digest := storeImage(t,
		[]file{
			{name: "usr/"},
			{name: "usr/bin/"},
			{name: "usr/bin/tool", body: "#!/bin/sh\necho tool\n", mode: 0o755},
			{name: "gone", body: "removed by the next layer"},
			{name: "ro/", mode: 0o555},
			{name: "ro/file", body: "read only", mode: 0o444},
		},
		[]file{
			{name: ".wh.gone"},
			{name: "bin", link: "/usr/bin"},
			{name: "etc/passwd-link", link: "/etc/passwd"},
		},
	)
	dir := t.TempDir()
	u, err := NewUnpacker(dir, reg)
	if err != nil {
		t.Fatal(err)
	}

	// Concurrent calls unpack once and agree.
	var wg sync.WaitGroup
	got := make([]Rootfs, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = u.Unpack(context.Background(), digest) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i].Dir != got[0].Dir {
			t.Errorf("call %d unpacked into %s, call 0 into %s", i, got[i].Dir, got[0].Dir)
		}
	}
	if n := u.unpacks.Load(); n != 1 {
		t.Errorf("unpacked %d times, want 1", n)
	}
	rf := got[0]
	if want := filepath.Join(dir, "sha256-"+strings.TrimPrefix(digest, "sha256:"), "rootfs"); rf.Dir != want || rf.Digest != digest {
		t.Errorf("rootfs %s of %s, want %s", rf.Dir, rf.Digest, want)
	}
	c := rf.Config
	if strings.Join(c.Entrypoint, " ") != "/usr/bin/tool" || strings.Join(c.Env, " ") != "A=1" || c.WorkingDir != "/srv" {
		t.Errorf("config %+v", c)
	}

	if b, err := os.ReadFile(filepath.Join(rf.Dir, "bin", "tool")); err != nil || !strings.Contains(string(b), "echo tool") {
		t.Errorf("bin/tool through the link: %q, %v", b, err)
	}
	for link, want := range map[string]string{"bin": "usr/bin", "etc/passwd-link": "passwd"} {
		if target, err := os.Readlink(filepath.Join(rf.Dir, link)); err != nil || target != want {
			t.Errorf("link %s -> %q, %v; want %q, inside the root", link, target, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(rf.Dir, "etc", "passwd-link")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("etc/passwd-link reaches a file outside the image: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(rf.Dir, "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("whited-out file: %v", err)
	}
	if info, err := os.Stat(filepath.Join(rf.Dir, "usr", "bin", "tool")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("tool: %v, %v", info, err)
	}
	if info, err := os.Stat(filepath.Join(rf.Dir, "ro", "file")); err != nil || info.Mode().Perm() != 0o444 {
		t.Errorf("ro/file: %v, %v", info, err)
	}

	// A new Unpacker on the same directory (socle restarted) unpacks nothing.
	again, err := NewUnpacker(dir, reg)
	if err != nil {
		t.Fatal(err)
	}
	rf2, err := again.Unpack(context.Background(), digest)
	if err != nil || rf2.Dir != rf.Dir || again.unpacks.Load() != 0 {
		t.Errorf("after restart: %s, %v, %d unpacks", rf2.Dir, err, again.unpacks.Load())
	}
	if _, err := again.Unpack(context.Background(), "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Errorf("unknown image: %v", err)
	}
}

func TestUnpackRejectsEscapes(t *testing.T) {
	evil := []file{{name: "ok", body: "fine"}, {name: "../../etc/x", body: "owned"}}
	reg, digest := storeImage(t, evil)
	base := t.TempDir()
	u, err := NewUnpacker(filepath.Join(base, "a", "b", "rootfs"), reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Unpack(context.Background(), digest); err == nil {
		t.Fatal("unpacking ../../etc/x succeeded")
	}
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "x" {
			t.Errorf("%s was written", p)
		}
		return err
	})
	if entries, _ := os.ReadDir(filepath.Join(base, "a", "b", "rootfs")); len(entries) != 0 {
		t.Errorf("a failed unpack left %v", entries)
	}

	// The extraction itself refuses what escapes, before any layer logic.
	for _, name := range []string{"../../etc/x", "a/../../x", "/../x"} {
		err := extract(context.Background(), bytes.NewReader(tarOf(t, []file{{name: name, body: "x"}})), t.TempDir())
		if !errors.Is(err, ErrUnsafeImage) {
			t.Errorf("extract %q: %v, want ErrUnsafeImage", name, err)
		}
	}
}

func TestLinkTarget(t *testing.T) {
	for _, tc := range []struct{ name, target, want string }{
		{"bin", "/usr/bin", "usr/bin"},
		{"usr/lib/libc.so", "/lib/libc.so.6", "../../lib/libc.so.6"},
		{"usr/bin/sh", "dash", "dash"},
		{"a/b/c", "../../../../x", "../../x"},
		{"a", "/", "."},
	} {
		if got := linkTarget(tc.name, tc.target); got != tc.want {
			t.Errorf("linkTarget(%q, %q) = %q, want %q", tc.name, tc.target, got, tc.want)
		}
	}
}
