package artifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

// BuildError is a build command that failed: its status says why, with the
// end of what it printed.
type BuildError struct {
	App      string
	Revision string
	// Err is why: the command's exit status, a timeout, a cancellation, or
	// an output that cannot be packaged.
	Err error
	// Tail is the end of the build log.
	Tail string
	// Log is the file holding the whole log.
	Log string
}

func (e *BuildError) Error() string {
	msg := fmt.Sprintf("building %s at %s: %v", e.App, shortSHA(e.Revision), e.Err)
	if e.Tail != "" {
		msg += "\n" + e.Tail
	}
	return msg
}

func (e *BuildError) Unwrap() error { return e.Err }

// LogTail is the end of the build log, for a status to show apart from
// the error.
func (e *BuildError) LogTail() string { return e.Tail }

func shortSHA(sha string) string { return sha[:min(len(sha), 7)] }

// tailSize bounds the log tail kept for errors and statuses.
const (
	tailBytes = 4 << 10
	tailLines = 30
)

// build runs the app's build command on an export of rev, then packages and
// stores its output. Nothing is stored unless every step succeeds.
func (b *Builder) build(ctx context.Context, repo *source.Repo, rev source.Revision, app *spec.App, progress func(string)) (Artifact, error) {
	work, err := os.MkdirTemp(filepath.Join(b.cfg.Dir, "work"), app.Name+"-")
	if err != nil {
		return Artifact{}, err
	}
	defer os.RemoveAll(work)
	src, out := filepath.Join(work, "src"), filepath.Join(work, "out")
	if err := repo.Export(rev.SHA, src); err != nil {
		return Artifact{}, fmt.Errorf("building %s: exporting %s: %w", app.Name, shortSHA(rev.SHA), err)
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return Artifact{}, err
	}
	dir, err := buildDir(src, app)
	if err != nil {
		return Artifact{}, err
	}

	// The log is socle's alone: a build prints what it likes, secrets
	// included, and only the API shows it, to whom may read it.
	logFile := filepath.Join(b.cfg.Dir, "logs", app.Name, rev.SHA+".log")
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return Artifact{}, err
	}
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Artifact{}, err
	}
	log := &logWriter{file: f, progress: progress}
	fmt.Fprintf(log, "$ %s\n", app.Config.Build.Command)
	runErr := b.run(ctx, app.Name, work, dir, b.env(rev, app, out), app.Config.Build.Command, log)
	if err := f.Close(); runErr == nil {
		runErr = err
	}
	fail := func(err error) error {
		return &BuildError{App: app.Name, Revision: rev.SHA, Err: err, Tail: log.tail(), Log: logFile}
	}
	if runErr != nil {
		return Artifact{}, fail(runErr)
	}

	img, err := packageImage(b.cfg.Registry, out, app, rev)
	if err != nil {
		return Artifact{}, fail(err)
	}
	h, err := b.cfg.Registry.WriteImage(repository(app.Name), rev.SHA, img)
	if err != nil {
		return Artifact{}, fmt.Errorf("building %s: storing image: %w", app.Name, err)
	}
	size, err := imageSize(img)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{
		Digest:   h.String(),
		App:      app.Name,
		Revision: rev.SHA,
		Source:   app.Source,
		BuiltAt:  time.Now().UTC(),
		Size:     size,
	}, nil
}

// buildDir is apps/<app>/<build.dir> of the export, which it must not leave.
func buildDir(src string, app *spec.App) (string, error) {
	rel := filepath.Join(spec.AppsDir, app.Name, filepath.FromSlash(app.Config.Build.Dir))
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("building %s: build.dir %q leaves the repository", app.Name, app.Config.Build.Dir)
	}
	dir := filepath.Join(src, rel)
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return "", fmt.Errorf("building %s: build.dir %q is not a directory of the repository at this revision", app.Name, app.Config.Build.Dir)
	}
	return dir, nil
}

// run runs command with sh -c in dir, inside work, in its own process
// group, which is killed whole when the build times out or ctx ends: in the
// app's sandbox (see Config.Sandbox) unless it is off.
func (b *Builder) run(ctx context.Context, app, work, dir string, env []string, command string, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	sb := b.cfg.Sandbox
	if err := sb.Ready(); err != nil {
		return err
	}
	name := "build:" + app
	spec := sandbox.Spec{Name: name, Argv: []string{"sh", "-c", command}, Env: env, Dir: dir, HostRoot: true, Hide: b.cfg.Hide, Die: true}
	if sb.Enabled() {
		// The cache is given to the build's user once, when made (what
		// the builds put in it is theirs); the work directory, exported by
		// socle, at every build.
		cache := filepath.Join(b.cfg.Dir, "cache", app)
		if _, err := os.Stat(cache); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Join(cache, "home"), 0o700); err != nil {
				return err
			}
			if err := sb.Chown(name, cache); err != nil {
				return err
			}
		}
		if err := sb.Chown(name, work); err != nil {
			return err
		}
		spec.Writable = []string{work, cache}
		spec.Env = withCache(env, cache)
		if b.cfg.GoSeed != "" && goModule(dir) {
			b.seedGo(ctx, name, env, filepath.Join(cache, "go-build"), log)
		}
	}
	cmd, err := sb.Command(spec)
	if err != nil {
		return err
	}
	cmd.Stdout = log
	cmd.Stderr = log
	err = cmd.Start()
	if err == nil {
		// Cancelled or timed out: kill the whole group.
		stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		defer stop()
	}
	// Grandchildren that keep the output open must not keep the build waiting.
	cmd.WaitDelay = 5 * time.Second
	if err == nil {
		err = cmd.Wait()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("timed out after %s", b.cfg.Timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("cancelled: %w", ctx.Err())
	}
	return err
}

// withCache points a sandboxed build's caches and home into its app's
// cache directory, the only place it writes outside its work directory: the
// host's HOME is read-only there, and another app's builds do not see it.
func withCache(env []string, cache string) []string {
	return setEnv(env, map[string]string{
		"HOME":           filepath.Join(cache, "home"),
		"XDG_CACHE_HOME": filepath.Join(cache, "xdg"),
		"GOCACHE":        filepath.Join(cache, "go-build"),
		"GOPATH":         filepath.Join(cache, "go"),
		"GOMODCACHE":     filepath.Join(cache, "go", "pkg", "mod"),
	})
}

// seedGo puts the Go standard library seed into a sandboxed build's cache
// (see goseed.go). Without it the build still runs, slower: why is in its
// log.
func (b *Builder) seedGo(ctx context.Context, name string, env []string, cache string, log io.Writer) {
	start := time.Now()
	seed, err := b.goSeed(ctx, env)
	n := 0
	if err == nil {
		// Only the directories it makes are the build's user's, never a
		// file of the seed (Sandbox.Chown walks a tree: not here).
		own := func(dir string) error {
			if uid, gid, other := b.cfg.Sandbox.Owner(name); other {
				return os.Lchown(dir, uid, gid)
			}
			return nil
		}
		n, err = seedCache(seed, cache, b.cfg.Sandbox.PerAppUsers(), own)
	}
	if err != nil {
		fmt.Fprintf(log, "socle: the Go standard library seed is not in this build's cache (%v): Go compiles it again\n", err)
		return
	}
	if n > 0 {
		fmt.Fprintf(log, "socle: %d entries of the Go standard library seed (%s) put in this build's cache in %s\n", n, seed, time.Since(start).Round(time.Millisecond))
	}
}

// passEnv lists the variables of socle's own environment that a build sees:
// what tools need to find themselves, their caches and the network. Nothing
// else goes through, so that socle's secrets stay out of builds.
var passEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "TZ", "XDG_CACHE_HOME",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"GOROOT", "GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOSUMDB",
	"GONOPROXY", "GOINSECURE", "GOFLAGS", "GOTOOLCHAIN", "GOAMD64", "GOARM64", "GOEXPERIMENT",
}

// env is the environment of a build command.
func (b *Builder) env(rev source.Revision, app *spec.App, out string) []string {
	vars := map[string]string{}
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	// Without a home, the go command has nowhere to cache: give it one
	// that lasts across builds.
	if vars["HOME"] == "" && vars["XDG_CACHE_HOME"] == "" && vars["GOCACHE"] == "" {
		vars["GOCACHE"] = filepath.Join(b.cfg.Dir, "cache", "go-build")
	}
	if vars["HOME"] == "" && vars["GOPATH"] == "" {
		vars["GOPATH"] = filepath.Join(b.cfg.Dir, "cache", "go")
	}
	vars["CGO_ENABLED"] = "0"
	if !strings.Contains(vars["GOFLAGS"], "-buildvcs") {
		vars["GOFLAGS"] = strings.TrimSpace(vars["GOFLAGS"] + " -buildvcs=false")
	}
	vars["SOCLE_OUT"] = out
	vars["SOCLE_REVISION"] = rev.SHA
	vars["SOCLE_APP"] = app.Name
	vars["SOCLE_SOURCE"] = app.Source
	for _, kv := range b.cfg.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// logWriter writes a build's output to its log file and keeps its end.
type logWriter struct {
	mu   sync.Mutex
	file *os.File
	last []byte // the last tailBytes written
	// progress, when set, is told the last complete line after each write
	// that completes one.
	progress func(line string)
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = append(w.last, p...)
	if len(w.last) > 2*tailBytes {
		w.last = append(w.last[:0], w.last[len(w.last)-tailBytes:]...)
	}
	n, err := w.file.Write(p)
	if w.progress != nil && bytes.IndexByte(p, '\n') >= 0 {
		if line := lastLine(w.last); line != "" {
			w.progress(line)
		}
	}
	return n, err
}

// lastLine is the last complete, non-blank line of b.
func lastLine(b []byte) string {
	end := bytes.LastIndexByte(b, '\n')
	for end >= 0 {
		start := bytes.LastIndexByte(b[:end], '\n') + 1
		if line := strings.TrimSpace(string(b[start:end])); line != "" {
			return line
		}
		end = start - 1
	}
	return ""
}

// tail returns the last lines written, at most tailLines and tailBytes.
func (w *logWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.last
	if len(t) > tailBytes {
		t = t[len(t)-tailBytes:]
		if i := bytes.IndexByte(t, '\n'); i >= 0 {
			t = t[i+1:] // drop the partial first line
		}
	}
	lines := strings.Split(strings.TrimRight(string(t), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-tailLines):], "\n")
}
