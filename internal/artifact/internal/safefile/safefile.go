// Package safefile writes files so that a crash leaves either the old
// content or the new one, never a part.
package safefile

import (
	"os"
	"path/filepath"
)

// Write writes data to name atomically: to a temporary file in the same
// directory (created if missing), synced, then renamed over name.
func Write(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
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
	return os.Rename(f.Name(), name)
}
