// Package apitest checks, in tests, every request sent to socle's API and
// every answer received against the OpenAPI document the server serves:
// the request's body against its operation's request schema, the answer's
// status against the statuses the operation lists, and a JSON answer
// against the schema of that status, with a JSON Schema 2020-12 validator
// (the contract of api.LoadContract). A test that passes while the code
// answers something the document does not say fails here instead, so the
// document cannot drift from the code.
//
// Install it once in a test binary's TestMain, then Watch each server a
// test starts: every request through http.DefaultClient (http.Get,
// client.New without an HTTP client of its own) to that server is checked,
// and a violation fails the test that watches it. Transport wraps any other
// client's transport.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	js "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/socle-dev/socle/internal/api"
)

// maxChecked bounds what is read of a body to check it: answers larger
// than this are checked for their status and content type only.
const maxChecked = 8 << 20

type uncheckedKey struct{}

// Unchecked marks a request a test sends wrong on purpose (an unknown
// field, a wrong type): its body is not checked. Its answer still is.
func Unchecked(ctx context.Context) context.Context {
	return context.WithValue(ctx, uncheckedKey{}, true)
}

var (
	watchMu   sync.Mutex
	watched   = map[string]testing.TB{} // by host:port
	installed bool
)

// Install makes http.DefaultClient check the requests to watched servers.
// Call it from TestMain, before any test runs: changing the client while
// tests use it would race.
func Install() {
	watchMu.Lock()
	defer watchMu.Unlock()
	if !installed {
		http.DefaultClient.Transport = Watching(http.DefaultTransport)
		installed = true
	}
}

// Watching returns next (nil: http.DefaultTransport) checking the requests
// to watched servers, for a client of a test's own.
func Watching(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next, report: watcher}
}

// watcher returns how to fail the test watching the host of a request
// (nil: none watches it).
func watcher(req *http.Request) func(string, ...any) {
	watchMu.Lock()
	defer watchMu.Unlock()
	if t := watched[req.URL.Host]; t != nil {
		return t.Errorf
	}
	return nil
}

// Watch checks every request to base (http://host:port) made through
// http.DefaultClient (once Install was called) or a Watching transport
// until t ends, failing t on a violation.
func Watch(t testing.TB, base string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	watchMu.Lock()
	defer watchMu.Unlock()
	watched[u.Host] = t
	t.Cleanup(func() {
		watchMu.Lock()
		delete(watched, u.Host)
		watchMu.Unlock()
	})
}

// Transport returns next checking every request and answer to t.
func Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next, report: func(*http.Request) func(string, ...any) { return t.Errorf }}
}

type transport struct {
	next http.RoundTripper
	// report returns how to report a violation of a request (nil: the
	// request is not checked).
	report func(*http.Request) func(format string, args ...any)
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	errorf := tr.report(req)
	if errorf == nil {
		return tr.next.RoundTrip(req)
	}
	c, err := api.LoadContract()
	if err != nil {
		errorf("apitest: %v", err)
		return tr.next.RoundTrip(req)
	}
	op, ok := find(c, req.Method, req.URL.Path)
	if !ok {
		return tr.next.RoundTrip(req) // the portal, the registry: not the API
	}
	what := req.Method + " " + req.URL.Path
	if req.Body != nil && req.Context().Value(uncheckedKey{}) == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		if err := op.checkRequest(c, req.Header.Get("Content-Type"), b); err != nil {
			errorf("contract: the request %s does not match the OpenAPI document: %v\nbody: %s", what, err, excerpt(b))
		}
	}
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	var b []byte
	if mt == "application/json" {
		b, err = io.ReadAll(io.LimitReader(resp.Body, maxChecked+1))
		rest := resp.Body
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), rest), rest}
		if err != nil {
			return resp, err
		}
		if len(b) > maxChecked {
			b = nil
		}
	}
	if err := op.checkResponse(c, resp.StatusCode, mt, b); err != nil {
		errorf("contract: the answer to %s does not match the OpenAPI document: %v\nbody: %s", what, err, excerpt(b))
	}
	return resp, nil
}

func excerpt(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// operation is a documented operation: its place in the document.
type operation struct {
	path, method string
	doc          map[string]any
}

var routers sync.Map // *api.Contract → *http.ServeMux

// find returns the operation of the document that serves method path, as
// the server's mux would route it.
func find(c *api.Contract, method, path string) (operation, bool) {
	v, ok := routers.Load(c)
	if !ok {
		mux := http.NewServeMux()
		paths, _ := c.Document()["paths"].(map[string]any)
		for p, item := range paths {
			for m := range item.(map[string]any) {
				mux.Handle(strings.ToUpper(m)+" "+p, http.NotFoundHandler())
			}
		}
		v, _ = routers.LoadOrStore(c, mux)
	}
	_, pattern := v.(*http.ServeMux).Handler(&http.Request{Method: method, URL: &url.URL{Path: path}, Host: "socle"})
	m, p, ok := strings.Cut(pattern, " ")
	if !ok {
		return operation{}, false
	}
	paths := c.Document()["paths"].(map[string]any)
	doc, _ := paths[p].(map[string]any)[strings.ToLower(m)].(map[string]any)
	return operation{path: p, method: strings.ToLower(m), doc: doc}, doc != nil
}

func (op operation) checkRequest(c *api.Contract, contentType string, body []byte) error {
	rb, _ := op.doc["requestBody"].(map[string]any)
	if rb == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil // a body-less request, or a body the operation ignores (a git host's webhook payload)
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt = "application/json" // what the server reads a body without a type as (curl -d sends none it means)
	}
	content, _ := rb["content"].(map[string]any)
	if _, ok := content[mt]; !ok {
		return fmt.Errorf("content type %q is not one the document lists (%s)", contentType, keys(content))
	}
	if mt != "application/json" {
		return nil
	}
	return validate(c, api.Pointer("paths", op.path, op.method, "requestBody", "content", mt, "schema"), body)
}

func (op operation) checkResponse(c *api.Contract, status int, mt string, body []byte) error {
	responses, _ := op.doc["responses"].(map[string]any)
	code := strconv.Itoa(status)
	r, ok := responses[code].(map[string]any)
	if !ok {
		return fmt.Errorf("status %d is not one the document lists (%s)", status, keys(responses))
	}
	pointer := api.Pointer("paths", op.path, op.method, "responses", code)
	if ref, ok := r["$ref"].(string); ok { // #/components/responses/Error
		pointer = strings.TrimPrefix(ref, "#")
		r = resolve(c.Document(), pointer)
	}
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		return nil // 202 with no content described, 304
	}
	if _, ok := content[mt]; !ok {
		return fmt.Errorf("status %d with content type %q, which the document does not list (%s)", status, mt, keys(content))
	}
	if mt != "application/json" || body == nil {
		return nil
	}
	return validate(c, pointer+api.Pointer("content", mt, "schema"), body)
}

func validate(c *api.Contract, pointer string, body []byte) error {
	s, err := c.Schema(pointer)
	if err != nil {
		return err
	}
	v, err := js.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(v)
}

// resolve returns the object at a JSON pointer of doc.
func resolve(doc map[string]any, pointer string) map[string]any {
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		cur, _ = cur[tok].(map[string]any)
	}
	return cur
}

func keys(m map[string]any) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
