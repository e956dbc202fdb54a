package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// pebble is a real ACME server (Let's Encrypt's pebble), in the test's
// process: its web front end on a loopback HTTPS server, its validation
// authority checking challenges by connecting to the proxy's ports, and a
// DNS server of the test that answers 127.0.0.1 for every name.
type pebble struct {
	directory string
	client    *http.Client   // trusts the front end's certificate
	roots     *x509.CertPool // pebble's root: what its certificates chain to
}

// startPebble starts pebble; its validation authority checks http-01 on
// httpPort and tls-alpn-01 on tlsPort of 127.0.0.1.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // validate at once
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no made-up bad nonces
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(&testWriter{t}, "pebble ", 0)
	}

	// pebble asks its resolver over TCP.
	dnsLn := listen(t)
	dnsSrv := &dns.Server{Listener: dnsLn, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	go dnsSrv.ActivateAndServe()
	t.Cleanup(func() { dnsSrv.Shutdown() })

	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsLn.Addr().String(), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &pebble{directory: srv.URL + wfe.DirectoryPath, client: srv.Client(), roots: roots}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// TestACME gets a certificate from pebble for a host of a public
// environment, by tls-alpn-01 (on the HTTPS port) and by http-01 (on the
// plain port, when the HTTPS port cannot be reached from the CA), and
// serves it over HTTP/2; the plain listener redirects that host to HTTPS,
// and hosts of other environments get neither a certificate nor a
// redirect.
func TestACME(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			plainLn, tlsLn := listen(t), listen(t)
			vaTLS := port(tlsLn)
			if challenge == "http-01" {
				// The CA's tls-alpn-01 check goes to a closed port and
				// fails; the manager then tries http-01.
				closed := listen(t)
				vaTLS = port(closed)
				closed.Close()
			}
			ca := startPebble(t, port(plainLn), vaTLS)
			var access syncBuffer
			p := newProxy(t, Options{AccessLog: slog.New(slog.NewJSONHandler(&access, nil)), Logger: slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})), Domain: "socle.test", TLS: &TLSOptions{ACME: &ACMEOptions{
				DirectoryURL: ca.directory,
				HTTPClient:   ca.client,
				CacheDir:     t.TempDir(),
				PublicEnvs:   []string{"prod"},
				Email:        "ops@socle.test",
			}}})
			setRoute(t, p, "web.prod", startServer(t, "web", nil).backend(1, "v1"))
			setRoute(t, p, "web.dev", startServer(t, "dev", nil).backend(1, "v1"))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 2)
			go func() { done <- p.Serve(ctx, plainLn) }()
			go func() { done <- p.ServeTLS(ctx, tlsLn) }()
			t.Cleanup(func() {
				cancel()
				for range 2 {
					if err := <-done; err != nil {
						t.Error(err)
					}
				}
			})

			c := tlsClient(tlsLn.Addr().String(), ca.roots, true)
			resp, err := c.Get("https://web.prod.socle.test/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "web" || resp.ProtoMajor != 2 {
				t.Errorf("%s %d %q, want HTTP/2 200 web", resp.Proto, resp.StatusCode, body)
			}
			leaf := resp.TLS.PeerCertificates[0]
			if !strings.HasPrefix(leaf.Issuer.CommonName, "Pebble Intermediate CA") || leaf.DNSNames[0] != "web.prod.socle.test" {
				t.Errorf("certificate of %v issued by %q", leaf.DNSNames, leaf.Issuer.CommonName)
			}

			// Neither a routed host of another environment nor an
			// unrouted host of a public one gets a certificate.
			for _, host := range []string{"web.dev.socle.test", "nope.prod.socle.test"} {
				conn, err := tls.Dial("tcp", tlsLn.Addr().String(), &tls.Config{ServerName: host, InsecureSkipVerify: true})
				if err == nil {
					t.Errorf("%s: handshake succeeded with a certificate for %v", host, conn.ConnectionState().PeerCertificates[0].DNSNames)
					conn.Close()
				} else if !strings.Contains(err.Error(), "tls: unrecognized name") {
					t.Errorf("%s: %v, want the TLS alert unrecognized_name", host, err)
				}
			}

			// Plain HTTP: the public host is redirected, the other served.
			plain := &http.Client{
				Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, plainLn.Addr().String())
				}},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			resp, err = plain.Get("http://web.prod.socle.test/a/b?c=d")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := "https://web.prod.socle.test:" + strconv.Itoa(port(tlsLn)) + "/a/b?c=d"
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
				t.Errorf("plain request of a public host: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
			}
			if code, body := get(t, plain, "http://web.dev.socle.test/"); code != 200 || body != "dev" {
				t.Errorf("plain request of a host of dev: %d %q", code, body)
			}
			logged := access.String()
			if !strings.Contains(logged, `"path":"/a/b","proto":"HTTP/1.1","status":308`) {
				t.Errorf("no access log line of the redirect:\n%s", logged)
			}
			if challenge == "http-01" && !strings.Contains(logged, `"path":"/.well-known/acme-challenge/`) {
				t.Errorf("no access log line of the CA's http-01 request:\n%s", logged)
			}
		})
	}
}
