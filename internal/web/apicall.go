package web

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
)

// apiFor returns a client of the API that acts as the holder of token and
// calls the API handler in the same process: the portal sees exactly what
// the API lets that user see, and has no back door of its own.
func (p *portal) apiFor(r *http.Request, token string) *client.Client {
	return &client.Client{BaseURL: "http://" + r.Host, Token: token, HTTP: &http.Client{Transport: inProcess{h: p.cfg.API, from: r}}}
}

// inProcess serves a client's requests with the API handler. The client
// address of the page request goes with each call, so that the API's
// rate limit on failed tokens counts each browser, not the portal as one.
type inProcess struct {
	h    http.Handler
	from *http.Request
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not change the request
	req.RemoteAddr, req.RequestURI = t.from.RemoteAddr, req.URL.RequestURI()
	if req.Body == nil {
		req.Body = http.NoBody
	}
	w := &response{header: http.Header{}}
	t.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{StatusCode: w.status, Status: strconv.Itoa(w.status) + " " + http.StatusText(w.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req}, nil
}

// response is an in-memory http.ResponseWriter.
type response struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *response) Header() http.Header { return r.header }
func (r *response) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *response) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// Flush lets streaming handlers flush; the answer is read when they return.
func (r *response) Flush() {}

// pageError is an error of the portal's own, answered like an API error.
func pageError(status int, msg string) error {
	return &client.Error{Status: status, ErrorBody: api.ErrorBody{Message: msg}}
}

// statusOf is the HTTP status a page answers for err: the API's.
func statusOf(err error) int {
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusInternalServerError
}

// isStatus reports whether err is an API answer with that status.
func isStatus(err error, status int) bool { return statusOf(err) == status }

// nonEmpty drops the empty values of q, so that an unset filter is absent
// rather than empty.
func nonEmpty(q url.Values) url.Values {
	out := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			if v != "" {
				out.Add(k, v)
			}
		}
	}
	return out
}

// pathEscape escapes one path segment of an API route.
func pathEscape(s string) string { return url.PathEscape(s) }

// sseData returns the data lines of a text/event-stream body, or the body's
// lines when it is plain text.
func sseData(contentType string, body []byte) []string {
	if len(body) == 0 {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(body), "\n"), "\n")
	if !strings.HasPrefix(contentType, "text/event-stream") {
		return lines
	}
	var out []string
	for _, l := range lines {
		if d, ok := strings.CutPrefix(l, "data:"); ok {
			out = append(out, strings.TrimPrefix(d, " "))
		}
	}
	return out
}
