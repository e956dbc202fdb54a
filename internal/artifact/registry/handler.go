package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/socle-dev/socle/internal/artifact/internal/keylock"
)

// Handler serves a Store with the OCI distribution API (pull, push, content
// discovery; no referrers API, so clients use the tag schema) under /v2/.
// Mount it at /v2/ of a mux. It does no authentication: whoever can reach it
// can push.
type Handler struct {
	s   *Store
	log *slog.Logger

	uploads keylock.Map // serialises the requests of one upload session
}

// NewHandler returns the HTTP handler of s. log receives server-side errors.
func NewHandler(s *Store, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{s: s, log: log}
}

var uploadIDRE = regexp.MustCompile(`^[a-f0-9]{32}$`)

// apiError is an error of the distribution API.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// classify maps the store's errors to the distribution API's codes.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{ErrBlobUnknown, http.StatusNotFound, "BLOB_UNKNOWN"},
		{ErrManifestUnknown, http.StatusNotFound, "MANIFEST_UNKNOWN"},
		{ErrNameUnknown, http.StatusNotFound, "NAME_UNKNOWN"},
		{ErrNameInvalid, http.StatusBadRequest, "NAME_INVALID"},
		{ErrTagInvalid, http.StatusBadRequest, "MANIFEST_INVALID"},
		{ErrDigestInvalid, http.StatusBadRequest, "DIGEST_INVALID"},
		{ErrManifestInvalid, http.StatusBadRequest, "MANIFEST_INVALID"},
		{ErrManifestBlobUnknown, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN"},
		{ErrUploadUnknown, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
	} {
		if errors.Is(err, c.err) {
			return &apiError{c.status, c.code, err.Error()}
		}
	}
	return nil
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	if ae == nil {
		h.log.Error("registry request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{http.StatusInternalServerError, "UNKNOWN", "internal error"}
	}
	WriteError(w, r, ae.status, ae.code, ae.message, nil)
}

// Error codes of the distribution spec that the server's access checks
// answer with, in front of the handler.
const (
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeDenied          = "DENIED"
	CodeNameUnknown     = "NAME_UNKNOWN"
	CodeTooManyRequests = "TOOMANYREQUESTS"
	CodeUnknown         = "UNKNOWN"
)

// WriteError answers with an error of the distribution spec: status, and
// the body {"errors":[{"code","message","detail"}]} that registry clients
// read and show (detail is left out when nil). It is exported so that what
// guards the registry (authentication, roles) answers in the same shape.
func WriteError(w http.ResponseWriter, r *http.Request, status int, code, message string, detail any) {
	type apiErr struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	body, _ := json.Marshal(map[string][]apiErr{"errors": {{code, message, detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

var errUnsupported = &apiError{http.StatusMethodNotAllowed, "UNSUPPORTED", "the operation is unsupported"}

func notFound(path string) error {
	return &apiError{http.StatusNotFound, "NOT_FOUND", "no such endpoint: " + path}
}

// ServeHTTP routes a request of the distribution API. Names hold slashes, so
// the route is read from the end of the path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		if r.URL.Path == "/v2" {
			p, ok = "", true
		} else {
			h.fail(w, r, notFound(r.URL.Path))
			return
		}
	}
	var err error
	switch {
	case p == "":
		err = h.base(w, r)
	case p == "_catalog":
		err = h.catalog(w, r)
	default:
		err = h.route(w, r, p)
	}
	if err != nil {
		h.fail(w, r, err)
	}
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request, p string) error {
	if name, ok := strings.CutSuffix(p, "/tags/list"); ok {
		return h.withName(name, func() error { return h.tags(w, r, name) })
	}
	if name, ok := strings.CutSuffix(strings.TrimSuffix(p, "/"), "/blobs/uploads"); ok {
		return h.withName(name, func() error { return h.startUpload(w, r, name) })
	}
	rest, last, ok := cutLast(p)
	if !ok {
		return notFound(r.URL.Path)
	}
	name, kind, ok := cutLast(rest)
	if !ok {
		return notFound(r.URL.Path)
	}
	switch kind {
	case "manifests":
		return h.withName(name, func() error { return h.manifest(w, r, name, last) })
	case "blobs":
		return h.withName(name, func() error { return h.blob(w, r, name, last) })
	case "uploads":
		if name, ok := strings.CutSuffix(name, "/blobs"); ok {
			return h.withName(name, func() error { return h.upload(w, r, name, last) })
		}
	}
	return notFound(r.URL.Path)
}

func cutLast(p string) (string, string, bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", "", false
	}
	return p[:i], p[i+1:], true
}

func (h *Handler) withName(name string, serve func() error) error {
	if err := CheckName(name); err != nil {
		return err
	}
	return serve()
}

func (h *Handler) base(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errUnsupported
	}
	writeJSON(w, r, http.StatusOK, struct{}{})
	return nil
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// paginate applies the n and last parameters of tag and catalog listings,
// and sets the Link header when more remain.
func paginate(w http.ResponseWriter, r *http.Request, all []string) ([]string, error) {
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := 0
		for i < len(all) && all[i] <= last {
			i++
		}
		all = all[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return nil, &apiError{http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "n must be a number"}
		}
		if n < len(all) {
			all = all[:n]
			if n > 0 {
				next := url.Values{"n": {ns}, "last": {all[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
			}
		}
	}
	return all, nil
}

func (h *Handler) catalog(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return errUnsupported
	}
	names, err := h.s.Repositories()
	if err != nil {
		return err
	}
	if names, err = paginate(w, r, names); err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string][]string{"repositories": append([]string{}, names...)})
	return nil
}

func (h *Handler) tags(w http.ResponseWriter, r *http.Request, name string) error {
	if r.Method != http.MethodGet {
		return errUnsupported
	}
	tags, err := h.s.Tags(name)
	if err != nil {
		return err
	}
	if tags, err = paginate(w, r, tags); err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, append([]string{}, tags...)})
	return nil
}

func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		raw, mt, d, err := h.s.Manifest(name, ref)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", string(mt))
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		w.Header().Set("ETag", `"`+d.String()+`"`)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(raw)
		}
		return nil
	case http.MethodPut:
		raw, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestSize+1))
		if err != nil {
			return err
		}
		ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
		d, err := h.s.PutManifest(name, ref, types.MediaType(strings.TrimSpace(ct)), raw)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/v2/"+name+"/manifests/"+d.String())
		w.Header().Set("Docker-Content-Digest", d.String())
		w.WriteHeader(http.StatusCreated)
		return nil
	case http.MethodDelete:
		if err := h.s.DeleteManifest(name, ref); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	return errUnsupported
}

func (h *Handler) blob(w http.ResponseWriter, r *http.Request, name, digest string) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errUnsupported // blobs are shared by repositories: never deleted one by one
	}
	d, err := ParseDigest(digest)
	if errors.Is(err, ErrDigestUnsupported) {
		// Well formed, so possibly some registry's blob: just not one this
		// store can hold.
		return fmt.Errorf("%w: %s: socle's registry keeps blobs by sha256 digest only", ErrBlobUnknown, digest)
	}
	if err != nil {
		return err
	}
	f, err := h.s.OpenBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("ETag", `"`+d.String()+`"`)
	w.Header().Set("Cache-Control", "max-age=31536000, immutable")
	// ServeContent answers HEAD and Range requests.
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// startUpload begins a blob upload: a mount from another repository, a
// monolithic upload (POST with ?digest=) or a session for PATCH and PUT.
func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, name string) error {
	if r.Method != http.MethodPost {
		return errUnsupported
	}
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		// Blobs are shared, so a mount succeeds whenever the blob is here.
		if d, err := ParseDigest(m); err == nil {
			if _, err := h.s.BlobSize(d); err == nil {
				return created(w, name, d)
			}
		}
	} else if dg := q.Get("digest"); dg != "" {
		d, err := ParseDigest(dg)
		if err != nil {
			return err
		}
		if _, err := h.s.PutBlob(r.Body, d); err != nil {
			return err
		}
		return created(w, name, d)
	}
	id := newUploadID()
	f, err := os.OpenFile(h.s.path("uploads", id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return uploadStatus(w, name, id, 0, http.StatusAccepted)
}

func created(w http.ResponseWriter, name string, d v1.Hash) error {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func uploadStatus(w http.ResponseWriter, name, id string, size int64, status int) error {
	w.Header().Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

// upload continues (PATCH), completes (PUT), reports (GET) or cancels
// (DELETE) an upload session.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request, name, id string) error {
	if !uploadIDRE.MatchString(id) {
		return fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	defer h.uploads.Lock(id)()
	file := h.s.path("uploads", id)
	info, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrUploadUnknown, id)
	}
	if err != nil {
		return err
	}
	size := info.Size()
	switch r.Method {
	case http.MethodGet:
		return uploadStatus(w, name, id, size, http.StatusNoContent)
	case http.MethodDelete:
		if err := os.Remove(file); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch, http.MethodPut:
	default:
		return errUnsupported
	}
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, err := rangeStart(cr)
		if err != nil {
			return err
		}
		if start != size {
			w.Header().Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
			w.Header().Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
			return &apiError{http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID",
				fmt.Sprintf("chunk starts at %d, upload holds %d bytes", start, size)}
		}
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	size += n
	if r.Method == http.MethodPatch {
		return uploadStatus(w, name, id, size, http.StatusAccepted)
	}
	d, err := ParseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	err = h.s.commitBlob(file, d)
	os.Remove(file)
	if err != nil {
		return err
	}
	return created(w, name, d)
}

// rangeStart reads the start of a Content-Range: "<start>-<end>", or the
// "bytes <start>-<end>/<size>" form that some clients send.
func rangeStart(cr string) (int64, error) {
	s := strings.TrimPrefix(strings.TrimSpace(cr), "bytes ")
	s, _, _ = strings.Cut(s, "/")
	start, end, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseInt(start, 10, 64)
	b, err2 := strconv.ParseInt(end, 10, 64)
	if !ok || err1 != nil || err2 != nil || b < a {
		return 0, &apiError{http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "bad Content-Range " + strconv.Quote(cr)}
	}
	return a, nil
}
