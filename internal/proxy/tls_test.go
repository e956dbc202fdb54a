package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testCA is a certificate authority made by a test, which signs the
// certificates the proxy reads from files.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "socle test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// writeCert writes <dir>/<host>.crt and .key, a certificate for host
// signed by ca with the given serial number.
func (ca *testCA) writeCert(t *testing.T, dir, host string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	k := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(filepath.Join(dir, host+".key"), k, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host+".crt"), crt, 0o644); err != nil {
		t.Fatal(err)
	}
	// A later modification time than any earlier write, whatever the
	// file system's granularity: the proxy reads the files again.
	later := time.Now().Add(time.Duration(serial) * time.Second)
	os.Chtimes(filepath.Join(dir, host+".key"), later, later)
	os.Chtimes(filepath.Join(dir, host+".crt"), later, later)
}

// serveTLS serves p over TLS on a loopback listener until the test ends,
// and returns its address.
func serveTLS(t *testing.T, p *Proxy) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeTLS(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return l.Addr().String()
}

// tlsClient returns a client that sends every request to addr over TLS,
// trusting roots, speaking HTTP/2 when h2 and HTTP/1.1 otherwise.
func tlsClient(addr string, roots *x509.CertPool, h2 bool) *http.Client {
	dialer := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxIdleConnsPerHost: 100,
		ForceAttemptHTTP2:   h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestTLSCertificatesFromFiles(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writeCert(t, dir, "web.dev.localhost", 2)
	p := newProxy(t, Options{TLS: &TLSOptions{CertDir: dir}})
	setRoute(t, p, "web.dev", echoHeaders(t, "X-Forwarded-Proto", "X-Request-Id").backend(1, "v1"))
	setRoute(t, p, "api.dev", startServer(t, "api", nil).backend(1, "v1"))
	addr := serveTLS(t, p)

	for _, h2 := range []bool{false, true} {
		c := tlsClient(addr, ca.pool, h2)
		resp, err := c.Get("https://web.dev.localhost/")
		if err != nil {
			t.Fatalf("h2 %v: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := 1
		if h2 {
			want = 2
		}
		if resp.ProtoMajor != want {
			t.Errorf("h2 %v: protocol %s, want HTTP/%d", h2, resp.Proto, want)
		}
		if resp.StatusCode != 200 || !strings.Contains(string(body), "X-Forwarded-Proto=https\n") || strings.Contains(string(body), "X-Request-Id=\n") {
			t.Errorf("h2 %v: %d %q", h2, resp.StatusCode, body)
		}
		if sn := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); sn != 2 {
			t.Errorf("h2 %v: certificate serial %d, want 2", h2, sn)
		}
		// A routed host without a certificate: the handshake fails, no
		// other host's certificate is offered.
		_, err = c.Get("https://api.dev.localhost/")
		if err == nil || !strings.Contains(err.Error(), "tls: unrecognized name") {
			t.Errorf("h2 %v: a host without a certificate: %v, want the TLS alert unrecognized_name", h2, err)
		}
	}

	// A renewed certificate is served without a restart.
	ca.writeCert(t, dir, "web.dev.localhost", 3)
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "web.dev.localhost", RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	if sn := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); sn != 3 {
		t.Errorf("after renewal: serial %d, want 3", sn)
	}
	conn.Close()
	// No name at all (SNI): refused too.
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}); err == nil || !strings.Contains(err.Error(), "tls: unrecognized name") {
		t.Errorf("a handshake without SNI: %v, want the TLS alert unrecognized_name", err)
	}
}

// TestTLSUpgradeAndStreaming checks that a protocol switch (WebSocket) on
// HTTP/1.1 over TLS and a streamed answer over HTTP/2 pass as on plain
// HTTP.
func TestTLSUpgradeAndStreaming(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writeCert(t, dir, "ws.dev.localhost", 2)
	echo := startServer(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "echo")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, rw, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	})
	next := make(chan struct{})
	stream := startServer(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "second\n")
	})
	p := newProxy(t, Options{TLS: &TLSOptions{CertDir: dir}})
	setRoute(t, p, "ws.dev", echo.backend(1, "v1"))
	addr := serveTLS(t, p)

	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "ws.dev.localhost", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: ws.dev.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprint(conn, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo hello\n" {
		t.Errorf("echo: %q", line)
	}
	conn.Close()
	waitFor(t, func() bool { return p.Stats("ws.dev", "v1").InFlight == 0 })

	// Streaming over HTTP/2: the first part arrives before the backend
	// writes the second.
	setRoute(t, p, "ws.dev", stream.backend(1, "v2"))
	c := tlsClient(addr, ca.pool, true)
	resp, err = c.Get("https://ws.dev.localhost/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	rb := bufio.NewReader(resp.Body)
	if line, err := rb.ReadString('\n'); line != "first\n" {
		t.Fatalf("first part: %q %v", line, err)
	}
	close(next)
	if rest, _ := io.ReadAll(rb); string(rest) != "second\n" {
		t.Errorf("second part: %q", rest)
	}
}

// TestTLSSwitchUnderLoad is TestSwitchUnderLoad over HTTPS: 50
// connections, half HTTP/2 and half HTTP/1.1, while blue/green switches
// and weight changes go on; no request may fail.
func TestTLSSwitchUnderLoad(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writeCert(t, dir, "web.dev.localhost", 2)
	p := newProxy(t, Options{TLS: &TLSOptions{CertDir: dir}})
	addr := serveTLS(t, p)
	versions := []*app{startServer(t, "v0", nil)}
	setRoute(t, p, "web.dev", versions[0].backend(1, "v0"))

	const clients = 50
	var (
		stop     atomic.Bool
		requests atomic.Int64
		failures atomic.Int64
		h2s      atomic.Int64
		wg       sync.WaitGroup
	)
	for i := range clients {
		// A client each: 50 connections, HTTP/2 ones included.
		c := tlsClient(addr, ca.pool, i%2 == 0)
		wg.Go(func() {
			for !stop.Load() {
				resp, err := c.Get("https://web.dev.localhost/")
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					t.Error(err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "v") {
					failures.Add(1)
					t.Errorf("%d %q %v", resp.StatusCode, body, err)
					continue
				}
				if resp.ProtoMajor == 2 {
					h2s.Add(1)
				}
			}
		})
	}
	for i := 1; i <= 10 || requests.Load() < 5000; i++ {
		next := startServer(t, fmt.Sprintf("v%d", i), nil)
		prev := versions[len(versions)-1]
		// A canary step (weights), then the switch; the old version's
		// app is shut down as soon as SetRoute returns.
		setRoute(t, p, "web.dev", prev.backend(3, prev.name), next.backend(1, next.name))
		setRoute(t, p, "web.dev", next.backend(1, next.name))
		prev.Close()
		versions = append(versions, next)
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failures.Load(), requests.Load())
	}
	if h2s.Load() == 0 {
		t.Error("no request went over HTTP/2")
	}
	t.Logf("%d HTTPS requests (%d over HTTP/2) over %d switches, 0 failed", requests.Load(), h2s.Load(), len(versions)-1)
}

// TestHTTP2Requests checks what the HTTP/2 handler does as the loop does:
// request bodies, a retry on a backend that refuses connections, the body
// limit, an unknown host, and the access log.
func TestHTTP2Requests(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writeCert(t, dir, "web.dev.localhost", 2)
	ca.writeCert(t, dir, "nope.dev.localhost", 2)
	var logs syncBuffer
	p := newProxy(t, Options{TLS: &TLSOptions{CertDir: dir}, MaxRequestBody: 1000,
		AccessLog: slog.New(slog.NewJSONHandler(&logs, nil))})
	echo := startServer(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, b, r.ContentLength)
	})
	dead := startServer(t, "dead", nil)
	setRoute(t, p, "web.dev", echo.backend(1, "v1"), dead.backend(1, "v1"))
	dead.Close() // refuses connections from now on; its health check has not noticed yet
	c := tlsClient(serveTLS(t, p), ca.pool, true)

	for i := range 4 { // both backends in turn: the dead one's requests go to echo
		req, _ := http.NewRequest(http.MethodPost, "https://web.dev.localhost/", strings.NewReader("hello"))
		code, body := do(t, c, req)
		if code != 200 || body != "POST hello 5" {
			t.Errorf("POST %d: %d %q", i, code, body)
		}
	}
	if n := testutil.ToFloat64(p.metrics.retries.WithLabelValues("web.dev")); n < 1 {
		t.Errorf("%v retries, want the dead backend's request sent again", n)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://web.dev.localhost/", strings.NewReader(strings.Repeat("x", 1001)))
	if code, body := do(t, c, req); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit: %d %q", code, body)
	}
	req, _ = http.NewRequest(http.MethodGet, "https://nope.dev.localhost/", nil)
	if code, body := do(t, c, req); code != http.StatusNotFound || !strings.Contains(body, "nope.dev.localhost") {
		t.Errorf("unknown host: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), `"proto":"HTTP/2.0"`) || !strings.Contains(logs.String(), `"status":413`) {
		t.Errorf("access log:\n%s", logs.String())
	}
}
