// Package safefile writes files so that a crash leaves either the old
// content or the new one, never a part. Every package that keeps state in
// files (the artifact store, stack runs, resource outputs, the process
// driver's servers, the proxy's routes) writes through it.
package safefile

import (
	"os"
	"path/filepath"
	"strings"
)

// tempPrefix starts the names of Write's temporary files.
const tempPrefix = ".tmp-"

// Write writes data to name atomically: to a temporary file in the same
// directory (created if missing, 0755), readable by its owner only,
// synced, then renamed over name, and the rename made durable. A directory
// that must be private is made by the caller first.
func Write(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// IsTemp reports whether a file name is one of Write's temporary files,
// which a reader listing the directory skips.
func IsTemp(name string) bool { return strings.HasPrefix(name, tempPrefix) }
