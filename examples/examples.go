// Package examples carries the demo platform inside the socle binary, so that
// `socle init` and `socle up` work from anywhere. The apps of the demo have
// their own go.mod files, which go:embed refuses to cross, so the platform is
// embedded as a deterministic tar archive that a test keeps equal to
// examples/platform (rewrite it with go test ./examples -update).
package examples

import (
	"archive/tar"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"
)

//go:embed platform.tar
var platformTar []byte

// DemoSecrets is demo-secrets.yaml: the demo's secret values, by app, zone
// and name, which socle up encrypts into the demo repository on its first
// start (never there in clear).
//
//go:embed demo-secrets.yaml
var DemoSecrets []byte

// WritePlatform writes the demo platform into dir, which must not hold any
// of its files yet.
func WritePlatform(dir string) error {
	tr := tar.NewReader(bytes.NewReader(platformTar))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(h.Mode)&0o755|0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
}

// Archive builds the deterministic tar of a directory: sorted paths, fixed
// times and owners, so that the same tree always gives the same bytes.
func Archive(fsys fs.FS) ([]byte, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range files {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		info, err := fs.Stat(fsys, p)
		if err != nil {
			return nil, err
		}
		mode := int64(0o644)
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		h := &tar.Header{Name: path.Clean(p), Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("archiving %s: %w", p, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
