package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The Go standard library seed.
//
// A sandboxed build keeps its Go build cache in its app's cache directory,
// so that no app's build can plant a compiled package in what another
// app's build links (a build cache is addressed by the hash of its inputs:
// whoever writes an entry decides what every later build with those inputs
// gets). A new app would then compile Go's runtime and standard library
// before its own code: about a minute on two cores, for each app, on the
// first start.
//
// So socle compiles the standard library itself, as its own user, outside
// any sandbox (no app's code is involved), into a cache of its own, the
// seed (Config.GoSeed), with the environment builds get and the two ways Go
// apps are usually built (with and without -trimpath); and before a Go
// build it puts the seed's entries its app's cache lacks into that cache.
// When socle is root, builds run as users of their own and the entries are
// hard links to the seed's files, which stay socle's (read-only to the
// build's user, which can neither change them nor their mode); otherwise a
// build runs as socle's user, could rewrite a shared file, and gets copies.
// Go's cache has no notion of layers (GOCACHEPROG could make one, at the
// cost of an executable of socle's inside every sandbox), hence the copy.

// seedFlags are the builds of the standard library made into the seed:
// each set of compiler flags gives other cache entries.
var seedFlags = [][]string{nil, {"-trimpath"}}

// seedEntry matches the files of a Go build cache that are entries:
// <2 hex>/<64 hex>-a (index) or -d (output).
var seedEntry = regexp.MustCompile(`^[0-9a-f]{64}-[ad]$`)

// goBuildTemp matches the temporary directory of a go command.
var goBuildTemp = regexp.MustCompile(`go-build[0-9]+`)

// goSeed fills the seed once per Builder (again after a failure) and
// returns its directory; env is a build's environment (its GOCACHE is
// replaced). The seed is shared by every socle of this user: Go's cache is
// safe for concurrent go commands.
func (b *Builder) goSeed(ctx context.Context, env []string) (string, error) {
	b.seedMu.Lock()
	defer b.seedMu.Unlock()
	if b.seeded {
		return b.cfg.GoSeed, nil
	}
	seed := b.cfg.GoSeed
	if err := os.MkdirAll(seed, 0o755); err != nil {
		return "", err
	}
	goCmd, err := lookPath("go", env)
	if err != nil {
		return "", err
	}
	// The builds' environment (GOFLAGS, GOAMD64, … make other entries),
	// their cache aside.
	env = setEnv(env, map[string]string{"GOCACHE": seed})
	// A seed made by this toolchain with this environment is not made
	// again: checking that it is up to date costs go two seconds and a
	// walk of its files, at every start of socle.
	stamp, err := seedStamp(ctx, goCmd, seed, env)
	if err != nil {
		return "", err
	}
	stampFile := filepath.Join(seed, "socle-seed.stamp")
	if made, err := os.ReadFile(stampFile); err == nil && string(made) == stamp {
		b.seeded = true
		return seed, nil
	}
	for _, flags := range seedFlags {
		start := time.Now()
		args := append(append([]string{"build"}, flags...), "std")
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Env, cmd.Dir = env, seed
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, lastLine(out))
		}
		b.log.Debug("Go standard library seed", "dir", seed, "flags", flags, "duration", time.Since(start).Round(time.Millisecond))
	}
	// Readable by the builds' users (a umask of socle's may have hidden
	// them); never writable by them.
	err = filepath.WalkDir(seed, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := info.Mode().Perm()&^0o022 | 0o444
		if d.IsDir() {
			want |= 0o111
		}
		if info.Mode().Perm() != want {
			return os.Chmod(p, want)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(stampFile, []byte(stamp), 0o644); err != nil {
		return "", err
	}
	b.seeded = true
	return seed, nil
}

// seedStamp names what the seed is made of: the toolchain and everything
// of the environment go reports (version, GOROOT, GOFLAGS, GOARCH and its
// levels, CGO and its compiler, …) but the cache, and the seed's flags.
func seedStamp(ctx context.Context, goCmd, dir string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, "env", "-json")
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	var vars map[string]string
	if err := json.Unmarshal(out, &vars); err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	delete(vars, "GOCACHE")
	// GOGCCFLAGS names a temporary directory of each go command.
	vars["GOGCCFLAGS"] = goBuildTemp.ReplaceAllString(vars["GOGCCFLAGS"], "go-build")
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(h, "%s=%q\n", k, vars[k])
	}
	// The compiler itself: a toolchain replaced in place keeps its
	// version string.
	if fi, err := os.Stat(vars["GOTOOLDIR"] + "/compile"); err == nil {
		fmt.Fprintf(h, "compile %d %d\n", fi.Size(), fi.ModTime().UnixNano())
	}
	fmt.Fprintf(h, "flags %q\n", seedFlags)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// seedCache puts into the Go build cache dst the entries of seed it lacks:
// hard links when link (the seed's files stay their owner's), copies
// otherwise or across file systems. own gives a directory it makes to the
// build's user. It returns how many entries it added.
func seedCache(seed, dst string, link bool, own func(dir string) error) (int, error) {
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dst, 0o755); err != nil {
			return 0, err
		}
		if err := own(dst); err != nil {
			return 0, err
		}
	}
	subs, err := os.ReadDir(seed)
	if err != nil {
		return 0, err
	}
	added := 0
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(seed, sub.Name()))
		if err != nil {
			return added, err
		}
		to := filepath.Join(dst, sub.Name())
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(to, 0o755); err != nil {
				return added, err
			}
			if err := own(to); err != nil {
				return added, err
			}
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !seedEntry.MatchString(e.Name()) {
				continue
			}
			src, target := filepath.Join(seed, sub.Name(), e.Name()), filepath.Join(to, e.Name())
			if _, err := os.Lstat(target); err == nil {
				continue
			}
			if err := seedFile(src, target, link); err != nil {
				return added, err
			}
			added++
		}
	}
	return added, nil
}

// seedFile links or copies one entry; a copy appears whole or not at all.
func seedFile(src, target string, link bool) error {
	if link {
		err := os.Link(src, target)
		if err == nil || errors.Is(err, fs.ErrExist) {
			return nil
		}
		if !errors.Is(err, syscall.EXDEV) {
			return err
		}
		// Another file system: a copy, socle's and read-only like the
		// seed's files.
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(target), ".seed-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), target)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// goModule reports whether dir is a Go module's (a build that the seed
// speeds up).
func goModule(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "go.mod"))
	return err == nil
}

// lookPath finds file along env's PATH.
func lookPath(file string, env []string) (string, error) {
	for _, kv := range slices.Backward(env) {
		if path, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range filepath.SplitList(path) {
				p := filepath.Join(dir, file)
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					return p, nil
				}
			}
			break
		}
	}
	return "", fmt.Errorf("%s is not on the builds' PATH", file)
}

// setEnv returns env with the variables of set replaced (removed when
// their value is empty).
func setEnv(env []string, set map[string]string) []string {
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, ok := set[k]
		return ok
	})
	for k, v := range set {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	slices.Sort(env)
	return env
}
