package registry

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/socle-dev/socle/internal/safefile"
)

// Errors that callers test with errors.Is. The HTTP handler maps each to its
// code of the distribution API.
var (
	ErrBlobUnknown     = errors.New("blob unknown to registry")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrNameUnknown     = errors.New("repository name not known to registry")
	ErrNameInvalid     = errors.New("invalid repository name")
	ErrTagInvalid      = errors.New("invalid tag")
	// ErrDigestInvalid means that a digest is malformed, or that content
	// does not match the digest it was given with.
	ErrDigestInvalid = errors.New("invalid digest")
	// ErrDigestUnsupported means that a digest is well formed but of an
	// algorithm other than sha256, the only one the store keeps content by.
	// It is an ErrDigestInvalid too.
	ErrDigestUnsupported = fmt.Errorf("%w: unsupported digest algorithm", ErrDigestInvalid)
	ErrManifestInvalid   = errors.New("manifest invalid")
	// ErrManifestBlobUnknown means that a manifest refers to a blob or a
	// manifest that the registry does not hold: push those first.
	ErrManifestBlobUnknown = errors.New("manifest references a blob or manifest unknown to registry")
	ErrUploadUnknown       = errors.New("blob upload unknown to registry")
)

// MaxManifestSize bounds a manifest, as the distribution spec suggests (4 MiB).
const MaxManifestSize = 4 << 20

var (
	// The grammar of the distribution spec.
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	hexRE  = regexp.MustCompile(`^[a-f0-9]{64}$`)
	// The digest grammar of the image spec: algorithm ":" encoded.
	algorithmRE = regexp.MustCompile(`^[a-z0-9]+([+._-][a-z0-9]+)*$`)
	encodedRE   = regexp.MustCompile(`^[a-zA-Z0-9=_-]+$`)
)

// staleUpload is how old an unfinished upload must be for Open to remove it.
const staleUpload = 24 * time.Hour

// Store is the registry's content on disk. It is safe for concurrent use,
// also by several processes on the same directory: every change is a rename.
type Store struct {
	dir string
}

// Open opens the store in dir, creating it if missing, and removes uploads
// left unfinished for a day.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir}
	for _, d := range []string{s.path("blobs", "sha256"), s.path("repositories"), s.path("uploads")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("opening registry: %w", err)
		}
	}
	entries, err := os.ReadDir(s.path("uploads"))
	if err != nil {
		return nil, fmt.Errorf("opening registry: %w", err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleUpload {
			os.Remove(s.path("uploads", e.Name()))
		}
	}
	return s, nil
}

// Dir returns the directory of the store.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *Store) blobPath(h v1.Hash) string { return s.path("blobs", h.Algorithm, h.Hex) }

func (s *Store) repoPath(name string, elem ...string) string {
	return s.path(append([]string{"repositories", filepath.FromSlash(name)}, elem...)...)
}

// ParseDigest parses a sha256 digest, the only algorithm the store knows. A
// digest of another algorithm that the image spec's grammar allows (sha512:…)
// fails with ErrDigestUnsupported, anything else with ErrDigestInvalid: a
// reader of a sha512 digest is told that the store holds no such content,
// a writer that it cannot store it.
func ParseDigest(d string) (v1.Hash, error) {
	algo, hx, ok := strings.Cut(d, ":")
	switch {
	case ok && algo == "sha256" && hexRE.MatchString(hx):
		return v1.Hash{Algorithm: algo, Hex: hx}, nil
	case ok && algo != "sha256" && algorithmRE.MatchString(algo) && encodedRE.MatchString(hx):
		return v1.Hash{}, fmt.Errorf("%w %s in %q: socle's registry keeps content by sha256 only", ErrDigestUnsupported, algo, d)
	}
	return v1.Hash{}, fmt.Errorf("%w: %q is not a sha256 digest (sha256:<64 hex digits>)", ErrDigestInvalid, d)
}

// CheckName checks a repository name against the distribution spec's grammar.
func CheckName(name string) error {
	if len(name) > 255 || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q", ErrNameInvalid, name)
	}
	return nil
}

// BlobSize returns the size of a blob, or ErrBlobUnknown.
func (s *Store) BlobSize(h v1.Hash) (int64, error) {
	info, err := os.Stat(s.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrBlobUnknown, h)
	}
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// OpenBlob opens a blob for reading, or fails with ErrBlobUnknown.
func (s *Store) OpenBlob(h v1.Hash) (*os.File, error) {
	f, err := os.Open(s.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrBlobUnknown, h)
	}
	return f, err
}

func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	f, err := s.OpenBlob(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// PutBlob stores the content of r under the digest want, and fails with
// ErrDigestInvalid, storing nothing, if the content does not match it.
func (s *Store) PutBlob(r io.Reader, want v1.Hash) (int64, error) {
	w, err := s.NewBlob()
	if err != nil {
		return 0, err
	}
	defer w.Abort()
	if _, err := io.Copy(w, r); err != nil {
		return 0, err
	}
	return w.Size(), w.Commit(want)
}

// BlobWriter writes a blob into the store. Nothing is visible until Commit;
// Abort (or a crash) leaves only a file in uploads/.
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// NewBlob starts writing a blob.
func (s *Store) NewBlob() (*BlobWriter, error) {
	f, err := os.CreateTemp(s.path("uploads"), "blob-")
	if err != nil {
		return nil, err
	}
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

func (w *BlobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Size is how many bytes were written.
func (w *BlobWriter) Size() int64 { return w.n }

// Digest is the digest of what was written.
func (w *BlobWriter) Digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

// Commit stores the blob under want, which must be its digest.
func (w *BlobWriter) Commit(want v1.Hash) error {
	if w.done {
		return errors.New("blob already committed or aborted")
	}
	defer w.Abort()
	if got := w.Digest(); got != want {
		return fmt.Errorf("%w: the content has digest %s, not %s", ErrDigestInvalid, got, want)
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return w.s.install(w.f.Name(), want)
}

// Abort drops the blob; after Commit, it does nothing.
func (w *BlobWriter) Abort() {
	if !w.done {
		w.done = true
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

// commitBlob moves the upload file tmp, whose content must hash to want,
// into the blob store. It is hashed again, the upload having come in parts.
func (s *Store) commitBlob(tmp string, want v1.Hash) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	got, _, err := v1.SHA256(f)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: the content has digest %s, not %s", ErrDigestInvalid, got, want)
	}
	return s.install(tmp, want)
}

// install renames the file tmp, checked to hash to h, into the blob store.
func (s *Store) install(tmp string, h v1.Hash) error {
	if _, err := os.Stat(s.blobPath(h)); err == nil {
		return nil // already stored: same content
	}
	return os.Rename(tmp, s.blobPath(h))
}

// manifest is what the store reads of a manifest or an index: enough to check
// that what it refers to is present.
type manifest struct {
	MediaType types.MediaType `json:"mediaType"`
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// mediaTypeOf says which kind of manifest raw is when nothing else says it:
// the mediaType field, else an index if it lists manifests.
func mediaTypeOf(m *manifest) types.MediaType {
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return types.OCIImageIndex
	default:
		return types.OCIManifestSchema1
	}
}

// PutManifest stores a manifest in the repository name, under its digest and,
// when ref is a tag, under that tag too; when ref is a digest it must be the
// manifest's own. mt is the Content-Type it was pushed with; if empty, the
// manifest's mediaType field says. Everything it refers to (config, layers,
// or the manifests of an index) must already be stored.
func (s *Store) PutManifest(name, ref string, mt types.MediaType, raw []byte) (v1.Hash, error) {
	if err := CheckName(name); err != nil {
		return v1.Hash{}, err
	}
	if len(raw) > MaxManifestSize {
		return v1.Hash{}, fmt.Errorf("%w: larger than %d bytes", ErrManifestInvalid, MaxManifestSize)
	}
	sum := sha256.Sum256(raw)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	tag := ""
	if strings.Contains(ref, ":") {
		want, err := ParseDigest(ref)
		if err != nil {
			return v1.Hash{}, err
		}
		if want != h {
			return v1.Hash{}, fmt.Errorf("%w: manifest has digest %s, pushed as %s", ErrDigestInvalid, h, want)
		}
	} else if ref != "" {
		if !tagRE.MatchString(ref) {
			return v1.Hash{}, fmt.Errorf("%w: %q", ErrTagInvalid, ref)
		}
		tag = ref
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return v1.Hash{}, fmt.Errorf("%w: %v", ErrManifestInvalid, err)
	}
	if mt == "" {
		mt = mediaTypeOf(&m)
	}
	if m.MediaType != "" && m.MediaType != mt {
		return v1.Hash{}, fmt.Errorf("%w: pushed as %s but says it is %s", ErrManifestInvalid, mt, m.MediaType)
	}
	if mt.IsSchema1() {
		return v1.Hash{}, fmt.Errorf("%w: Docker schema 1 manifests are not supported", ErrManifestInvalid)
	}
	refs := m.Manifests
	if m.Config != nil {
		refs = append(refs, *m.Config)
	}
	for _, d := range append(refs, m.Layers...) {
		if !d.MediaType.IsDistributable() || len(d.URLs) > 0 {
			continue
		}
		if _, err := s.BlobSize(d.Digest); err != nil {
			return v1.Hash{}, fmt.Errorf("%w: %s", ErrManifestBlobUnknown, d.Digest)
		}
	}

	if _, err := s.BlobSize(h); err != nil {
		if _, err := s.PutBlob(bytes.NewReader(raw), h); err != nil {
			return v1.Hash{}, err
		}
	}
	if err := safefile.Write(s.repoPath(name, "_manifests", h.Algorithm, h.Hex), []byte(mt)); err != nil {
		return v1.Hash{}, err
	}
	if tag != "" {
		if err := safefile.Write(s.repoPath(name, "_tags", tag), []byte(h.String())); err != nil {
			return v1.Hash{}, err
		}
	}
	return h, nil
}

// Manifest returns the manifest ref (a tag or a digest) of the repository
// name: its bytes, media type and digest.
func (s *Store) Manifest(name, ref string) ([]byte, types.MediaType, v1.Hash, error) {
	h, mt, err := s.resolve(name, ref)
	if err != nil {
		return nil, "", v1.Hash{}, err
	}
	raw, err := s.readBlob(h)
	if err != nil {
		return nil, "", v1.Hash{}, err
	}
	return raw, mt, h, nil
}

// resolve turns a tag or a digest of the repository into a digest and the
// media type the manifest was pushed with.
func (s *Store) resolve(name, ref string) (v1.Hash, types.MediaType, error) {
	if err := CheckName(name); err != nil {
		return v1.Hash{}, "", err
	}
	var h v1.Hash
	if strings.Contains(ref, ":") {
		var err error
		if h, err = ParseDigest(ref); errors.Is(err, ErrDigestUnsupported) {
			// Well formed, so possibly some registry's manifest: just not one
			// this store can hold.
			return v1.Hash{}, "", fmt.Errorf("%w: %s@%s: socle's registry keeps manifests by sha256 digest only", ErrManifestUnknown, name, ref)
		} else if err != nil {
			return v1.Hash{}, "", err
		}
	} else {
		if !tagRE.MatchString(ref) {
			return v1.Hash{}, "", fmt.Errorf("%w: %q", ErrTagInvalid, ref)
		}
		d, err := os.ReadFile(s.repoPath(name, "_tags", ref))
		if errors.Is(err, fs.ErrNotExist) {
			return v1.Hash{}, "", s.unknown(name, ref)
		}
		if err != nil {
			return v1.Hash{}, "", err
		}
		if h, err = ParseDigest(string(d)); err != nil {
			return v1.Hash{}, "", fmt.Errorf("tag %s of %s: %w", ref, name, err)
		}
	}
	mt, err := os.ReadFile(s.repoPath(name, "_manifests", h.Algorithm, h.Hex))
	if errors.Is(err, fs.ErrNotExist) {
		return v1.Hash{}, "", s.unknown(name, ref)
	}
	if err != nil {
		return v1.Hash{}, "", err
	}
	return h, types.MediaType(mt), nil
}

// unknown says whether the repository or only the manifest is unknown.
func (s *Store) unknown(name, ref string) error {
	if _, err := os.Stat(s.repoPath(name, "_manifests")); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNameUnknown, name)
	}
	return fmt.Errorf("%w: %s:%s", ErrManifestUnknown, name, ref)
}

// DeleteManifest removes a tag, or a manifest with every tag pointing to it.
// The blobs stay.
func (s *Store) DeleteManifest(name, ref string) error {
	h, _, err := s.resolve(name, ref)
	if err != nil {
		return err
	}
	if !strings.Contains(ref, ":") {
		return os.Remove(s.repoPath(name, "_tags", ref))
	}
	tags, err := s.Tags(name)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if d, err := os.ReadFile(s.repoPath(name, "_tags", t)); err == nil && string(d) == h.String() {
			if err := os.Remove(s.repoPath(name, "_tags", t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return os.Remove(s.repoPath(name, "_manifests", h.Algorithm, h.Hex))
}

// Tags lists the tags of a repository, sorted.
func (s *Store) Tags(name string) ([]string, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.repoPath(name, "_manifests")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNameUnknown, name)
	}
	entries, err := os.ReadDir(s.repoPath(name, "_tags"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tags := []string{}
	for _, e := range entries {
		if tagRE.MatchString(e.Name()) {
			tags = append(tags, e.Name())
		}
	}
	slices.Sort(tags)
	return tags, nil
}

// Repositories lists the repositories that hold a manifest, sorted.
func (s *Store) Repositories() ([]string, error) {
	root := s.path("repositories")
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || !strings.HasPrefix(d.Name(), "_") {
			return err
		}
		if d.Name() == "_manifests" {
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return filepath.SkipDir
	})
	slices.Sort(names)
	return names, err
}

// newUploadID returns a random upload session id.
func newUploadID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
