package spec

import (
	"errors"
	"fmt"
	"io/fs"
)

// Symbolic links are refused wherever socle reads the platform repository,
// whatever they point to, in a checkout (validate, plan) as in a revision
// read from git (the server): the same loader sees them the same way
// through any fs.FS. Why not follow those that stay inside the repository:
// an app is the files of its directory, hashed into its version, and a link
// would make what it deploys depend on files the hash does not cover (or, if
// the hash followed links, on files outside the app's directory); nothing is
// then ever read outside the repository either. A link says what it is and
// where it points, rather than "file does not exist".

// LinkError is a symbolic link where socle reads a file or a directory.
type LinkError struct {
	Name   string // slash-separated, inside the repository
	Target string // as written in the link; empty if unreadable
}

func (e *LinkError) Error() string { return e.Name + " " + e.detail() }

func (e *LinkError) detail() string {
	to := ""
	if e.Target != "" {
		to = " (to " + e.Target + ")"
	}
	return "is a symbolic link" + to + "; socle reads regular files only: commit what it points to in its place"
}

// Problem is the error as a problem of the link's file.
func (e *LinkError) Problem() Problem { return Problem{File: e.Name, Message: e.detail()} }

func linkError(fsys fs.FS, name string) *LinkError {
	target, _ := fs.ReadLink(fsys, name)
	return &LinkError{Name: name, Target: target}
}

// ReadFile reads a file of the platform repository: a regular file in
// directories that are not symbolic links either (a link is a *LinkError),
// of at most the size a YAML file may have, checked before it is read. A
// missing file is an error that wraps fs.ErrNotExist.
func ReadFile(fsys fs.FS, name string) ([]byte, error) {
	if err := parentsNotLinks(fsys, name); err != nil {
		return nil, err
	}
	return readFile(fsys, name, defaultLimits)
}

// parentsNotLinks returns a *LinkError if a directory on the way to name is
// a symbolic link.
func parentsNotLinks(fsys fs.FS, name string) error {
	for i := range len(name) {
		if name[i] == '/' {
			if err := notLink(fsys, name[:i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// notLink returns a *LinkError if name is a symbolic link, or the error of
// looking.
func notLink(fsys fs.FS, name string) error {
	fi, err := fs.Lstat(fsys, name)
	if err != nil {
		return err
	}
	if fi.Mode().Type() == fs.ModeSymlink {
		return linkError(fsys, name)
	}
	return nil
}

// readFile reads a file whose directories the caller has seen are not
// links.
func readFile(fsys fs.FS, name string, lim limits) ([]byte, error) {
	fi, err := fs.Lstat(fsys, name)
	if err != nil {
		return nil, err
	}
	switch {
	case fi.Mode().Type() == fs.ModeSymlink:
		return nil, linkError(fsys, name)
	case fi.IsDir():
		return nil, fmt.Errorf("%s is a directory; a file was expected", name)
	case fi.Size() > lim.fileBytes:
		return nil, fmt.Errorf("file is %d bytes; the limit is %d", fi.Size(), lim.fileBytes)
	}
	data, err := fs.ReadFile(fsys, name)
	if err == nil && int64(len(data)) > lim.fileBytes { // it grew since
		return nil, fmt.Errorf("file is %d bytes; the limit is %d", len(data), lim.fileBytes)
	}
	return data, err
}

// ReadDir lists a directory of the platform repository, which must not be
// a symbolic link, nor any directory on the way to it (a *LinkError);
// entries that are links are listed as such (DirEntry.Type), for the
// caller to refuse.
func ReadDir(fsys fs.FS, name string) ([]fs.DirEntry, error) {
	if err := parentsNotLinks(fsys, name); err != nil {
		return nil, err
	}
	return readDir(fsys, name)
}

// readDir is ReadDir for a directory whose parents the caller has seen are
// not links.
func readDir(fsys fs.FS, name string) ([]fs.DirEntry, error) {
	if err := notLink(fsys, name); err != nil {
		return nil, err
	}
	return fs.ReadDir(fsys, name)
}

// FileProblem is the problem of a file that could not be read: a link says
// what it is, another error is its text.
func FileProblem(file string, err error) Problem {
	var le *LinkError
	if errors.As(err, &le) {
		return le.Problem()
	}
	return Problem{File: file, Message: err.Error()}
}
