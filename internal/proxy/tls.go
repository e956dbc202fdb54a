package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// TLS at the edge: [Proxy.ServeTLS] serves HTTPS beside the plain listener.
// The certificate of a connection is chosen by the name the client asks for
// (SNI), from files first, then from ACME for the hosts of public
// environments; a host with neither gets a failed handshake, never the
// certificate of another host. HTTP/1.1 over TLS goes through the same
// hand-written loop as plain HTTP (WebSockets and streaming included);
// HTTP/2 (ALPN h2) is served by net/http's server, whose handler routes and
// picks backends as the loop does (see h2.go).

// TLSOptions configure the proxy's HTTPS side (Options.TLS).
type TLSOptions struct {
	// CertDir holds a certificate per host: <host>.crt (PEM, the leaf
	// first, then its chain) and <host>.key (PEM), for example
	// web.prod.example.com.crt. Files are read at the first handshake for
	// their host and again when they change: a renewed certificate needs
	// no restart. Empty: no certificates from files.
	CertDir string
	// ACME, when set, gets certificates for the hosts of public
	// environments from an ACME certificate authority (Let's Encrypt by
	// default), and redirects their plain HTTP requests to HTTPS.
	ACME *ACMEOptions
}

// ACMEOptions configure automatic certificates.
type ACMEOptions struct {
	// DirectoryURL is the ACME directory; Let's Encrypt's production one
	// when empty.
	DirectoryURL string
	// Email is the contact the CA may write to about certificates; none
	// when empty.
	Email string
	// CacheDir keeps the account key and the certificates, so that a
	// restart does not ask for them again (required; made mode 0700).
	CacheDir string
	// PublicEnvs are the environments whose hosts are public: a routed
	// host of one of them (<app>.<env>.<domain>, <port>.<app>.<env>.<domain>)
	// gets a certificate over ACME, and its plain HTTP requests are
	// redirected to HTTPS, except the ACME http-01 challenges.
	PublicEnvs []string
	// HTTPClient talks to the CA; http.DefaultClient's transport when nil
	// (tests set one that trusts their own CA).
	HTTPClient *http.Client
}

const (
	// handshakeTimeout bounds a TLS handshake, the first one of an ACME
	// host included, which waits for its certificate to be issued.
	handshakeTimeout  = time.Minute
	acmeChallengePath = "/.well-known/acme-challenge/"
)

// tlsEdge is the proxy's TLS state.
type tlsEdge struct {
	p        *Proxy
	certDir  string
	acme     *autocert.Manager // nil: no ACME
	public   []string          // environments whose hosts are public
	httpACME http.Handler      // answers http-01 challenges
	port     atomic.Int32      // the HTTPS port, once ServeTLS serves: where redirects go
	config   *tls.Config

	mu    sync.Mutex
	files map[string]*fileCert
}

// fileCert is a certificate read from CertDir, with the modification
// times of its files when read.
type fileCert struct {
	cert           *tls.Certificate
	crtMod, keyMod time.Time
}

func newTLSEdge(p *Proxy, o *TLSOptions) (*tlsEdge, error) {
	t := &tlsEdge{p: p, certDir: o.CertDir, files: map[string]*fileCert{}}
	if a := o.ACME; a != nil {
		if a.CacheDir == "" {
			return nil, errors.New("tls: acme: no cache directory")
		}
		if err := os.MkdirAll(a.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("tls: acme cache: %w", err)
		}
		client := &acme.Client{DirectoryURL: a.DirectoryURL, HTTPClient: a.HTTPClient, UserAgent: "socle-proxy"}
		if client.DirectoryURL == "" {
			client.DirectoryURL = autocert.DefaultACMEDirectory
		}
		t.public = slices.Clone(a.PublicEnvs)
		t.acme = &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(a.CacheDir),
			HostPolicy: t.acmePolicy,
			Client:     client,
			Email:      a.Email,
		}
		t.httpACME = t.acme.HTTPHandler(http.NotFoundHandler())
	}
	t.config = &tls.Config{
		GetCertificate: t.getCertificate,
		NextProtos:     []string{"h2", "http/1.1", acme.ALPNProto},
		MinVersion:     tls.VersionTLS12,
	}
	return t, nil
}

// getCertificate picks the certificate of the name the client asked for.
func (t *tlsEdge) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		// A tls-alpn-01 challenge of the CA (RFC 8737: it offers that
		// protocol alone).
		if t.acme == nil {
			return nil, fmt.Errorf("no ACME for %q", host)
		}
		return t.acme.GetCertificate(hello)
	}
	if host == "" {
		return t.unknown(hello, "the client named no host (SNI)")
	}
	if c, err := t.fromFiles(host); c != nil || err != nil {
		return c, err
	}
	if t.acme != nil && t.isPublic(host) {
		return t.acme.GetCertificate(hello)
	}
	return t.unknown(hello, "no certificate for "+strconv.Quote(host))
}

// unknown refuses a handshake for a host the proxy has no certificate
// for. Returning no certificate and no error makes crypto/tls answer with
// the unrecognized_name alert (RFC 6066, 3), which says what is wrong,
// rather than internal_error.
func (t *tlsEdge) unknown(hello *tls.ClientHelloInfo, why string) (*tls.Certificate, error) {
	t.p.log.Debug("proxy: TLS handshake refused", "client", hello.Conn.RemoteAddr().String(), "reason", why)
	return nil, nil
}

// fromFiles returns the certificate of host in CertDir, nil if it has none.
func (t *tlsEdge) fromFiles(host string) (*tls.Certificate, error) {
	if t.certDir == "" || strings.ContainsAny(host, `/\`) || strings.HasPrefix(host, ".") {
		return nil, nil
	}
	crt, key := filepath.Join(t.certDir, host+".crt"), filepath.Join(t.certDir, host+".key")
	ci, err := os.Stat(crt)
	if err != nil {
		return nil, nil
	}
	ki, err := os.Stat(key)
	if err != nil {
		return nil, fmt.Errorf("%s: no key beside it: %w", crt, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.files[host]; f != nil && f.crtMod.Equal(ci.ModTime()) && f.keyMod.Equal(ki.ModTime()) {
		return f.cert, nil
	}
	c, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.p.log.Error("proxy: certificate files", "host", host, "err", err)
		return nil, fmt.Errorf("%s: %w", crt, err)
	}
	t.files[host] = &fileCert{cert: &c, crtMod: ci.ModTime(), keyMod: ki.ModTime()}
	return &c, nil
}

// acmePolicy lets the ACME manager ask for a certificate only for a
// routed host of a public environment: a client cannot make the proxy ask
// the CA for names it does not serve.
func (t *tlsEdge) acmePolicy(_ context.Context, host string) error {
	if !t.isPublic(host) {
		return fmt.Errorf("%q is not a routed host of a public environment", host)
	}
	return nil
}

// isPublic reports whether host (without port) is routed and its
// environment public.
func (t *tlsEdge) isPublic(host string) bool {
	if len(t.public) == 0 {
		return false
	}
	name, ok := t.p.routeName(host)
	if !ok {
		return false
	}
	env := name[strings.LastIndexByte(name, '.')+1:]
	if !slices.Contains(t.public, env) {
		return false
	}
	_, routed := t.p.table.Load().routes[name]
	return routed
}

// plain answers a plain-HTTP request for a public host: the CA's http-01
// challenge, or a redirect to HTTPS. It reports whether it answered, and if
// so whether c can serve another request.
func (t *tlsEdge) plain(c *clientConn, r *http.Request) (answered, keep bool) {
	port := t.port.Load()
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if port == 0 || !t.isPublic(host) {
		return false, true
	}
	status := http.StatusPermanentRedirect
	if e := t.p.edge; e.accessLog != nil {
		begin := time.Now()
		defer func() { e.logAccess(r, e.requestID(r), e.forwardedOf(c, r), "", "", status, 0, begin) }()
	}
	if strings.HasPrefix(r.URL.Path, acmeChallengePath) {
		w := &bufferedAnswer{header: http.Header{}}
		t.httpACME.ServeHTTP(w, r)
		w.writeTo(c.bw)
		status = w.status
		return true, true
	}
	target := "https://" + host
	if port != 443 {
		target += ":" + strconv.Itoa(int(port))
	}
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI()
	}
	target += uri
	body := "socle: moved to " + target + "\n"
	bw := c.bw
	bw.WriteString("HTTP/1.1 308 Permanent Redirect\r\nLocation: ")
	bw.WriteString(target)
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	bw.WriteString("\r\n\r\n")
	if r.Method != http.MethodHead {
		bw.WriteString(body)
	}
	// A body the client sent is left unread: the connection ends.
	return true, r.ContentLength == 0
}

// bufferedAnswer is an http.ResponseWriter kept in memory, for the small
// answers of the ACME challenge handler.
type bufferedAnswer struct {
	header http.Header
	status int
	body   []byte
}

func (w *bufferedAnswer) Header() http.Header { return w.header }
func (w *bufferedAnswer) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *bufferedAnswer) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, b...)
	return len(b), nil
}

func (w *bufferedAnswer) writeTo(bw *bufio.Writer) {
	w.WriteHeader(http.StatusOK)
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(w.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(w.status))
	bw.WriteString("\r\n")
	w.header.Del("Content-Length")
	w.header.Del("Transfer-Encoding")
	w.header.Del("Connection")
	for k, vv := range w.header {
		writeHeader(bw, k, vv)
	}
	bw.WriteString("Content-Length: ")
	bw.WriteString(strconv.Itoa(len(w.body)))
	bw.WriteString("\r\n\r\n")
	bw.Write(w.body)
}

// ServeTLS accepts connections on l and serves them over TLS until ctx
// ends, as [Proxy.Serve] does for plain ones (and with the same shutdown):
// HTTP/1.1 through the same loop, HTTP/2 when the client offers it (ALPN
// h2). Options.TLS must be set. Once it serves, plain-HTTP requests for the
// hosts of public environments are redirected to l's port.
func (p *Proxy) ServeTLS(ctx context.Context, l net.Listener) error {
	if p.tls == nil {
		return errors.New("proxy: ServeTLS without Options.TLS")
	}
	if a, ok := l.Addr().(*net.TCPAddr); ok {
		p.tls.port.Store(int32(a.Port))
	}
	return p.serve(ctx, l, true)
}

// handshake completes the TLS handshake of c. An HTTP/2 connection is
// handed to the server's HTTP/2 server; it reports whether c goes on with
// HTTP/1.x.
func (c *clientConn) handshake() bool {
	tc := c.Conn.(*tls.Conn)
	ctx, cancel := context.WithTimeout(c.p.ctx, handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.p.log.Debug("proxy: TLS handshake", "client", c.clientIP, "err", err)
		return false
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case "h2":
		if c.s.h2.give(tc) {
			c.handedOff = true
		}
		return false
	case acme.ALPNProto: // the CA checked the certificate: nothing follows
		return false
	}
	return true
}
