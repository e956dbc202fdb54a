package artifact

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/sandbox/sandboxtest"
)

// reachableDir returns a new directory that the sandboxes' users can reach
// (t.TempDir's parent is searchable by its owner alone).
func reachableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSandboxKeepsSecretsFromBuilds is the attack of issue 19 in a build:
// the build command reads socle's admin token, secret key and database,
// and the environment of another process (an app's replica, with its
// secrets). In the sandbox it gets none; with the sandbox off it gets them
// all, which shows the test can fail.
func TestSandboxKeepsSecretsFromBuilds(t *testing.T) {
	p := newPlatform(t)
	// The attacker comes with the app's source: the build sees neither
	// the host's /tmp nor socle's data directory.
	attacker, err := sandboxtest.BuildAttacker(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(attacker)
	if err != nil {
		t.Fatal(err)
	}
	rev := p.commit(t, map[string]string{"apps/web/attacker": string(bin)})
	victim := exec.Command("sleep", "600")
	victim.Env = []string{"PATH=/usr/bin:/bin", "DB_PASSWORD=victim-s3cret"}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })

	for _, tc := range []struct {
		name  string
		sb    *sandbox.Sandbox
		steal bool
	}{
		{"sandboxed", sandbox.Detect(), false},
		{"insecure", sandbox.Off(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.steal && !tc.sb.Enabled() {
				t.Fatalf("no sandbox on this machine: %s", tc.sb.Message())
			}
			data := reachableDir(t)
			secrets, err := sandboxtest.Plant(data)
			if err != nil {
				t.Fatal(err)
			}
			reg, err := registry.Open(filepath.Join(data, "registry"))
			if err != nil {
				t.Fatal(err)
			}
			b := newBuilder(t, filepath.Join(data, "artifacts"), reg, "127.0.0.1:1", func(c *Config) { c.Sandbox = tc.sb })
			args := append(slices.Clone(secrets), fmt.Sprintf("environ:%d", victim.Process.Pid))
			app := p.app(t, rev, "web")
			app.Config.Build.Command = "cp attacker a && chmod +x a && ./a " + strings.Join(args, " ") + "; exit 1"
			_, err = b.Build(context.Background(), p.repo, rev, app)
			var be *BuildError
			if !errors.As(err, &be) {
				t.Fatalf("Build = %v, want the command's failure", err)
			}
			report, err := sandboxtest.Parse([]byte(be.Tail))
			if err != nil {
				t.Fatal(err)
			}
			stolen := report.Stole(args, "victim-s3cret")
			if tc.steal && len(stolen) != len(args) {
				t.Errorf("without a sandbox the build read %q of %q: the test cannot tell a sandbox from none", stolen, args)
			}
			if !tc.steal && len(stolen) > 0 {
				t.Errorf("in the sandbox the build read %q: %v", stolen, report)
			}
		})
	}
}

// TestBuildSandboxWrites: a sandboxed build compiles with the host's Go
// toolchain, writes its output, and keeps its caches in its app's cache
// directory; what it writes elsewhere (the data directory, hidden) never
// reaches the host. Its log is socle's alone.
func TestBuildSandboxWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go's runtime in a cold cache (about 40s on 2 cores)")
	}
	sb := sandbox.Detect()
	if !sb.Enabled() {
		t.Fatalf("no sandbox on this machine: %s", sb.Message())
	}
	p := newPlatform(t)
	data := reachableDir(t)
	reg, err := registry.Open(filepath.Join(data, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "artifacts")
	b := newBuilder(t, dir, reg, "127.0.0.1:1", func(c *Config) { c.Sandbox = sb })
	app := p.app(t, p.head, "web")
	// A program without imports: a cold cache compiles the runtime alone.
	app.Config.Build.Command = `set -e
touch "$HOME/made" ` + data + `/intruder
mkdir -p /tmp/hello && cd /tmp/hello
printf 'package main\n\nfunc main() { println("hello") }\n' > main.go
go mod init example.com/hello >/dev/null 2>&1
go build -o "$SOCLE_OUT/web" .
echo "GOCACHE=$(go env GOCACHE)"`
	a, err := b.Build(context.Background(), p.repo, p.head, app)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache", "web")
	if _, err := os.Stat(filepath.Join(cache, "home", "made")); err != nil {
		t.Errorf("the build's HOME is not its app's cache: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "intruder")); err == nil {
		t.Errorf("the build wrote into the data directory")
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "web", a.Revision+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "GOCACHE=" + filepath.Join(cache, "go-build"); !strings.Contains(string(log), want) {
		t.Errorf("log:\n%s\nwant %s", log, want)
	}
	for path, want := range map[string]fs.FileMode{
		filepath.Join(dir, "logs"):                           fs.ModeDir | 0o700,
		filepath.Join(dir, "logs", "web"):                    fs.ModeDir | 0o700,
		filepath.Join(dir, "logs", "web", a.Revision+".log"): 0o600,
		filepath.Join(dir, "cache"):                          fs.ModeDir | 0o711,
		cache:                                                fs.ModeDir | 0o700,
	} {
		if fi, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", path, fi.Mode(), want)
		}
	}
}

// An image unpacked by an earlier socle (0700) is made reachable by the
// sandboxes' users when the unpacker opens its directory.
func TestUnpackerOpensOldRootfs(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "sha256-0123")
	if err := os.Mkdir(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := NewUnpacker(dir, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(old); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o711 {
		t.Errorf("old rootfs: mode %v, want 0711", fi.Mode().Perm())
	}
}

// TestBuildSandboxSeededStd: a sandboxed Go build starts with the standard
// library that socle compiled into its seed (it compiles its own code
// alone), and a build that writes into every file of its cache changes
// its own copies, never the seed that other apps' builds get.
func TestBuildSandboxSeededStd(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go's standard library into the seed if it is not there (about 2 minutes on 2 cores)")
	}
	sb := sandbox.Detect()
	if !sb.Enabled() {
		t.Fatalf("no sandbox on this machine: %s", sb.Message())
	}
	p := newPlatform(t)
	data := reachableDir(t)
	reg, err := registry.Open(filepath.Join(data, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "artifacts")
	b := newBuilder(t, dir, reg, "127.0.0.1:1", func(c *Config) { c.Sandbox = sb })
	seed := b.cfg.GoSeed
	if seed == "" {
		t.Fatal("no seed: the user has no cache directory")
	}

	web := p.app(t, p.head, "web")
	web.Config.Build.Command = `go build -x -trimpath -o "$SOCLE_OUT/web" .`
	a, err := b.Build(context.Background(), p.repo, p.head, web)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "web", a.Revision+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), " -p main ") {
		t.Fatalf("go build -x printed no compile of package main: the test cannot tell what compiled\n%s", log)
	}
	for _, pkg := range []string{"runtime", "fmt", "net/http"} {
		if strings.Contains(string(log), " -p "+pkg+" ") {
			t.Errorf("the build compiled %s: the seed's entries were not in its cache", pkg)
		}
	}
	if !strings.Contains(string(log), "entries of the Go standard library seed") {
		t.Errorf("the log does not say the seed was used:\n%.2000s", log)
	}

	// The seed's index entries (small) before an attack.
	before := indexEntries(t, seed)
	if len(before) < 100 {
		t.Fatalf("the seed has %d index entries", len(before))
	}
	worker := p.app(t, p.head, "worker")
	worker.Config.Build.Command = `find "$GOCACHE" -type f -name '*-[ad]' | while read -r f; do { chmod u+w "$f"; printf poison >> "$f"; } 2>/dev/null; done
echo "poisoned $(grep -l poison -r "$GOCACHE" | wc -l) files of $GOCACHE"
go build -trimpath -o "$SOCLE_OUT/worker" .`
	a, err = b.Build(context.Background(), p.repo, p.head, worker)
	if err != nil {
		t.Fatal(err)
	}
	log, err = os.ReadFile(filepath.Join(dir, "logs", "worker", a.Revision+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worker's build: %s", lastLine(log))
	after := indexEntries(t, seed)
	changed := 0
	for name, entry := range before {
		if after[name] != entry {
			changed++
		}
	}
	if changed > 0 {
		t.Errorf("a build changed %d index entries of the seed", changed)
	}
	// Where the entries are links, the build's user does not own them.
	if uid, _, other := sb.Owner("build:worker"); other {
		cache := filepath.Join(dir, "cache", "worker", "go-build")
		links := 0
		_ = filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Nlink > 1 {
				links++
				if int(st.Uid) == uid {
					t.Errorf("%s: a link to the seed owned by the build's user", p)
				}
			}
			return nil
		})
		if links == 0 {
			t.Errorf("socle is root, yet no entry of worker's cache is a link to the seed")
		}
	}
}

// indexEntries reads the index entries (-a files) of a Go build cache.
func indexEntries(t *testing.T, cache string) map[string]string {
	t.Helper()
	entries := map[string]string{}
	err := filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "-a") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		entries[p] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestGoSeedStamped: a seed made by this toolchain with this environment
// is not made again (go env alone runs, never go build), and another
// environment (GOFLAGS) names another seed.
func TestGoSeedStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go's standard library into the seed if it is not there (about 2 minutes on 2 cores)")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	// go, as the builds find it: a wrapper that says what it was asked.
	bin, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	wrapper := "#!/bin/sh\necho \"$*\" >> " + calls + "\nexec " + goCmd + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	env := setEnv(os.Environ(), map[string]string{"PATH": bin + string(os.PathListSeparator) + os.Getenv("PATH")})
	data := t.TempDir()
	reg, err := registry.Open(filepath.Join(data, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	first := newBuilder(t, filepath.Join(data, "a"), reg, "127.0.0.1:1", nil)
	if first.cfg.GoSeed == "" {
		t.Skip("no seed: the user has no cache directory")
	}
	if _, err := first.goSeed(t.Context(), env); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(calls); err != nil {
		t.Fatalf("the first seeding ran no go command: %v", err)
	}
	second := newBuilder(t, filepath.Join(data, "b"), reg, "127.0.0.1:1", nil)
	seed, err := second.goSeed(t.Context(), env)
	if err != nil || seed != first.cfg.GoSeed {
		t.Fatalf("goSeed = %q, %v; want %s", seed, err, first.cfg.GoSeed)
	}
	ran, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(ran)); got != "env -json" {
		t.Errorf("a stamped seed ran go %q; want go env -json alone", got)
	}

	stamp := func(env []string) string {
		s, err := seedStamp(t.Context(), goCmd, t.TempDir(), env)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if a, b := stamp(env), stamp(setEnv(env, map[string]string{"GOFLAGS": "-tags=netgo"})); a == b {
		t.Error("GOFLAGS=-tags=netgo gives the seed's stamp of the default flags")
	}
	if a, b := stamp(env), stamp(setEnv(env, map[string]string{"GOCACHE": t.TempDir()})); a != b {
		t.Error("the cache directory changes the seed's stamp")
	}
}
