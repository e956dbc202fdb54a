package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The proxy frames HTTP/1.1 by hand on its way to backends (writeRequest,
// answer.go), which is where request smuggling lives: a front and a back
// that disagree on where a request ends let a client hide a second request
// in the body of the first. The differential test feeds the same raw bytes
// to socle's proxy and to net/http's server with httputil.ReverseProxy (the
// reference: what kamal-proxy and most Go proxies are), each in front of a
// raw backend that records every request it parses, and requires the same
// verdict: the same requests reach the backend (method, target, body), one
// for one, or none.

// smuggleHost is the host the route answers on.
const smuggleHost = "web.dev.localhost"

// recorder is a raw HTTP/1.1 backend: it parses requests with
// http.ReadRequest, as a Go app would, records each whose body it read
// whole, and answers 200 "ok". Health checks (GET /healthz) are answered
// and not recorded.
type recorder struct {
	l     net.Listener
	mu    sync.Mutex
	got   []string
	conns []net.Conn
	wg    sync.WaitGroup
}

func startRecorder(t testing.TB) *recorder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{l: l}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *recorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		if req.URL.Path != "/healthz" {
			// The target as the app sees it: net/http's proxy re-encodes
			// it ("*" becomes "/%2A"), socle's passes it as it came.
			target := req.URL.Path
			if req.RequestURI == "*" {
				target = "/*"
			}
			if req.URL.RawQuery != "" {
				target += "?" + req.URL.RawQuery
			}
			r.mu.Lock()
			r.got = append(r.got, fmt.Sprintf("%s %s %q", req.Method, target, body))
			r.mu.Unlock()
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

// take returns the requests recorded since the last call.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// differential is socle's proxy and the reference, each before a recorder.
type differential struct {
	socle, ref       string // addresses of the fronts
	socleRec, refRec *recorder
	mu               sync.Mutex // one input at a time: the recorders are shared
}

func newDifferential(t testing.TB) *differential {
	t.Helper()
	d := &differential{socleRec: startRecorder(t), refRec: startRecorder(t)}

	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.SetRoute(ctx, Route{Name: "web.dev", Backends: []Backend{{ID: "r", Addr: d.socleRec.l.Addr().String(), Weight: 1, Version: "v1"}}, Health: HealthCheck{Path: "/healthz"}}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(sctx, l) }()
	t.Cleanup(func() { stop(); <-done })
	d.socle = l.Addr().String()

	target := &url.URL{Scheme: "http", Host: d.refRec.l.Addr().String()}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host },
		Transport: tr,
		ErrorLog:  discardLog(),
	}
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The route: one host, as socle's proxy.
			if name, _, _ := strings.Cut(r.Host, ":"); !strings.EqualFold(strings.TrimSuffix(name, "."), smuggleHost) {
				http.NotFound(w, r)
				return
			}
			// A client that closed its side (as verdict does) still gets
			// its answer: net/http would otherwise cancel the request
			// when its background read sees the end of the input (through
			// the context, or CloseNotify, which the wrapper hides).
			rp.ServeHTTP(struct{ http.ResponseWriter }{w}, r.WithContext(context.WithoutCancel(r.Context())))
		}),
		MaxHeaderBytes: maxHeadBytes - 4096, // net/http allows 4 KiB more
		ErrorLog:       discardLog(),
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(rl)
	t.Cleanup(func() { srv.Close() })
	d.ref = rl.Addr().String()
	return d
}

// verdict sends raw to the front at addr on a connection of its own, closes
// its side, reads until the front closes, and returns what rec recorded and
// what the front answered.
func verdict(t testing.TB, addr string, rec *recorder, raw []byte) ([]string, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A bound, not a synchronisation: a front that neither answers nor
	// closes fails the input.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(raw); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("writing to %s: %v", addr, err)
	}
	c.(*net.TCPConn).CloseWrite()
	answers, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("reading from %s: %v", addr, err)
	}
	return rec.take(), answers
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (strings.Contains(op.Err.Error(), "reset") || strings.Contains(op.Err.Error(), "broken pipe"))
}

// check feeds raw to both fronts and compares what their backends got.
func (d *differential) check(t testing.TB, raw []byte) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	got, answers := verdict(t, d.socle, d.socleRec, raw)
	want, _ := verdict(t, d.ref, d.refRec, raw)
	if slices.Equal(got, want) {
		return
	}
	// Stricter is not smuggling: socle may refuse a request that net/http
	// lets through (it then closes the connection, and what followed on
	// it is not read), never forward one that net/http does not.
	if len(got) < len(want) && slices.Equal(got, want[:len(got)]) && refused(answers) {
		t.Logf("input %q: socle refused what net/http forwarded as %q", raw, want[len(got):])
		return
	}
	t.Errorf("input %q:\nsocle's backend got %q\nnet/http's got      %q\nsocle answered %q", raw, got, want, answers)
}

// refused reports whether socle's last answer on a connection is a
// refusal of its own that closed it.
func refused(answers []byte) bool {
	i := bytes.LastIndex(answers, []byte("HTTP/1.1 "))
	if i < 0 || len(answers)-i < 12 {
		return false
	}
	last := answers[i:]
	status := last[9]
	return (status == '4' || status == '5') &&
		bytes.Contains(last, []byte("Connection: close\r\n")) &&
		bytes.Contains(last, []byte("\r\n\r\nsocle: "))
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// smuggleInputs are the raw requests of the differential test and the
// fuzzer's seeds: framing that proxies and servers have disagreed on.
func smuggleInputs() map[string]string {
	h := "Host: " + smuggleHost + "\r\n"
	big := strings.Repeat("a", maxHeadBytes)
	return map[string]string{
		"get":                   "GET / HTTP/1.1\r\n" + h + "\r\n",
		"post length":           "POST /p HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhello",
		"post chunked":          "POST /p HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"CL.TE":                 "POST / HTTP/1.1\r\n" + h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"TE.CL":                 "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
		"two lengths":           "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"same two lengths":      "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"length list":           "POST / HTTP/1.1\r\n" + h + "Content-Length: 5, 5\r\n\r\nhello",
		"length plus":           "POST / HTTP/1.1\r\n" + h + "Content-Length: +5\r\n\r\nhello",
		"length zeros":          "POST / HTTP/1.1\r\n" + h + "Content-Length: 005\r\n\r\nhello",
		"length negative":       "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\nhello",
		"length hex":            "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x5\r\n\r\nhello",
		"length huge":           "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999\r\n\r\nhello",
		"TE xchunked":           "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"TE chunked identity":   "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"TE identity chunked":   "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"TE gzip chunked":       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"TE twice":              "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"TE case":               "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"TE space before colon": "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
		"TE tab":                "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"TE obs-fold":           "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello",
		"TE on HTTP/1.0":        "POST / HTTP/1.0\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"obs-fold":              "GET / HTTP/1.1\r\n" + h + "X-A: a\r\n b\r\n\r\n",
		"bare LF":               "GET /lf HTTP/1.1\n" + h[:len(h)-2] + "\n\n",
		"bare CR in value":      "GET / HTTP/1.1\r\n" + h + "X-A: a\rb\r\n\r\n",
		"NUL in value":          "GET / HTTP/1.1\r\n" + h + "X-A: a\x00b\r\n\r\n",
		"space in name":         "GET / HTTP/1.1\r\n" + h + "X A: b\r\n\r\n",
		"empty name":            "GET / HTTP/1.1\r\n" + h + ": b\r\n\r\n",
		"chunk overflow":        "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
		"chunk negative":        "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
		"chunk extension":       "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
		"chunk size space":      "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
		"chunk LF only":         "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
		"chunk too long":        "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
		"chunk trailer length":  "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n",
		"chunk unterminated":    "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		"body short":            "POST / HTTP/1.1\r\n" + h + "Content-Length: 10\r\n\r\nhello",
		"pipelined":             "GET /1 HTTP/1.1\r\n" + h + "\r\nGET /2 HTTP/1.1\r\n" + h + "\r\n",
		"pipelined bodies":      "POST /1 HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhelloPOST /2 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /3 HTTP/1.1\r\n" + h + "\r\n",
		"body hides request":    "POST /1 HTTP/1.1\r\n" + h + "Content-Length: 39\r\n\r\nGET /hidden HTTP/1.1\r\n" + h + "\r\n",
		"pipelined after close": "GET /1 HTTP/1.1\r\n" + h + "Connection: close\r\n\r\nGET /2 HTTP/1.1\r\n" + h + "\r\n",
		"HTTP/0.9":              "GET /\r\n\r\n",
		"HTTP/2 line":           "GET / HTTP/2.0\r\n" + h + "\r\n",
		"HTTP/1.1 junk":         "GET / HTTP/1.1 x\r\n" + h + "\r\n",
		"lower proto":           "GET / http/1.1\r\n" + h + "\r\n",
		"two hosts":             "GET / HTTP/1.1\r\n" + h + h + "\r\n",
		"no host":               "GET / HTTP/1.1\r\n\r\n",
		"no host 1.0":           "GET /old HTTP/1.0\r\n\r\n",
		"bad host":              "GET / HTTP/1.1\r\nHost: web.dev.localhost/x\r\n\r\n",
		"absolute target":       "GET http://" + smuggleHost + "/abs HTTP/1.1\r\n" + h + "\r\n",
		"absolute without host": "GET http://" + smuggleHost + "/abs HTTP/1.1\r\n\r\n",
		"empty host pipelined":  "OPTIONS * HTTP/1.1\r\nHost:\r\n\r\nGET /2 HTTP/1.1\r\n" + h + "\r\n",
		"asterisk":              "OPTIONS * HTTP/1.1\r\n" + h + "\r\n",
		// Found by the fuzzer: socle answered 404 (no such host), skipped
		// the malformed chunked body, kept the connection and forwarded
		// what followed.
		"bad chunk after 404": "POST / HTTP/1.1\r\nHost: other.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /hidden HTTP/1.1\r\n" + h + "\r\n",
		"absolute other host": "GET http://other.localhost/abs HTTP/1.1\r\n" + h + "\r\n",
		"space in target":     "GET /a b HTTP/1.1\r\n" + h + "\r\n",
		"head too large":      "GET / HTTP/1.1\r\n" + h + "X-Big: " + big + "\r\n\r\n",
		"expect continue":     "POST / HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
		"connection names CL": "POST / HTTP/1.1\r\n" + h + "Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
		"upgrade h2c":         "GET / HTTP/1.1\r\n" + h + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
	}
}

// TestSmugglingDifferential: for each input the requests that reach the
// backend through socle's proxy are those that reach it through net/http.
func TestSmugglingDifferential(t *testing.T) {
	d := newDifferential(t)
	inputs := smuggleInputs()
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		names = append(names, name)
	}
	slices.Sort(names)
	forwarded := 0
	for _, name := range names {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			d.check(t, []byte(inputs[name]))
		})
	}
	// The test can tell: a plain GET reaches both backends.
	d.mu.Lock()
	got, _ := verdict(t, d.socle, d.socleRec, []byte(inputs["get"]))
	forwarded = len(got)
	d.mu.Unlock()
	if forwarded != 1 {
		t.Errorf("a plain GET reached socle's backend %d times", forwarded)
	}
}

// FuzzSmuggling runs the differential test on mutated inputs.
func FuzzSmuggling(f *testing.F) {
	for _, raw := range smuggleInputs() {
		if len(raw) < 4096 {
			f.Add([]byte(raw))
		}
	}
	d := newDifferential(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			return
		}
		d.check(t, raw)
	})
}
