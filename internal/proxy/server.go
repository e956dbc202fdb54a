package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "unsafe" // go:linkname

	"golang.org/x/net/http/httpguts"
)

// The proxy serves its clients with an HTTP/1.1 loop of its own rather than
// net/http's server: requests are still parsed and checked by net/http
// (http.ReadRequest), but answers are written straight into the connection's
// buffer, with none of the per-request context, background read and header
// copies that a ResponseWriter costs. With the answers' own parsing (see
// answer.go) that takes a third off the proxy's CPU time per request, which
// matters because the proxy shares its machine with the apps it serves.

const (
	// headTimeout bounds the wait for the next request on a connection and
	// the reading of its head.
	headTimeout = time.Minute
	// maxHeadBytes bounds the size of a request's head.
	maxHeadBytes = 1 << 20
	// maxDiscardBody is how much of a request body the backend did not
	// read is skipped to keep the connection; beyond, it is closed.
	maxDiscardBody = 256 << 10
	// shutdownGrace is how long Serve waits for requests in flight once its
	// context ends.
	shutdownGrace = 30 * time.Second
)

// Serve accepts connections on l and proxies the requests that come on them
// until ctx ends; it then stops accepting, closes idle connections and waits
// up to 30s for requests in flight to finish, and returns nil. Clients speak
// HTTP/1.x (HTTP/1.1 with keep-alive, pipelining and protocol upgrades such
// as WebSocket; HTTP/1.0).
//
// A request for an unknown host gets 404 with a short text naming the host;
// a route with no backend to send to gets 503; a request that no backend
// answered gets 502. A request is tried on another backend (3 at most) if it
// could not be sent (the connection was refused, say), or if it got no
// answer and its method is idempotent; and only if its body is empty or small
// enough (64 KiB) to have been kept in memory. Once a backend has started
// answering, the request is never sent again: an answer that breaks off
// ends the client's connection.
func (p *Proxy) Serve(ctx context.Context, l net.Listener) error {
	return p.serve(ctx, l, false)
}

// serve is Serve, and ServeTLS when secure.
func (p *Proxy) serve(ctx context.Context, l net.Listener, secure bool) error {
	s := &server{p: p, conns: map[*clientConn]struct{}{}}
	if secure {
		s.tls = p.tls.config
		s.h2 = newH2Server(p, l.Addr())
	}
	stop := context.AfterFunc(ctx, func() {
		s.closing.Store(true)
		l.Close()
		s.closeIdle()
		if s.h2 != nil {
			go s.h2.shutdown()
		}
	})
	defer stop()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return s.wait()
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors, say: wait a little and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("proxy accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if s.tls != nil {
			nc = tls.Server(nc, s.tls) // the handshake is the connection's to make
		}
		c := s.track(nc)
		go c.serve()
	}
}

// server is the state of one Serve call.
type server struct {
	p       *Proxy
	tls     *tls.Config // nil: plain HTTP
	h2      *h2Server   // HTTP/2 over TLS
	closing atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[*clientConn]struct{}
}

func (s *server) track(nc net.Conn) *clientConn {
	_, isTLS := nc.(*tls.Conn)
	c := &clientConn{p: s.p, s: s, Conn: nc, clientIP: clientIP(nc.RemoteAddr().String()), tls: isTLS}
	c.trusted = s.p.edge.isTrusted(c.clientIP)
	c.lr = limitReader{r: nc}
	c.br = bufio.NewReaderSize(&c.lr, 4<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	return c
}

func (s *server) untrack(c *clientConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeIdle wakes the connections waiting for a request so that they close;
// the others close after their current answer.
func (s *server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// wait waits for the connections to finish, then closes those left.
func (s *server) wait() error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	if s.h2 != nil {
		<-s.h2.done
	}
	return nil
}

// clientConn is a connection from a client.
type clientConn struct {
	net.Conn
	p        *Proxy
	s        *server
	lr       limitReader
	br       *bufio.Reader
	bw       *bufio.Writer
	clientIP string
	tls      bool
	// handedOff: the connection went to the HTTP/2 server, which closes it.
	handedOff bool
	trusted   bool        // a proxy of Options.TrustedProxies: its X-Forwarded-* are passed on
	deadline  time.Time   // the read deadline set, zero for none
	idle      atomic.Bool // waiting for a request
}

// serve reads requests and answers them until the client or the proxy
// closes the connection.
func (c *clientConn) serve() {
	defer c.s.untrack(c)
	defer func() {
		if !c.handedOff {
			c.Close()
		}
	}()
	defer func() {
		// A bug must not take socle down with the connection.
		if v := recover(); v != nil {
			c.p.log.Error("proxy: panic serving a connection", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	if c.tls && !c.handshake() {
		return
	}
	for {
		// Checking closing after arming the deadline, not before, lets no
		// shutdown's closeIdle pass unseen.
		c.idle.Store(true)
		c.armDeadline()
		if c.s.closing.Load() {
			return
		}
		c.lr.n = maxHeadBytes
		if _, err := c.br.Peek(1); err != nil {
			return // closed, or idle too long
		}
		c.idle.Store(false)
		req, err := readRequest(c.br)
		if err != nil {
			if c.lr.n <= 0 {
				c.writeText(http.StatusRequestHeaderFieldsTooLarge, "socle: request head too large\n", true)
			} else if !errors.Is(err, io.EOF) && !isTimeout(err) {
				c.writeText(http.StatusBadRequest, "socle: malformed request\n", true)
			}
			return
		}
		c.lr.n = -1
		if req.ContentLength != 0 {
			c.disarmDeadline() // a body may take its time
		}
		if msg := checkRequest(req); msg != "" {
			status := http.StatusBadRequest
			if req.ProtoMajor != 1 {
				status = http.StatusHTTPVersionNotSupported
			}
			c.writeText(status, "socle: "+msg+"\n", true)
			return
		}
		if ex := req.Header["Expect"]; len(ex) > 0 {
			if len(ex) > 1 || !strings.EqualFold(ex[0], "100-continue") {
				c.writeText(http.StatusExpectationFailed, "socle: unsupported Expect\n", true)
				return
			}
			if req.ContentLength != 0 {
				c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
				if c.bw.Flush() != nil {
					return
				}
			}
		}
		var keep bool
		if req.RequestURI == "*" && req.Method == http.MethodOptions {
			// A question to the server itself (RFC 9110, 9.3.7), answered
			// here as net/http's server does.
			c.bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			keep = !req.Close && !c.s.closing.Load()
		} else {
			keep = c.p.handle(c, req) && !req.Close && !c.s.closing.Load()
		}
		if keep && req.Body != http.NoBody {
			// Skip what the backend left of the body, if it is not much
			// and ends as its framing says: after a malformed body (a bad
			// chunk size, say) nothing tells where the next request
			// starts, and reading one there is request smuggling.
			_, err := io.CopyN(io.Discard, req.Body, maxDiscardBody+1)
			keep = errors.Is(err, io.EOF)
		}
		if c.bw.Flush() != nil || !keep {
			return
		}
	}
}

// armDeadline makes sure that the wait for the next request and the
// reading of its head end within headTimeout, give or take half of it: the
// deadline is moved only when less than half of it is left, rather than for
// every request.
func (c *clientConn) armDeadline() {
	now := time.Now()
	if c.deadline.IsZero() || c.deadline.Sub(now) < headTimeout/2 {
		c.deadline = now.Add(headTimeout)
		c.SetReadDeadline(c.deadline)
	}
}

// disarmDeadline lifts the deadline, for reads that may take long.
func (c *clientConn) disarmDeadline() {
	c.deadline = time.Time{}
	c.SetReadDeadline(time.Time{})
}

// readRequest is net/http's request parser, as http.ReadRequest but with
// the Host header left in req.Header: checkRequest must tell a request
// without one (refused, as net/http's server does) from one whose req.Host
// comes from an absolute-form target (GET http://host/ HTTP/1.1), which
// http.ReadRequest cannot. net/http keeps this name and signature for
// callers outside it (go.dev/issue/67401); TestSmugglingDifferential holds
// the proxy to what net/http's server accepts.
//
//go:linkname readRequest net/http.readRequest
func readRequest(b *bufio.Reader) (*http.Request, error)

// checkRequest returns what is wrong with a request that readRequest
// accepts but net/http's server would refuse, "" if nothing (the checks of
// net/http's conn.readRequest), and removes its Host header (req.Host has
// it).
func checkRequest(req *http.Request) string {
	hosts := req.Header["Host"]
	delete(req.Header, "Host")
	if req.ProtoMajor != 1 {
		return "unsupported protocol version"
	}
	// readRequest refuses more than one Host header.
	switch {
	case req.ProtoAtLeast(1, 1) && len(hosts) == 0 && req.Method != "CONNECT":
		return "missing Host header"
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return "malformed Host header"
	case !httpguts.ValidHostHeader(req.Host):
		return "malformed Host header"
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "invalid header value"
			}
		}
	}
	return ""
}

// writeText writes a short plain-text answer of the proxy's own.
func (c *clientConn) writeText(status int, text string, close bool) {
	c.bw.WriteString("HTTP/1.1 ")
	c.bw.WriteString(strconv.Itoa(status))
	c.bw.WriteByte(' ')
	c.bw.WriteString(http.StatusText(status))
	c.bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	c.bw.WriteString(strconv.Itoa(len(text)))
	if close {
		c.bw.WriteString("\r\nConnection: close")
	}
	c.bw.WriteString("\r\n\r\n")
	c.bw.WriteString(text)
	c.bw.Flush()
}

// limitReader lets n bytes through, then reports EOF; n < 0 means no limit.
// It bounds a request's head without costing anything for the body.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
