package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// What the proxy does at the edge for every request, around forwarding it:
// a request ID, the client's address and scheme as the app should see them,
// a bound on the request body, and an access log. Each is cheap when not
// configured: the hot path pays for what it is asked for.

// requestIDHeader carries a request's ID to the app (and in the access
// log): the client's own if it sent a sound one, else the proxy's.
const requestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds a client's request ID; a longer one is replaced.
const maxRequestIDLen = 128

// edge is the proxy's edge configuration and counters.
type edge struct {
	accessLog *slog.Logger // nil: no access log
	every     uint64       // log 1 request in every; errors always
	logged    atomic.Uint64

	maxBody int64 // 0: no limit

	trusted []netip.Prefix

	idPrefix string // random, per proxy: IDs stay unique across restarts
	idSeq    atomic.Uint64
}

func newEdge(opts Options) *edge {
	e := &edge{accessLog: opts.AccessLog, maxBody: opts.MaxRequestBody, trusted: opts.TrustedProxies}
	e.every = uint64(max(opts.AccessLogEvery, 1))
	var b [6]byte
	rand.Read(b[:])
	e.idPrefix = hex.EncodeToString(b[:]) + "-"
	return e
}

// requestID is a request's ID: the client's, or the proxy's prefix and a
// number, made into a string only when logged (the hot path allocates
// nothing for it).
type requestID struct {
	client string // the client's sound X-Request-Id, passed on as it came
	seq    uint64
	prefix string
}

func (id requestID) String() string {
	if id.client != "" {
		return id.client
	}
	return id.prefix + strconv.FormatUint(id.seq, 36)
}

// write writes the header that gives the app the proxy's ID (a client's
// goes with the other headers).
func (id requestID) write(bw *bufio.Writer) {
	if id.client != "" {
		return
	}
	bw.WriteString(requestIDHeader + ": ")
	bw.WriteString(id.prefix)
	bw.Write(strconv.AppendUint(bw.AvailableBuffer(), id.seq, 36))
	bw.WriteString("\r\n")
}

// requestID returns r's ID; an unsound one of the client's is removed.
func (e *edge) requestID(r *http.Request) requestID {
	if vv, ok := r.Header[requestIDHeader]; ok {
		if len(vv) == 1 && soundID(vv[0]) {
			return requestID{client: vv[0]}
		}
		delete(r.Header, requestIDHeader)
	}
	return requestID{seq: e.idSeq.Add(1), prefix: e.idPrefix}
}

// soundID reports whether a client's request ID may be passed on: short,
// and of visible ASCII characters only (it ends up in logs).
func soundID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f || id[i] == '"' || id[i] == '\\' {
			return false
		}
	}
	return true
}

// isTrusted reports whether the client at ip is a proxy whose
// X-Forwarded-* headers are believed.
func (e *edge) isTrusted(ip string) bool {
	if len(e.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range e.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwarded is what the proxy tells the app about the client in
// X-Forwarded-For, -Proto and -Host.
type forwarded struct {
	forFor, proto, host string
}

// forwardedOf returns the X-Forwarded-* values of r from client c: the
// client's address, scheme and r's Host; behind a trusted proxy, the
// chain that proxy sent with the client appended, and its scheme and host.
func (e *edge) forwardedOf(c *clientConn, r *http.Request) forwarded {
	return e.forwardedFrom(c.clientIP, c.tls, c.trusted, r)
}

// forwardedFrom is forwardedOf for a client at ip, over TLS or not,
// trusted or not.
func (e *edge) forwardedFrom(ip string, secure, trusted bool, r *http.Request) forwarded {
	f := forwarded{forFor: ip, proto: "http", host: r.Host}
	if secure {
		f.proto = "https"
	}
	if !trusted {
		return f
	}
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		f.forFor = strings.Join(prior, ", ") + ", " + ip
	}
	if v := r.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
		f.proto = v
	}
	if v := r.Header.Get("X-Forwarded-Host"); v != "" && !strings.ContainsAny(v, "\r\n") {
		f.host = v
	}
	return f
}

// clientAddr is the client's address for the log: the first of a trusted
// chain, else the connection's.
func (f forwarded) client() string {
	first, _, _ := strings.Cut(f.forFor, ",")
	return strings.TrimSpace(first)
}

// errBodyTooLarge is a request body over Options.MaxRequestBody.
var errBodyTooLarge = errors.New("request body too large")

// limitedBody is a request body that fails past the limit, and says so.
type limitedBody struct {
	r       io.Reader
	left    int64
	tripped bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body at the limit from one over it.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.tripped = true
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return nil }

// logAccess writes one access log line, for one request in every, and for
// every answer of 500 or more.
func (e *edge) logAccess(r *http.Request, id requestID, f forwarded, route, backend string, status, attempts int, start time.Time) {
	if e.accessLog == nil {
		return
	}
	if n := e.logged.Add(1); status < 500 && status != 0 && e.every > 1 && n%e.every != 0 {
		return
	}
	e.accessLog.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("request_id", id.String()),
		slog.String("client", f.client()),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
		slog.String("route", route),
		slog.String("backend", backend),
		slog.Int("attempts", attempts),
		slog.Int64("request_bytes", max(r.ContentLength, 0)),
	)
}
