package template

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// A three-way merge is git's own (git merge-file, on temporary files):
// git is on every machine that runs socle's tests and most that run
// socle, its merge is the one developers know (the same conflict markers,
// the same results as a rebase), and the module proxy serves no diff3
// library kept up as well.

// FileMerge is the upgrade of one file.
type FileMerge struct {
	// Path is relative to apps/<app>/.
	Path string
	// Result is the file's new content; nil: the file is removed.
	Result []byte
	// Conflicts counts the conflicting hunks git left marked in Result.
	Conflicts int
	// Changed says Result differs from the app's current file.
	Changed bool
}

// Merge upgrades an app's files: base is the old version rendered with the
// app's parameters, theirs the new version rendered with them, ours the
// app's current files (only those the template renders, in either
// version). Labels name the three sides in conflict markers.
func Merge(ctx context.Context, base, theirs, ours map[string][]byte, labels [3]string) ([]FileMerge, error) {
	seen := map[string]bool{}
	var paths []string
	for _, m := range []map[string][]byte{base, theirs} {
		for p := range m {
			if !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	var out []FileMerge
	slices.Sort(paths)
	for _, p := range paths {
		b, hasB := base[p]
		t, hasT := theirs[p]
		o, hasO := ours[p]
		f := FileMerge{Path: p, Result: o}
		switch {
		case hasT && hasB && bytes.Equal(b, t):
			// The template did not change it: the app's stays.
		case hasO && hasT && bytes.Equal(o, t):
			// Already the new version.
		case !hasT && (!hasO || (hasB && bytes.Equal(o, b))):
			f.Result = nil // the template removed it, the app had not changed it
		case hasT && (!hasO && !hasB || hasB && hasO && bytes.Equal(o, b)):
			f.Result = t // new in the template, or unchanged in the app
		case !hasT:
			// Removed from the template, changed in the app: the app's
			// version stays, as a conflict to look at.
			f.Conflicts = 1
			f.Result = append([]byte(fmt.Sprintf("<<<<<<< %s\n", labels[0])), o...)
			f.Result = append(f.Result, []byte(fmt.Sprintf("=======\n>>>>>>> %s (removed)\n", labels[2]))...)
		case !hasO && hasB:
			// The app removed a file the template changed: it stays removed.
			f.Result = nil
		default:
			res, n, err := mergeFile(ctx, o, b, t, labels)
			if err != nil {
				return nil, fmt.Errorf("merging %s: %w", p, err)
			}
			f.Result, f.Conflicts = res, n
		}
		f.Changed = !(f.Result == nil && !hasO) && !(hasO && f.Result != nil && bytes.Equal(f.Result, o))
		out = append(out, f)
	}
	return out, nil
}

// mergeFile merges with git merge-file -p --diff3: the result on its
// standard output, the number of conflicts its exit status.
func mergeFile(ctx context.Context, ours, base, theirs []byte, labels [3]string) ([]byte, int, error) {
	dir, err := os.MkdirTemp("", "socle-merge-")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	names := [3]string{filepath.Join(dir, "ours"), filepath.Join(dir, "base"), filepath.Join(dir, "theirs")}
	for i, data := range [][]byte{ours, base, theirs} {
		if err := os.WriteFile(names[i], data, 0o600); err != nil {
			return nil, 0, err
		}
	}
	cmd := exec.CommandContext(ctx, "git", "merge-file", "-p", "--diff3",
		"-L", labels[0], "-L", labels[1], "-L", labels[2], names[0], names[1], names[2])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.Bytes(), 0, nil
	case errors.As(err, &exit) && exit.ExitCode() > 0 && exit.ExitCode() < 128:
		return stdout.Bytes(), exit.ExitCode(), nil
	case errors.Is(err, exec.ErrNotFound):
		return nil, 0, fmt.Errorf("git is not on socle's PATH: a template upgrade merges with git merge-file")
	}
	return nil, 0, fmt.Errorf("git merge-file: %v: %s", err, strings.TrimSpace(stderr.String()))
}

// Diff is a unified diff of one file from old to new (nil: absent), with
// path in its headers, by diff -u; empty when they are equal.
func Diff(ctx context.Context, path string, old, new []byte) (string, error) {
	if bytes.Equal(old, new) && (old == nil) == (new == nil) {
		return "", nil
	}
	dir, err := os.MkdirTemp("", "socle-diff-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	la, lb := "a/"+path, "b/"+path
	if old == nil {
		la = "/dev/null"
	}
	if new == nil {
		lb = "/dev/null"
	}
	if err := os.WriteFile(a, old, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(b, new, 0o600); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "diff", "-u", "--label", la, "--label", lb, a, b)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err == nil || errors.As(err, &exit) && exit.ExitCode() == 1 {
		return stdout.String(), nil
	}
	return "", fmt.Errorf("diff: %v: %s", err, strings.TrimSpace(stderr.String()))
}
