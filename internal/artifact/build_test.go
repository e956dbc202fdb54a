package artifact

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/socle-dev/socle/internal/artifact/internal/registrytest"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

// platform is a real git repository made from the example platform, with
// socle's mirror of it.
type platform struct {
	origin string
	repo   *source.Repo
	head   source.Revision
	// counter gets a line each time a build command runs.
	counter string
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	p := &platform{origin: filepath.Join(dir, "platform"), counter: filepath.Join(dir, "builds.count")}
	var err error
	if p.head, err = source.Init(ctx, "../../examples/platform", p.origin, "Test", "test@example.com", "init"); err != nil {
		t.Fatal(err)
	}
	if p.repo, err = source.Open(ctx, source.Options{URL: p.origin, Dir: filepath.Join(dir, "mirror")}); err != nil {
		t.Fatal(err)
	}
	return p
}

// app loads an app at rev; its build command also counts its runs.
func (p *platform) app(t *testing.T, rev source.Revision, name string) *spec.App {
	t.Helper()
	files, err := p.repo.Files(rev.SHA)
	if err != nil {
		t.Fatal(err)
	}
	r, problems := spec.Load(files)
	if err := problems.Err(); err != nil {
		t.Fatal(err)
	}
	a := r.App(name)
	build := *a.Config.Build
	build.Command = fmt.Sprintf("echo %s >> %s && %s", name, p.counter, build.Command)
	a.Config.Build = &build
	return a
}

// runs says how many build commands ran.
func (p *platform) runs(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(p.counter)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

func (p *platform) commit(t *testing.T, files map[string]string) source.Revision {
	t.Helper()
	c := source.Change{Files: map[string][]byte{}, Author: "Test", Email: "test@example.com", Message: "change"}
	for f, s := range files {
		c.Files[f] = []byte(s)
	}
	rev, err := p.repo.Commit(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func newBuilder(t *testing.T, dir string, reg *registry.Store, host string, change func(*Config)) *Builder {
	t.Helper()
	// The builder's logic, as socle's user: TestBuildSandbox tests the
	// sandbox (a cold Go cache per app costs a compile of the runtime).
	cfg := Config{Dir: dir, Registry: reg, Host: host, Remote: []remote.Option{}, Sandbox: sandbox.Off()}
	if change != nil {
		change(&cfg)
	}
	b, err := NewBuilder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBuild builds the demo web app from a real repository with the real Go
// toolchain, serves it from socle's registry, runs it, and follows it
// through new revisions, a push elsewhere and a restart of the registry.
func TestBuild(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t)
	data := t.TempDir()
	reg, host := registrytest.Serve(t, filepath.Join(data, "registry"))
	b := newBuilder(t, filepath.Join(data, "artifacts"), reg, host, nil)
	unpacker, err := NewUnpacker(filepath.Join(data, "rootfs"), reg)
	if err != nil {
		t.Fatal(err)
	}

	// The build reads the revision, never the working copy: this would not compile.
	if err := os.WriteFile(filepath.Join(p.origin, "apps", "web", "main.go"), []byte("package main\nbroken"), 0o644); err != nil {
		t.Fatal(err)
	}
	rev1 := p.head
	web1 := p.app(t, rev1, "web")
	a1, err := b.Build(ctx, p.repo, rev1, web1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.ParseDigest(a1.Digest); err != nil || a1.Ref != host+"/apps/web@"+a1.Digest ||
		a1.App != "web" || a1.Revision != rev1.SHA || a1.Source != web1.Source || a1.Size == 0 || a1.BuiltAt.IsZero() {
		t.Fatalf("artifact %+v", a1)
	}
	if n := p.runs(t); n != 1 {
		t.Fatalf("build ran %d times, want 1", n)
	}

	t.Run("pullable image", func(t *testing.T) {
		img, err := remote.Image(mustRef(t, a1.Ref))
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := img.Digest(); h.String() != a1.Digest {
			t.Errorf("pulled digest %s, want %s", h, a1.Digest)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if fmt.Sprint(c.Entrypoint) != "[/app/web]" || c.WorkingDir != "/app" ||
			fmt.Sprint(c.Env) != "[GREETING=Grüezi from Alpenrose]" || // API_URL holds a placeholder
			c.Labels[LabelRevision] != rev1.SHA || c.Labels[LabelSource] != web1.Source || c.Labels[LabelApp] != "web" {
			t.Errorf("config %+v", c)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%d layers, %v", len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var names []string
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, fmt.Sprintf("%s %o %d", h.Name, h.Mode, h.ModTime.Unix()))
		}
		if fmt.Sprint(names) != "[app/ 755 0 app/web 755 0]" {
			t.Errorf("layer holds %v", names)
		}
	})

	t.Run("runs and answers with its revision", func(t *testing.T) {
		rf, err := unpacker.Unpack(ctx, a1.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !rf.Config.Runnable() {
			t.Fatalf("image for %s/%s", rf.Config.OS, rf.Config.Architecture)
		}
		if body := runWeb(t, rf); !strings.Contains(body, "(version "+rev1.SHA+")") {
			t.Errorf("web answered %q, want its version %s", body, rev1.SHA)
		}
	})

	t.Run("same revision reuses the image", func(t *testing.T) {
		a, err := b.Build(ctx, p.repo, rev1, p.app(t, rev1, "web"))
		if err != nil {
			t.Fatal(err)
		}
		if a != a1 {
			t.Errorf("second build %+v, want %+v", a, a1)
		}
		if n := p.runs(t); n != 1 {
			t.Errorf("build ran %d times, want 1", n)
		}
	})

	t.Run("rebuilding gives the same digest", func(t *testing.T) {
		// A builder without records builds again, into the same registry.
		fresh := newBuilder(t, t.TempDir(), reg, host, nil)
		a, err := fresh.Build(ctx, p.repo, rev1, p.app(t, rev1, "web"))
		if err != nil {
			t.Fatal(err)
		}
		if n := p.runs(t); n != 2 {
			t.Errorf("build ran %d times, want 2", n)
		}
		if a.Digest != a1.Digest {
			t.Errorf("rebuilt digest %s, want %s", a.Digest, a1.Digest)
		}
	})

	rev2 := p.commit(t, map[string]string{"docs/notes.md": "not the web app\n"})
	t.Run("commit elsewhere keeps the image", func(t *testing.T) {
		a, err := b.Build(ctx, p.repo, rev2, p.app(t, rev2, "web"))
		if err != nil {
			t.Fatal(err)
		}
		if a.Digest != a1.Digest || a.Revision != rev1.SHA {
			t.Errorf("artifact %+v, want the one built at %s", a, rev1.Short())
		}
		if n := p.runs(t); n != 2 {
			t.Errorf("build ran %d times, want 2", n)
		}
	})

	rev3 := p.commit(t, map[string]string{"apps/web/NOTES.md": "a change of the web app\n"})
	web3 := p.app(t, rev3, "web")
	a3, err := b.Build(ctx, p.repo, rev3, web3)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("commit to the app builds a new image", func(t *testing.T) {
		if a3.Digest == a1.Digest || a3.Revision != rev3.SHA || a3.Source == a1.Source {
			t.Errorf("artifact %+v after a change of apps/web", a3)
		}
		if n := p.runs(t); n != 3 {
			t.Errorf("build ran %d times, want 3", n)
		}
	})

	t.Run("resolve", func(t *testing.T) {
		d, err := b.Resolve(ctx, host+"/apps/web:"+rev1.SHA)
		if err != nil || d != a1.Digest {
			t.Errorf("Resolve(tag of rev1) = %s, %v; want %s", d, err, a1.Digest)
		}
		if d, err := b.Resolve(ctx, a3.Ref); err != nil || d != a3.Digest {
			t.Errorf("Resolve(%s) = %s, %v", a3.Ref, d, err)
		}
		if _, err := b.Resolve(ctx, host+"/apps/web:nope"); err == nil {
			t.Error("Resolve of an unknown tag succeeded")
		}
	})

	t.Run("push to the app's registry", func(t *testing.T) {
		_, ext := registrytest.Serve(t, t.TempDir())
		web := p.app(t, rev3, "web")
		web.Config.Build.Image = ext + "/team/web"
		a, err := b.Build(ctx, p.repo, rev3, web)
		if err != nil {
			t.Fatal(err)
		}
		if a.Digest != a3.Digest || a.Ref != ext+"/team/web@"+a3.Digest {
			t.Errorf("artifact %+v, want %s in %s", a, a3.Digest, ext)
		}
		if n := p.runs(t); n != 3 {
			t.Errorf("build ran %d times, want 3: pushing does not build", n)
		}
		d, err := b.Resolve(ctx, ext+"/team/web:"+rev3.SHA)
		if err != nil || d != a3.Digest {
			t.Errorf("external tag resolves to %s, %v", d, err)
		}
		// A machine without the image in its own registry pulls it.
		elsewhere, err := NewUnpacker(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		rf, err := elsewhere.Unpack(ctx, a.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if rf.Config.Labels[LabelRevision] != rev3.SHA {
			t.Errorf("unpacked labels %v", rf.Config.Labels)
		}
		if _, err := os.Stat(filepath.Join(rf.Dir, "app", "web")); err != nil {
			t.Error(err)
		}
	})

	t.Run("registry survives a restart", func(t *testing.T) {
		_, again := registrytest.Serve(t, filepath.Join(data, "registry"))
		img, err := remote.Image(mustRef(t, again+"/apps/web@"+a1.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := img.Digest(); h.String() != a1.Digest {
			t.Errorf("digest %s after restart", h)
		}
		tags, err := remote.List(mustRef(t, again+"/apps/web").Context())
		if err != nil || len(tags) != 2 {
			t.Errorf("tags %v, %v; want the revisions of two builds", tags, err)
		}
	})
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runWeb starts the web app's entrypoint from its unpacked image and returns
// its answer to GET /.
func runWeb(t *testing.T, rf Rootfs) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(filepath.Join(rf.Dir, rf.Config.Entrypoint[0]))
	cmd.Dir = filepath.Join(rf.Dir, rf.Config.WorkingDir)
	cmd.Env = append(rf.Config.Env, "PORT="+port)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + port + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("web never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBuildRelativeDir: a builder and an unpacker given relative
// directories, as `socle up` with its default --data .socle once gave them,
// still hand the build an absolute $SOCLE_OUT (the build runs in the app's
// directory, where a relative one would land elsewhere) and return an
// absolute root for replicas.
func TestBuildRelativeDir(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t) // reads ../../examples: before the Chdir
	data := t.TempDir()
	reg, host := registrytest.Serve(t, filepath.Join(data, "registry"))
	t.Chdir(data)
	b := newBuilder(t, "artifacts", reg, host, nil)
	unpacker, err := NewUnpacker("rootfs", reg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := b.Build(ctx, p.repo, p.head, p.app(t, p.head, "web"))
	if err != nil {
		t.Fatalf("build with a relative directory: %v", err)
	}
	rf, err := unpacker.Unpack(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(rf.Dir) || !strings.HasPrefix(rf.Dir, data) {
		t.Errorf("root %q, want an absolute path under %s", rf.Dir, data)
	}
}

// TestBuildFailure: a failing command returns its log's tail and stores
// nothing; so does one that writes nothing.
func TestBuildFailure(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t)
	data := t.TempDir()
	reg, err := registry.Open(filepath.Join(data, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "artifacts")
	b := newBuilder(t, dir, reg, "127.0.0.1:1", func(c *Config) { c.Timeout = 500 * time.Millisecond })

	for _, tc := range []struct {
		name, command string
		want          []string // in the error
		notInTail     string
	}{
		{
			name:      "exit status",
			command:   `for i in $(seq 1 100); do echo line $i; done; echo "main.go:3: undefined: boom" >&2; exit 3`,
			want:      []string{"building web at " + p.head.Short() + ": exit status 3", "line 100", "undefined: boom"},
			notInTail: "line 50\n",
		},
		{name: "no output", command: "true", want: []string{"the build wrote nothing into $SOCLE_OUT"}},
		{name: "timeout", command: "echo started; sleep 30", want: []string{"timed out after 500ms", "started"}},
		{name: "no entrypoint", command: `touch "$SOCLE_OUT/a" "$SOCLE_OUT/b"; chmod +x "$SOCLE_OUT/a" "$SOCLE_OUT/b"`, want: []string{"cannot choose the image's entrypoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := p.app(t, p.head, "web")
			app.Config.Build.Command = tc.command
			app.Source = "sha256:" + strings.Repeat("0", 63) + "1" // not the real web's
			_, err := b.Build(ctx, p.repo, p.head, app)
			var be *BuildError
			if !errors.As(err, &be) {
				t.Fatalf("error %v, want a *BuildError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.notInTail != "" && strings.Contains(be.Tail, tc.notInTail) {
				t.Errorf("tail holds the whole log:\n%s", be.Tail)
			}
			if _, err := os.Stat(be.Log); err != nil {
				t.Errorf("log: %v", err)
			}
		})
	}
	if repos, err := reg.Repositories(); err != nil || len(repos) != 0 {
		t.Errorf("registry holds %v, %v after failed builds", repos, err)
	}
	for _, sub := range []string{"builds", "work"} {
		if entries, err := os.ReadDir(filepath.Join(dir, sub)); err != nil || len(entries) != 0 {
			t.Errorf("%s holds %v, %v after failed builds", sub, entries, err)
		}
	}
	if _, err := b.Build(ctx, p.repo, p.head, &spec.App{Name: "x"}); !errors.Is(err, ErrNoBuild) {
		t.Errorf("app without build: %v", err)
	}
}

// TestBuildProgress: a build that runs its command tells its progress the
// log's last line as it goes; one that reuses an image tells nothing.
func TestBuildProgress(t *testing.T) {
	ctx := context.Background()
	p := newPlatform(t)
	data := t.TempDir()
	reg, err := registry.Open(filepath.Join(data, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(t, filepath.Join(data, "artifacts"), reg, "127.0.0.1:1", nil)
	app := p.app(t, p.head, "web")
	app.Config.Build.Command = `echo compiling; echo; echo "  linking  " >&2; printf '#!/bin/sh\n' > "$SOCLE_OUT/web"; chmod +x "$SOCLE_OUT/web"`
	var lines []string
	progress := func(line string) { lines = append(lines, line) } // one goroutine writes the log
	if _, err := b.BuildProgress(ctx, p.repo, p.head, app, progress); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "$ echo compiling") || lines[len(lines)-1] != "linking" {
		t.Errorf("progress lines %q, want the command, then the last non-blank line, linking", lines)
	}
	lines = nil
	if _, err := b.BuildProgress(ctx, p.repo, p.head, app, progress); err != nil || len(lines) != 0 {
		t.Errorf("a reused image: %v, progress %q, want no progress", err, lines)
	}
}
