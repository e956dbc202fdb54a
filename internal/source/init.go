package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Init creates a git repository at dst, which must be missing or empty, with a
// working tree and the branch "main"; copies into it the files of the
// directory src, except .git and .socle directories and what src's .gitignore
// files exclude; and commits them.
//
// The repository is made to accept pushes to its checked-out branch: its
// configuration sets receive.denyCurrentBranch to updateInstead, so that
// Commit (which writes such a repository directly) and git push from a clone
// (which honours that setting) both update its working tree, as long as that
// does not overwrite uncommitted changes. A person can thus edit and commit in
// dst while socle records promotions there.
func Init(ctx context.Context, src, dst, author, email, message string) (Revision, error) {
	if strings.TrimSpace(author) == "" || strings.TrimSpace(message) == "" {
		return Revision{}, errors.New("init: author and message are required")
	}
	src, err := filepath.Abs(src)
	if err != nil {
		return Revision{}, err
	}
	dst, err = filepath.Abs(dst)
	if err != nil {
		return Revision{}, err
	}
	if src == dst {
		return Revision{}, fmt.Errorf("init: %s would be copied onto itself", src)
	}
	if fi, err := os.Stat(src); err != nil {
		return Revision{}, fmt.Errorf("init: %w", err)
	} else if !fi.IsDir() {
		return Revision{}, fmt.Errorf("init: %s is not a directory", src)
	}
	existed := true
	switch entries, err := os.ReadDir(dst); {
	case errors.Is(err, fs.ErrNotExist):
		existed = false
	case err != nil:
		return Revision{}, fmt.Errorf("init: %w", err)
	case len(entries) > 0:
		return Revision{}, fmt.Errorf("init: %s is not empty", dst)
	}

	rev, err := initRepo(ctx, src, dst, author, email, message)
	if err != nil {
		// Leave dst as it was found.
		if existed {
			entries, _ := os.ReadDir(dst)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dst, e.Name()))
			}
		} else {
			os.RemoveAll(dst)
		}
		return Revision{}, fmt.Errorf("init %s: %w", dst, err)
	}
	return rev, nil
}

func initRepo(ctx context.Context, src, dst, author, email, message string) (Revision, error) {
	repo, err := git.PlainInitWithOptions(dst, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		return Revision{}, err
	}
	cfg, err := repo.Config()
	if err != nil {
		return Revision{}, err
	}
	cfg.Raw.Section("receive").SetOption("denyCurrentBranch", "updateInstead")
	if err := repo.SetConfig(cfg); err != nil {
		return Revision{}, err
	}
	if err := copyFiles(ctx, src, dst); err != nil {
		return Revision{}, err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return Revision{}, err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return Revision{}, err
	}
	h, err := wt.Commit(strings.TrimSpace(message)+"\n", &git.CommitOptions{
		Author: &object.Signature{Name: author, Email: email, When: time.Now()},
	})
	if err != nil {
		return Revision{}, err
	}
	return revisionOf(repo.Storer, h)
}

// copyFiles copies the directory src into dst as git add would see it:
// without .git and .socle directories, files that .gitignore excludes, or
// anything but directories, regular files and symbolic links.
func copyFiles(ctx context.Context, src, dst string) error {
	patterns, err := gitignore.ReadPatterns(osfs.New(src), nil)
	if err != nil {
		return err
	}
	ignored := gitignore.NewMatcher(patterns)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		skip := d.Name() == ".git" || d.Name() == ".socle" || p == dst ||
			ignored.Match(strings.Split(filepath.ToSlash(rel), "/"), d.IsDir())
		switch {
		case skip && d.IsDir():
			return filepath.SkipDir
		case skip:
			return nil
		}
		target := filepath.Join(dst, rel)
		switch t := d.Type(); {
		case t.IsDir():
			return os.Mkdir(target, 0o755)
		case t&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case t.IsRegular():
			return copyFile(p, target)
		}
		return nil
	})
}

// copyFile copies a regular file, executable if any execute bit is set.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	mode := filemode.Regular
	if fi.Mode()&0o111 != 0 {
		mode = filemode.Executable
	}
	return writeEntry(to, mode, in)
}
