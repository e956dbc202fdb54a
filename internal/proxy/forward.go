package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The hot path: a request is written to a kept-alive connection to the
// backend and its answer read back by the goroutine serving the client, with
// no other goroutine involved and no copy of the request. Only HTTP/1.1 is
// spoken to backends, which are local processes. A client that leaves while
// its request waits for the backend's answer is noticed when the answer is
// written.

const (
	// maxAttempts bounds how many backends one request is tried on.
	maxAttempts = 3
	// maxReplayBody is the largest request body kept in memory so that the
	// request can be sent again to another backend.
	maxReplayBody = 64 << 10
)

var (
	errNoBackend = errors.New("no backend to send the request to")
	// errCut means that a backend's answer broke off after it had started
	// to reach the client.
	errCut = errors.New("answer cut short")

	// aLongTimeAgo is a deadline that wakes a blocked read at once.
	aLongTimeAgo = time.Unix(1, 0)
)

// attemptError is why an attempt got no answer from its backend; nothing
// has reached the client, so the request may go to another backend.
type attemptError struct {
	err  error
	dial bool // no connection could be made: nothing was sent
	sent bool // the whole request was written: the backend may have acted on it
	// answered means that the backend had started answering: the request
	// is never sent again.
	answered bool
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// resendable reports whether a request that failed this way may be sent
// again: never once its backend started answering; when its body can be
// sent again, if the backend cannot have acted on it, or if the method is
// idempotent (RFC 9110, 9.2.2).
func (e *attemptError) resendable(body *requestBody, method string) bool {
	if e.answered || !body.replayable {
		return false
	}
	return !e.sent || idempotent(method)
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// requestBody is the client's request body as the proxy sends it.
type requestBody struct {
	buf        []byte    // the whole body, when it was small enough to keep
	stream     io.Reader // otherwise: read once, as it comes
	replayable bool
}

// readBody keeps a body of at most maxReplayBody bytes in memory so that
// the request can be sent again; a larger one streams and the request is not
// retried.
func readBody(r *http.Request) (requestBody, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return requestBody{replayable: true}, nil
	}
	if r.ContentLength > maxReplayBody {
		return requestBody{stream: r.Body}, nil
	}
	if r.ContentLength > 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return requestBody{}, err
		}
		return requestBody{buf: buf, replayable: true}, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
	if err != nil {
		return requestBody{}, err
	}
	if len(buf) > maxReplayBody {
		return requestBody{stream: io.MultiReader(bytes.NewReader(buf), r.Body)}, nil
	}
	return requestBody{buf: buf, replayable: true}, nil
}

// handle answers one request from c, as described on [Proxy.Serve]: it
// routes r by its Host header, picks a backend and forwards r to it, trying
// another backend when that is safe, and writes the answer into c's buffer.
// It reports whether c can serve another request.
func (p *Proxy) handle(c *clientConn, r *http.Request) bool {
	var begin time.Time
	if p.edge.accessLog != nil {
		begin = time.Now()
	}
	if p.tls != nil && !c.tls {
		if answered, keep := p.tls.plain(c, r); answered {
			return keep
		}
	}
	id := p.edge.requestID(r)
	fw := p.edge.forwardedOf(c, r)
	t := p.table.Load()
	name, e := p.lookup(t, r, c.trusted)
	if e == nil {
		p.metrics.unknown.Inc()
		p.edge.logAccess(r, id, fw, name, "", http.StatusNotFound, 0, begin)
		c.writeText(http.StatusNotFound, fmt.Sprintf("socle: no app is served on %q\n", r.Host), false)
		return true
	}
	if pg := t.pausedFor(e.config.Name); pg != nil {
		p.metrics.paused.WithLabelValues(e.config.Name).Inc()
		p.edge.logAccess(r, id, fw, name, "", http.StatusServiceUnavailable, 0, begin)
		c.writePause(pg, r.Method == http.MethodHead)
		return true
	}
	var limited *limitedBody
	if limit := p.edge.maxBody; limit > 0 {
		if r.ContentLength > limit {
			// Refused before a byte of it is read; the connection
			// cannot be kept past a body left unread.
			p.edge.logAccess(r, id, fw, name, "", http.StatusRequestEntityTooLarge, 0, begin)
			c.writeText(http.StatusRequestEntityTooLarge, fmt.Sprintf("socle: the request body is larger than %d bytes\n", limit), true)
			return false
		}
		if r.ContentLength < 0 {
			limited = &limitedBody{r: r.Body, left: limit}
			r.Body = limited
		}
	}
	body, err := readBody(r)
	if err != nil {
		status, msg := http.StatusBadRequest, "socle: reading the request body failed\n"
		if errors.Is(err, errBodyTooLarge) {
			status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("socle: the request body is larger than %d bytes\n", p.edge.maxBody)
		}
		p.edge.logAccess(r, id, fw, name, "", status, 0, begin)
		c.writeText(status, msg, true)
		return false
	}
	var tried [maxAttempts]*backend
	var redial *backend // the backend to try again once, if nothing else is left
	redialed := false
	lastErr := errNoBackend
	// A pick that lands on a backend drained since the table was read is
	// not an attempt; spins bounds those in case of a storm of changes.
	for n, spins := 0, 0; n < maxAttempts && spins < 4*maxAttempts; spins++ {
		if spins > 0 {
			if e = p.table.Load().routes[name]; e == nil {
				break
			}
		}
		b := e.pick(tried[:n])
		if b == nil && redial != nil {
			// No other backend to try, and the request failed on the
			// first one before any answer (a listener whose backlog
			// overflowed under load refuses or resets for an instant):
			// try it once more, a moment later.
			time.Sleep(25 * time.Millisecond)
			b, redial = redial, nil
		}
		if b == nil {
			break
		}
		if !b.acquire() {
			continue
		}
		tried[n] = b
		if n++; n > 1 {
			p.metrics.retries.WithLabelValues(name).Inc()
		}
		start := time.Now()
		status, keep, err := p.forward(c, r, b, &body, start, fw, id)
		b.finish(start, status)
		if err == nil {
			p.edge.logAccess(r, id, fw, name, b.ID, status, n, begin)
			return keep
		}
		if errors.Is(err, errCut) {
			p.edge.logAccess(r, id, fw, name, b.ID, 0, n, begin)
			return false // the client has part of an answer: end the connection
		}
		lastErr = err
		var ae *attemptError
		if !errors.As(err, &ae) {
			break
		}
		if ae.dial {
			// Passive detection: a backend that refuses connections is
			// out of rotation until its health check passes again.
			b.setHealthy(false, err.Error(), p.logHealth)
		}
		if !ae.resendable(&body, r.Method) {
			break
		}
		if !redialed {
			redial, redialed = b, true
		}
	}
	if limited != nil && limited.tripped {
		// The body grew past the limit while it streamed to a backend.
		p.edge.logAccess(r, id, fw, name, "", http.StatusRequestEntityTooLarge, maxAttempts, begin)
		c.writeText(http.StatusRequestEntityTooLarge, fmt.Sprintf("socle: the request body is larger than %d bytes\n", p.edge.maxBody), true)
		return false
	}
	status := http.StatusBadGateway
	if lastErr == errNoBackend {
		status = http.StatusServiceUnavailable
	}
	p.log.Debug("proxy error", "host", r.Host, "path", r.URL.Path, "status", status, "err", lastErr)
	p.edge.logAccess(r, id, fw, name, "", status, 0, begin)
	c.writeText(status, fmt.Sprintf("socle: %s: no backend of %q answered\n", http.StatusText(status), r.Host), false)
	return true
}

// forward sends r to b and writes the answer to c. It returns the backend's
// status (0 if the answer did not reach the client in full) and whether c
// can serve another request; an *attemptError if nothing reached the
// client, errCut if part did.
func (p *Proxy) forward(c *clientConn, r *http.Request, b *backend, body *requestBody, start time.Time, fw forwarded, id requestID) (int, bool, error) {
	upgrade := upgradeType(r.Header)
	bc, h, err := p.roundTrip(r, b, body, upgrade, fw, id, start)
	if err != nil {
		return 0, true, err
	}
	defer answerHeads.Put(h)
	if h.status == http.StatusSwitchingProtocols {
		return p.switchProtocols(c, bc, h, upgrade)
	}

	// The head: the backend's status and end-to-end headers, and the
	// proxy's own framing of the body.
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(h.bytes(h.reason))
	if h.reason.end-h.reason.start == 3 { // no reason phrase
		bw.WriteByte(' ')
	}
	bw.WriteString("\r\n")
	bodyless := h.contentLength == 0 && !h.closeDelim
	for _, hd := range h.headers {
		// A bodyless answer (to HEAD, say) keeps the Content-Length it
		// would have had.
		if h.endToEnd(hd) && (bodyless || !bytes.EqualFold(h.bytes(hd.name), []byte("Content-Length"))) {
			writeHeaderLine(bw, h.bytes(hd.name), h.bytes(hd.value))
		}
	}
	chunked, closeAfter := false, false
	switch {
	case bodyless:
	case h.contentLength > 0:
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], h.contentLength, 10))
		bw.WriteString("\r\n")
	case r.ProtoAtLeast(1, 1):
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		chunked = true
		for _, hd := range h.headers {
			if bytes.EqualFold(h.bytes(hd.name), []byte("Trailer")) {
				writeHeaderLine(bw, h.bytes(hd.name), h.bytes(hd.value))
			}
		}
	default: // an HTTP/1.0 client: the answer ends with the connection
		closeAfter = true
	}
	switch {
	case r.Close || closeAfter:
		bw.WriteString("Connection: close\r\n")
	case !r.ProtoAtLeast(1, 1):
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")

	// The body.
	var dst io.Writer = bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	buf := p.buffers.Get().(*[32 << 10]byte)
	trailers, readErr, writeErr := h.copyBody(dst, bc.br, buf[:], bw.Flush)
	p.buffers.Put(buf)
	switch {
	case readErr != nil:
		bc.Close()
		return 0, false, fmt.Errorf("%w: %w", errCut, readErr)
	case writeErr != nil: // the client left
		bc.Close()
		return h.status, false, nil
	}
	if chunked {
		cw.Close() // the last chunk; trailers and the end follow
		for _, hd := range trailers {
			writeHeaderLine(bw, h.bytes(hd.name), h.bytes(hd.value))
		}
		bw.WriteString("\r\n")
	}
	if h.close {
		bc.Close()
	} else {
		b.pool.put(bc, start) // near enough for an idle timeout of a second
	}
	return h.status, !closeAfter, nil
}

func writeHeader(bw *bufio.Writer, k string, vv []string) {
	for _, v := range vv {
		bw.WriteString(k)
		bw.WriteString(": ")
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
}

func writeHeaderLine(bw *bufio.Writer, k, v []byte) {
	bw.Write(k)
	bw.WriteString(": ")
	bw.Write(v)
	bw.WriteString("\r\n")
}

// roundTrip writes r to a connection to b and reads the head of the answer.
// A kept-alive connection can turn out to have been closed by the backend
// while it was idle; the request then goes again on a new connection if
// that is safe.
func (p *Proxy) roundTrip(r *http.Request, b *backend, body *requestBody, upgrade string, fw forwarded, id requestID, start time.Time) (*backendConn, *answerHead, error) {
	for reuse := true; ; reuse = false {
		var bc *backendConn
		if reuse {
			bc = b.pool.get(start)
		}
		reused := bc != nil
		if bc == nil {
			nc, err := p.dialer.DialContext(p.ctx, "tcp", b.Addr)
			if err != nil {
				return nil, nil, &attemptError{err: err, dial: true}
			}
			bc = newBackendConn(nc)
		}
		err := writeRequest(bc.bw, r, body, upgrade, fw, id)
		ae := &attemptError{err: err}
		if err == nil {
			ae.sent = true
			if _, err = bc.br.Peek(1); err == nil {
				var h *answerHead
				if h, err = readAnswerHead(bc.br, r.Method); err == nil {
					return bc, h, nil
				}
				ae.answered = true
			}
			ae.err = err
		}
		bc.Close()
		if !reused || !ae.resendable(body, r.Method) {
			return nil, nil, ae
		}
	}
}

// writeRequest writes r as an HTTP/1.1 request to a backend: the client's
// request line, Host and end-to-end headers, X-Forwarded-For/Host/Proto set
// by the proxy from fw (those from the client are dropped), and the body.
func writeRequest(bw *bufio.Writer, r *http.Request, body *requestBody, upgrade string, fw forwarded, id requestID) error {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' && uri != "*" {
		uri = r.URL.RequestURI()
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	connection := r.Header["Connection"]
	for k, vv := range r.Header {
		if hopByHop(k) || listed(connection, k) {
			continue
		}
		switch k {
		case "Content-Length", "Expect", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		}
		writeHeader(bw, k, vv)
	}
	if upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.WriteString(upgrade)
		bw.WriteString("\r\n")
	}
	id.write(bw)
	bw.WriteString("X-Forwarded-For: ")
	bw.WriteString(fw.forFor)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	bw.WriteString(fw.host)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	bw.WriteString(fw.proto)
	bw.WriteString("\r\n")
	var num [20]byte
	switch {
	case body.buf != nil:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], int64(len(body.buf)), 10))
		bw.WriteString("\r\n\r\n")
		bw.Write(body.buf)
	case body.stream != nil && r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], r.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		if _, err := io.CopyN(bw, body.stream, r.ContentLength); err != nil {
			return err
		}
	case body.stream != nil:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.Copy(cw, body.stream); err != nil {
			return err
		}
		cw.Close()
		bw.WriteString("\r\n")
	default:
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// switchProtocols completes a protocol switch (a WebSocket, say): it sends
// the backend's 101 answer to the client, then copies bytes both ways until
// one side closes. The request stays in flight meanwhile; the client
// connection is not used for HTTP again.
func (p *Proxy) switchProtocols(c *clientConn, bc *backendConn, h *answerHead, upgrade string) (int, bool, error) {
	defer bc.Close()
	if !bytes.EqualFold(h.bytes(h.upgrade), []byte(upgrade)) {
		return 0, true, &attemptError{err: errors.New("backend switched to a protocol not asked for"), sent: true, answered: true}
	}
	c.disarmDeadline()
	c.bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for _, hd := range h.headers {
		writeHeaderLine(c.bw, h.bytes(hd.name), h.bytes(hd.value))
	}
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		return http.StatusSwitchingProtocols, false, nil
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(bc.Conn, c.br); done <- struct{}{} }()
	go func() { io.Copy(c.Conn, bc.br); done <- struct{}{} }()
	<-done
	c.Close()
	bc.Close()
	<-done
	return http.StatusSwitchingProtocols, false, nil
}

// upgradeType returns the protocol h asks to switch to, "" for none.
func upgradeType(h http.Header) string {
	if !listed(h["Connection"], "Upgrade") {
		return ""
	}
	if v := h["Upgrade"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// hopByHopHeaders concern one connection only (RFC 9110, 7.6.1) and are
// not passed on. Trailer is the proxy's to announce, when it frames the body
// in chunks.
var hopByHopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// hopByHop reports whether header k, in canonical form, is hop-by-hop.
func hopByHop(k string) bool { return slices.Contains(hopByHopHeaders, k) }

// listed reports whether header k is named in a Connection header's
// values, and so is hop-by-hop too.
func listed(connection []string, k string) bool {
	for _, v := range connection {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), k) {
				return true
			}
		}
	}
	return false
}

// clientIP returns the IP address of a RemoteAddr "ip:port".
func clientIP(remote string) string {
	if i := strings.LastIndexByte(remote, ':'); i >= 0 {
		remote = remote[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(remote, "["), "]")
}

// bufferPool holds the buffers answers are copied with.
func newBufferPool() *sync.Pool {
	return &sync.Pool{New: func() any { return new([32 << 10]byte) }}
}
