package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// HTTP/2 over TLS is served by net/http's server, not by the hand-written
// loop: HTTP/2's framing, flow control and HPACK are net/http's to get
// right. Its handler does what the loop does for one request (route by
// host, request ID, X-Forwarded-*, body limit, pick a healthy backend in
// weighted order, try another when that is safe, count the request on the
// backend so that a change of route drains it, access log), and forwards
// with httputil.ReverseProxy over HTTP/1.1 to the backend.

// h2Server serves the HTTP/2 connections of one ServeTLS.
type h2Server struct {
	srv  *http.Server
	ln   *connQueue
	done chan struct{} // closed when shut down
	once sync.Once
}

func newH2Server(p *Proxy, addr net.Addr) *h2Server {
	h := &h2Server{ln: &connQueue{conns: make(chan net.Conn), closed: make(chan struct{}), addr: addr}, done: make(chan struct{})}
	var protos http.Protocols
	protos.SetHTTP2(true)
	h.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP2),
		Protocols:         &protos,
		ReadHeaderTimeout: headTimeout,
		IdleTimeout:       headTimeout,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	go h.srv.Serve(h.ln)
	return h
}

// give hands a TLS connection that negotiated h2 to the HTTP/2 server; it
// reports false if the server has shut down.
func (h *h2Server) give(c net.Conn) bool {
	select {
	case h.ln.conns <- c:
		return true
	case <-h.ln.closed:
		return false
	}
}

// shutdown tells the HTTP/2 clients to go away (GOAWAY), waits up to
// shutdownGrace for their streams, then closes what is left.
func (h *h2Server) shutdown() {
	h.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if h.srv.Shutdown(ctx) != nil {
			h.srv.Close()
		}
		close(h.done)
	})
}

// connQueue is a net.Listener whose connections are given to it.
type connQueue struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// h2Request is one HTTP/2 request's state, shared by the handler and the
// transport's attempts.
type h2Request struct {
	name     string
	entry    *routeEntry
	body     requestBody
	length   int64 // of body, when streamed
	fw       forwarded
	id       requestID
	backend  string // the ID of the backend that answered
	status   int
	attempts int
}

type h2Key struct{}

// serveHTTP2 answers one HTTP/2 request, as [Proxy.handle] does for
// HTTP/1.x.
func (p *Proxy) serveHTTP2(w http.ResponseWriter, r *http.Request) {
	var begin time.Time
	if p.edge.accessLog != nil {
		begin = time.Now()
	}
	ip := clientIP(r.RemoteAddr)
	id := p.edge.requestID(r)
	fw := p.edge.forwardedFrom(ip, true, p.edge.isTrusted(ip), r)
	t := p.table.Load()
	name, e := p.lookup(t, r, p.edge.isTrusted(ip))
	text := func(status int, msg string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, msg)
	}
	if e == nil {
		p.metrics.unknown.Inc()
		p.edge.logAccess(r, id, fw, name, "", http.StatusNotFound, 0, begin)
		text(http.StatusNotFound, fmt.Sprintf("socle: no app is served on %q\n", r.Host))
		return
	}
	if pg := t.pausedFor(e.config.Name); pg != nil {
		p.metrics.paused.WithLabelValues(e.config.Name).Inc()
		p.edge.logAccess(r, id, fw, name, "", http.StatusServiceUnavailable, 0, begin)
		pg.serve(w, r.Method == http.MethodHead)
		return
	}
	if limit := p.edge.maxBody; limit > 0 {
		if r.ContentLength > limit {
			p.edge.logAccess(r, id, fw, name, "", http.StatusRequestEntityTooLarge, 0, begin)
			text(http.StatusRequestEntityTooLarge, fmt.Sprintf("socle: the request body is larger than %d bytes\n", limit))
			return
		}
		if r.ContentLength < 0 {
			r.Body = &limitedBody{r: r.Body, left: limit}
		}
	}
	body, err := readBody(r)
	if err != nil {
		status, msg := http.StatusBadRequest, "socle: reading the request body failed\n"
		if errors.Is(err, errBodyTooLarge) {
			status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("socle: the request body is larger than %d bytes\n", p.edge.maxBody)
		}
		p.edge.logAccess(r, id, fw, name, "", status, 0, begin)
		text(status, msg)
		return
	}
	st := &h2Request{name: name, entry: e, body: body, length: r.ContentLength, fw: fw, id: id}
	r = r.WithContext(context.WithValue(r.Context(), h2Key{}, st))
	p.h2Proxy().ServeHTTP(w, r)
	p.edge.logAccess(r, id, fw, name, st.backend, st.status, st.attempts, begin)
}

// h2Proxy returns the proxy's ReverseProxy for HTTP/2 requests.
func (p *Proxy) h2Proxy() *httputil.ReverseProxy {
	p.h2Once.Do(func() {
		t := &h2Transport{p: p, t: &http.Transport{
			DialContext:         p.dialer.DialContext,
			MaxIdleConnsPerHost: maxIdleConns,
			IdleConnTimeout:     maxIdleTime,
			DisableCompression:  true,
		}}
		p.h2rp = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				st := pr.In.Context().Value(h2Key{}).(*h2Request)
				pr.Out.URL.Scheme = "http"
				pr.Out.URL.Host = st.name // the backend's address is the transport's to set
				pr.Out.Host = pr.In.Host
				h := pr.Out.Header
				h.Set("X-Forwarded-For", st.fw.forFor)
				h.Set("X-Forwarded-Host", st.fw.host)
				h.Set("X-Forwarded-Proto", st.fw.proto)
				if st.id.client == "" {
					h.Set(requestIDHeader, st.id.String())
				}
			},
			Transport: t,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				st := r.Context().Value(h2Key{}).(*h2Request)
				status := http.StatusBadGateway
				switch {
				case errors.Is(err, errNoBackend):
					status = http.StatusServiceUnavailable
				case errors.Is(err, errBodyTooLarge):
					status = http.StatusRequestEntityTooLarge
				case r.Context().Err() != nil:
					status = 499 // the client went away; nothing is written
				}
				st.status = status
				p.log.Debug("proxy error", "host", r.Host, "path", r.URL.Path, "status", status, "err", err)
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(status)
				fmt.Fprintf(w, "socle: %s: no backend of %q answered\n", http.StatusText(status), r.Host)
			},
		}
	})
	return p.h2rp
}

// h2Transport sends an HTTP/2 request's attempts to the backends of its
// route, as handle does for HTTP/1.x.
type h2Transport struct {
	p *Proxy
	t *http.Transport
}

func (t *h2Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := req.Context().Value(h2Key{}).(*h2Request)
	e := st.entry
	var tried [maxAttempts]*backend
	lastErr := errNoBackend
	for n, spins := 0, 0; n < maxAttempts && spins < 4*maxAttempts; spins++ {
		if spins > 0 {
			if e = t.p.table.Load().routes[st.name]; e == nil {
				break
			}
		}
		b := e.pick(tried[:n])
		if b == nil {
			break
		}
		if !b.acquire() {
			continue
		}
		tried[n] = b
		if n++; n > 1 {
			t.p.metrics.retries.WithLabelValues(st.name).Inc()
		}
		st.attempts = n
		out := *req
		u := *req.URL
		u.Host = b.Addr
		out.URL = &u
		switch {
		case st.body.buf != nil:
			out.Body = io.NopCloser(bytes.NewReader(st.body.buf))
			out.ContentLength = int64(len(st.body.buf))
		case st.body.stream != nil:
			out.Body = io.NopCloser(st.body.stream)
			out.ContentLength = st.length
		default:
			out.Body = nil
			out.ContentLength = 0
		}
		start := time.Now()
		resp, err := t.t.RoundTrip(&out)
		if err == nil {
			st.backend, st.status = b.ID, resp.StatusCode
			resp.Body = &countedBody{ReadCloser: resp.Body, b: b, start: start, status: resp.StatusCode}
			return resp, nil
		}
		b.finish(start, 0)
		lastErr = err
		var oe *net.OpError
		dial := errors.As(err, &oe) && oe.Op == "dial"
		if dial {
			b.setHealthy(false, err.Error(), t.p.logHealth)
		}
		if req.Context().Err() != nil || !st.body.replayable || !dial && !idempotent(req.Method) {
			break
		}
	}
	return nil, lastErr
}

// countedBody ends a request on its backend when its answer has been read.
type countedBody struct {
	io.ReadCloser
	b      *backend
	start  time.Time
	status int
	once   sync.Once
}

func (c *countedBody) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(func() { c.b.finish(c.start, c.status) })
	return err
}
