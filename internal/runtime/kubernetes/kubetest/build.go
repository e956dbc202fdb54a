package kubetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Versions of what the harness builds. KubeVersion must match the
// k8s.io/kubernetes requirement in test/k8s/stack/go.mod: it is stamped into
// the binary because client-go and kubectl refuse the "v0.0.0-master"
// version a plain go build would report.
const (
	KubeVersion = "v1.37.2"
	KwokVersion = "v0.8.0"
)

// Binaries are the programs a cluster runs, built once per machine.
type Binaries struct {
	Dir    string // the cache directory holding them
	Stack  string // etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
	Kwok   string // the kwok controller
	Stages string // directory of kwok stage files, in the repository

	// Built is how long building took in this process; zero when the cache
	// already held them.
	Built time.Duration
}

// Build returns the cached binaries, building them first when this machine
// has not yet: the cache directory is keyed on the nested module's go.mod,
// go.sum and main.go, the Go version and kwok's version, so a change of any
// rebuilds. A file lock makes test binaries that run in parallel wait for one
// build instead of each doing it; logf reports progress, since a cold build
// takes minutes.
func Build(logf func(format string, args ...any)) (*Binaries, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	stackSrc := filepath.Join(root, "test", "k8s", "stack")
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("finding the go command: %w", err)
	}
	goVersion, err := exec.Command(goBin, "env", "GOVERSION").Output()
	if err != nil {
		return nil, fmt.Errorf("reading go version: %w", err)
	}
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		data, err := os.ReadFile(filepath.Join(stackSrc, name))
		if err != nil {
			return nil, fmt.Errorf("hashing stack module: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	fmt.Fprintf(h, "go %s %s/%s kube %s kwok %s\n",
		bytes.TrimSpace(goVersion), runtime.GOOS, runtime.GOARCH, KubeVersion, KwokVersion)
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("finding cache dir: %w", err)
	}
	dir := filepath.Join(cache, "socle", "k8s-"+hex.EncodeToString(h.Sum(nil))[:16])
	b := &Binaries{
		Dir:    dir,
		Stack:  filepath.Join(dir, "stack"),
		Kwok:   filepath.Join(dir, "kwok"),
		Stages: filepath.Join(root, "test", "k8s", "stages"),
	}
	if b.complete() {
		return b, nil
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cache dir: %w", err)
	}
	unlock, err := lockFile(dir+".lock", func() {
		logf("kubetest: waiting for another process building into %s", dir)
	})
	if err != nil {
		return nil, fmt.Errorf("locking cache dir: %w", err)
	}
	defer unlock()
	if b.complete() { // another test binary built them while we waited
		return b, nil
	}

	start := time.Now()
	logf("kubetest: building Kubernetes %s and kwok %s into %s (a cold build takes several minutes, once per machine)", KubeVersion, KwokVersion, dir)
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return nil, fmt.Errorf("creating build dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	// Binaries land in tmp and are renamed into place, so that a build
	// killed halfway never leaves a truncated binary that looks complete.
	if _, err := os.Stat(b.Stack); err != nil {
		pkg := "k8s.io/component-base/version"
		ldflags := strings.Join([]string{
			"-s", "-w",
			"-X", pkg + ".gitVersion=" + KubeVersion,
			"-X", pkg + ".gitMajor=" + strings.Split(strings.TrimPrefix(KubeVersion, "v"), ".")[0],
			"-X", pkg + ".gitMinor=" + strings.Split(KubeVersion, ".")[1],
			"-X", pkg + ".gitTreeState=clean",
		}, " ")
		out := filepath.Join(tmp, "stack")
		cmd := exec.Command(goBin, "build", "-buildvcs=false", "-ldflags", ldflags, "-o", out, ".")
		cmd.Dir = stackSrc
		if err := runBuild(cmd); err != nil {
			return nil, fmt.Errorf("building stack: %w", err)
		}
		if err := os.Rename(out, b.Stack); err != nil {
			return nil, fmt.Errorf("installing stack: %w", err)
		}
		logf("kubetest: built %s in %s", b.Stack, time.Since(start).Round(time.Second))
	}
	if _, err := os.Stat(b.Kwok); err != nil {
		kwokStart := time.Now()
		cmd := exec.Command(goBin, "install", "sigs.k8s.io/kwok/cmd/kwok@"+KwokVersion)
		cmd.Dir = tmp // outside any module: go install pkg@version ignores it anyway
		cmd.Env = append(os.Environ(), "GOBIN="+tmp)
		if err := runBuild(cmd); err != nil {
			return nil, fmt.Errorf("installing kwok: %w", err)
		}
		if err := os.Rename(filepath.Join(tmp, "kwok"), b.Kwok); err != nil {
			return nil, fmt.Errorf("installing kwok: %w", err)
		}
		logf("kubetest: built %s in %s", b.Kwok, time.Since(kwokStart).Round(time.Second))
	}
	// kubectl is the stack called by that name, for tests that run it the
	// way a person would and for people who put the directory on PATH.
	kubectl := filepath.Join(dir, "kubectl")
	if err := os.Symlink("stack", kubectl); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("linking kubectl: %w", err)
	}
	b.Built = time.Since(start)
	return b, nil
}

// complete reports whether every binary is in place.
func (b *Binaries) complete() bool {
	for _, p := range []string{b.Stack, b.Kwok, filepath.Join(b.Dir, "kubectl")} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// runBuild runs a go command with the module-related environment pinned:
// the nested module is built on its own whatever go.work or GOFLAGS the
// test run uses (-race, -cover or -mod=vendor would change or break it).
func runBuild(cmd *exec.Cmd) error {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "GOWORK=off", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail(out, 40))
	}
	return nil
}

// repoRoot finds the socle checkout from the working directory, which go
// test sets to the package's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "test", "k8s", "stack", "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no test/k8s/stack/go.mod above %s", dir)
		}
	}
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
