package registry_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/socle-dev/socle/internal/artifact/internal/registrytest"
	"github.com/socle-dev/socle/internal/artifact/registry"
)

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPushPull pushes images and an index with go-containerregistry's
// client, pulls them back by tag and digest, and copies them with crane to a
// second registry.
func TestPushPull(t *testing.T) {
	_, host := registrytest.Serve(t, t.TempDir())
	img, err := random.Image(3000, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, host+"/team/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	d := digestOf(t, img)
	for _, r := range []string{host + "/team/app:v1", host + "/team/app@" + d.String()} {
		got, err := remote.Image(ref(t, r))
		if err != nil {
			t.Fatalf("pulling %s: %v", r, err)
		}
		if digestOf(t, got) != d {
			t.Errorf("%s: digest %s, want %s", r, digestOf(t, got), d)
		}
		layers, err := got.Layers()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := img.Layers()
		for i, l := range layers {
			a, b := readAll(t, l.Compressed), readAll(t, want[i].Compressed)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: layer %d differs", r, i)
			}
		}
	}
	// A second push of the same image uploads nothing and succeeds.
	if err := remote.Write(ref(t, host+"/team/app:v2"), img); err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(ref(t, host+"/team/app").Context())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tags) != "[v1 v2]" {
		t.Errorf("tags %v, want [v1 v2]", tags)
	}

	idx, err := random.Index(1000, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref(t, host+"/team/multi:latest"), idx); err != nil {
		t.Fatal(err)
	}
	gotIdx, err := remote.Index(ref(t, host+"/team/multi:latest"))
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, gotIdx) != digestOf(t, idx) {
		t.Error("index digest changed")
	}

	_, other := registrytest.Serve(t, t.TempDir())
	if err := crane.Copy(host+"/team/app:v1", other+"/mirror/app:v1"); err != nil {
		t.Fatal(err)
	}
	got, err := crane.Digest(other + "/mirror/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got != d.String() {
		t.Errorf("copied digest %s, want %s", got, d)
	}
	repos, err := crane.Catalog(host)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(repos) != "[team/app team/multi]" {
		t.Errorf("catalog %v", repos)
	}
}

func readAll(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSurvivesRestart serves a store, pushes, then serves the same
// directory from a new store and handler.
func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	_, host := registrytest.Serve(t, dir)
	img, err := random.Image(2000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, host+"/apps/web:rel"), img); err != nil {
		t.Fatal(err)
	}
	_, again := registrytest.Serve(t, dir)
	got, err := remote.Image(ref(t, again+"/apps/web:rel"))
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Error("digest changed across restart")
	}
	if _, err := remote.Image(ref(t, again+"/apps/web@"+digestOf(t, img).String())); err != nil {
		t.Error(err)
	}
}

type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path string, body []byte, header ...string) *http.Response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (c client) expect(resp *http.Response, status int, code string) {
	c.t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if code == "" {
		return
	}
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != code {
		c.t.Errorf("%s %s: errors %+v (%v), want code %s", resp.Request.Method, resp.Request.URL.Path, e, err, code)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestProtocol walks the distribution API's endpoints, errors included.
func TestProtocol(t *testing.T) {
	_, host := registrytest.Serve(t, t.TempDir())
	c := client{t, "http://" + host}
	c.expect(c.do("GET", "/v2/", nil), http.StatusOK, "")

	// A chunked upload, with one chunk that does not follow.
	blob := []byte("0123456789abcdef")
	resp := c.do("POST", "/v2/ns/repo/blobs/uploads/", nil)
	c.expect(resp, http.StatusAccepted, "")
	loc := resp.Header.Get("Location")
	c.expect(c.do("PATCH", loc, blob[:10], "Content-Range", "0-9"), http.StatusAccepted, "")
	c.expect(c.do("PATCH", loc, blob[10:], "Content-Range", "12-17"), http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
	resp = c.do("GET", loc, nil)
	c.expect(resp, http.StatusNoContent, "")
	if r := resp.Header.Get("Range"); r != "0-9" {
		t.Errorf("upload status Range %q, want 0-9", r)
	}
	c.expect(c.do("PATCH", loc, blob[10:], "Content-Range", "10-15"), http.StatusAccepted, "")
	c.expect(c.do("PUT", loc+"?digest="+sha([]byte("other")), nil), http.StatusBadRequest, "DIGEST_INVALID")
	c.expect(c.do("PUT", loc+"?digest="+sha(blob), nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN") // a failed PUT ends the session

	resp = c.do("POST", "/v2/ns/repo/blobs/uploads/", nil)
	loc = resp.Header.Get("Location")
	c.expect(c.do("PATCH", loc, blob[:4]), http.StatusAccepted, "")
	c.expect(c.do("PUT", loc+"?digest="+sha(blob), blob[4:]), http.StatusCreated, "")
	resp = c.do("GET", "/v2/ns/repo/blobs/"+sha(blob), nil)
	c.expect(resp, http.StatusOK, "")
	if b, _ := io.ReadAll(resp.Body); !bytes.Equal(b, blob) {
		t.Errorf("blob %q, want %q", b, blob)
	}
	resp = c.do("GET", "/v2/ns/repo/blobs/"+sha(blob), nil, "Range", "bytes=2-5")
	c.expect(resp, http.StatusPartialContent, "")
	if b, _ := io.ReadAll(resp.Body); string(b) != "2345" {
		t.Errorf("range %q, want 2345", b)
	}
	resp = c.do("HEAD", "/v2/ns/repo/blobs/"+sha(blob), nil)
	c.expect(resp, http.StatusOK, "")
	if resp.ContentLength != int64(len(blob)) || resp.Header.Get("Docker-Content-Digest") != sha(blob) {
		t.Errorf("HEAD: length %d digest %q", resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}
	c.expect(c.do("HEAD", "/v2/ns/repo/blobs/"+sha([]byte("nope")), nil), http.StatusNotFound, "")
	c.expect(c.do("DELETE", "/v2/ns/repo/blobs/"+sha(blob), nil), http.StatusMethodNotAllowed, "UNSUPPORTED")

	// Monolithic upload and mount.
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	c.expect(c.do("POST", "/v2/ns/repo/blobs/uploads/?digest="+sha([]byte("x")), cfg), http.StatusBadRequest, "DIGEST_INVALID")
	c.expect(c.do("POST", "/v2/ns/repo/blobs/uploads/?digest="+sha(cfg), cfg), http.StatusCreated, "")
	c.expect(c.do("POST", "/v2/other/blobs/uploads/?mount="+sha(cfg)+"&from=ns/repo", nil), http.StatusCreated, "")

	// Manifests.
	manifest := func(layer string) []byte {
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%d},"layers":[{"mediaType":"%s","digest":"%s","size":16}]}`,
			types.OCIManifestSchema1, types.OCIConfigJSON, sha(cfg), len(cfg), types.OCILayer, layer))
	}
	ct := []string{"Content-Type", string(types.OCIManifestSchema1)}
	c.expect(c.do("PUT", "/v2/ns/repo/manifests/v1", manifest(sha([]byte("missing"))), ct...), http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
	c.expect(c.do("PUT", "/v2/ns/repo/manifests/v1", []byte("{"), ct...), http.StatusBadRequest, "MANIFEST_INVALID")
	m := manifest(sha(blob))
	c.expect(c.do("PUT", "/v2/ns/repo/manifests/"+sha([]byte("x")), m, ct...), http.StatusBadRequest, "DIGEST_INVALID")
	c.expect(c.do("PUT", "/v2/ns/repo/manifests/bad~tag", m, ct...), http.StatusBadRequest, "MANIFEST_INVALID")
	for _, tag := range []string{"v1", "v2", "v3"} {
		resp = c.do("PUT", "/v2/ns/repo/manifests/"+tag, m, ct...)
		c.expect(resp, http.StatusCreated, "")
		if resp.Header.Get("Docker-Content-Digest") != sha(m) {
			t.Errorf("PUT manifest: digest %q, want %s", resp.Header.Get("Docker-Content-Digest"), sha(m))
		}
	}
	for _, r := range []string{"v1", sha(m)} {
		resp = c.do("GET", "/v2/ns/repo/manifests/"+r, nil)
		c.expect(resp, http.StatusOK, "")
		if b, _ := io.ReadAll(resp.Body); !bytes.Equal(b, m) || resp.Header.Get("Content-Type") != string(types.OCIManifestSchema1) {
			t.Errorf("GET manifest %s: %q %q", r, resp.Header.Get("Content-Type"), b)
		}
	}
	c.expect(c.do("GET", "/v2/ns/repo/manifests/v9", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	c.expect(c.do("GET", "/v2/ns/none/manifests/v1", nil), http.StatusNotFound, "NAME_UNKNOWN")
	c.expect(c.do("GET", "/v2/NS/Repo/manifests/v1", nil), http.StatusBadRequest, "NAME_INVALID")
	c.expect(c.do("GET", "/v2/a__-b/manifests/v1", nil), http.StatusBadRequest, "NAME_INVALID")

	// Tags, paginated.
	resp = c.do("GET", "/v2/ns/repo/tags/list?n=2", nil)
	c.expect(resp, http.StatusOK, "")
	var tl struct {
		Name string
		Tags []string
	}
	json.NewDecoder(resp.Body).Decode(&tl)
	if tl.Name != "ns/repo" || fmt.Sprint(tl.Tags) != "[v1 v2]" || !strings.Contains(resp.Header.Get("Link"), "last=v2") {
		t.Errorf("tags page 1: %+v, Link %q", tl, resp.Header.Get("Link"))
	}
	resp = c.do("GET", "/v2/ns/repo/tags/list?n=2&last=v2", nil)
	json.NewDecoder(resp.Body).Decode(&tl)
	if fmt.Sprint(tl.Tags) != "[v3]" || resp.Header.Get("Link") != "" {
		t.Errorf("tags page 2: %+v, Link %q", tl, resp.Header.Get("Link"))
	}

	// Deleting a tag keeps the manifest; deleting the manifest drops its tags.
	c.expect(c.do("DELETE", "/v2/ns/repo/manifests/v3", nil), http.StatusAccepted, "")
	c.expect(c.do("GET", "/v2/ns/repo/manifests/v3", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	c.expect(c.do("HEAD", "/v2/ns/repo/manifests/v1", nil), http.StatusOK, "")
	c.expect(c.do("DELETE", "/v2/ns/repo/manifests/"+sha(m), nil), http.StatusAccepted, "")
	c.expect(c.do("GET", "/v2/ns/repo/manifests/v1", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	resp = c.do("GET", "/v2/ns/repo/tags/list", nil)
	json.NewDecoder(resp.Body).Decode(&tl)
	if len(tl.Tags) != 0 {
		t.Errorf("tags after deleting the manifest: %v", tl.Tags)
	}
	c.expect(c.do("GET", "/v2/ns/repo/referrers/"+sha(m), nil), http.StatusNotFound, "")
}

func TestStoreErrors(t *testing.T) {
	s, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlob(strings.NewReader("abc"), v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}); !errors.Is(err, registry.ErrDigestInvalid) {
		t.Errorf("PutBlob with a wrong digest: %v", err)
	}
	if _, err := s.BlobSize(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Errorf("BlobSize of a blob never stored: %v", err)
	}
	if _, err := s.Tags("nothing/here"); !errors.Is(err, registry.ErrNameUnknown) {
		t.Errorf("Tags of an unknown repository: %v", err)
	}
	if _, err := s.Image(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Errorf("Image never stored: %v", err)
	}
	for _, d := range []string{"sha256:abc", "sha256:" + strings.Repeat("A", 64), "md5:" + strings.Repeat("0", 32), strings.Repeat("0", 64), "sha512:", ":abc", "SHA512:abc"} {
		_, err := registry.ParseDigest(d)
		if !errors.Is(err, registry.ErrDigestInvalid) {
			t.Errorf("ParseDigest(%q): %v", d, err)
		}
		if unsupported := strings.HasPrefix(d, "md5:"); errors.Is(err, registry.ErrDigestUnsupported) != unsupported {
			t.Errorf("ParseDigest(%q) = %v: unsupported should be %v", d, err, unsupported)
		}
	}
	if _, err := registry.ParseDigest("sha512:" + strings.Repeat("0", 128)); !errors.Is(err, registry.ErrDigestUnsupported) {
		t.Errorf("ParseDigest of a sha512 digest: %v", err)
	}
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.WriteImage("a/b", "t", img)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != h {
		t.Error("Image returns another image")
	}
}

// TestUnsupportedDigests: a well-formed digest of another algorithm than
// sha256 is content the registry does not hold (404 on reads, as the
// distribution spec's conformance suite expects) and cannot store (400 that
// says why on writes); a malformed one is DIGEST_INVALID everywhere.
func TestUnsupportedDigests(t *testing.T) {
	_, host := registrytest.Serve(t, t.TempDir())
	c := client{t, "http://" + host}
	blob := []byte("{}")
	c.expect(c.do("POST", "/v2/ns/repo/blobs/uploads/?digest="+sha(blob), blob), http.StatusCreated, "")
	s512 := sha512.Sum512(blob)
	d512 := "sha512:" + hex.EncodeToString(s512[:])
	for _, tc := range []struct {
		method, path string
		status       int
		code, says   string
	}{
		{"GET", "/v2/ns/repo/blobs/" + d512, http.StatusNotFound, "BLOB_UNKNOWN", "sha256 digest only"},
		{"HEAD", "/v2/ns/repo/blobs/" + d512, http.StatusNotFound, "", ""},
		{"GET", "/v2/ns/repo/manifests/" + d512, http.StatusNotFound, "MANIFEST_UNKNOWN", "sha256 digest only"},
		{"HEAD", "/v2/ns/repo/manifests/" + d512, http.StatusNotFound, "", ""},
		{"DELETE", "/v2/ns/repo/manifests/" + d512, http.StatusNotFound, "MANIFEST_UNKNOWN", ""},
		{"POST", "/v2/ns/repo/blobs/uploads/?digest=" + d512, http.StatusBadRequest, "DIGEST_INVALID", "unsupported digest algorithm sha512"},
		{"PUT", "/v2/ns/repo/manifests/" + d512, http.StatusBadRequest, "DIGEST_INVALID", "unsupported digest algorithm sha512"},
		{"GET", "/v2/ns/repo/blobs/sha256:abc", http.StatusBadRequest, "DIGEST_INVALID", "is not a sha256 digest"},
		{"GET", "/v2/ns/repo/manifests/sha256:abc", http.StatusBadRequest, "DIGEST_INVALID", "is not a sha256 digest"},
	} {
		t.Run(tc.method+" "+tc.path[:min(len(tc.path), 40)], func(t *testing.T) {
			c := client{t, "http://" + host}
			resp := c.do(tc.method, tc.path, blob, "Content-Type", string(types.OCIManifestSchema1))
			if tc.code == "" {
				c.expect(resp, tc.status, "")
				return
			}
			b, _ := io.ReadAll(resp.Body)
			var e struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if resp.StatusCode != tc.status || json.Unmarshal(b, &e) != nil || len(e.Errors) != 1 || e.Errors[0].Code != tc.code || !strings.Contains(e.Errors[0].Message, tc.says) {
				t.Errorf("%s %s: %d %s; want %d, code %s saying %q", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.code, tc.says)
			}
		})
	}
	// The sha256 content is still served after all of that.
	c.expect(c.do("GET", "/v2/ns/repo/blobs/"+sha(blob), nil), http.StatusOK, "")
}
