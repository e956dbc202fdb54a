package proxyd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/proxy"
)

// selfSigned writes <dir>/<host>.crt and .key, a self-signed certificate,
// and returns a pool that trusts it.
func selfSigned(t *testing.T, dir, host string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, host+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, host+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// getTLS sends GET / for host over HTTPS (HTTP/2) to addr.
func getTLS(addr, host string, roots *x509.CertPool) (int, string, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Proto, err
}

// TestTLSProcess: the proxy process serves HTTPS on a socket socle made;
// a new supervisor adopts it with that socket, and a proxy killed -9 is
// restarted on it.
func TestTLSProcess(t *testing.T) {
	data, certs := t.TempDir(), t.TempDir()
	stopAll(t, data)
	roots := selfSigned(t, certs, "web.dev.localhost")
	tlsFlags := TLS{Certs: certs}
	s, logs := supervise(t, data, Options{TLSAddr: "127.0.0.1:0", Command: tlsFlags.Args()})
	a := newBackend(t, "a")
	if err := s.Client().SetRoute(context.Background(), route("web.dev", proxy.Backend{ID: "a", Addr: a.addr(), Weight: 1, Version: "v1"})); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		code, body, proto, err := getTLS(s.TLSAddr(), "web.dev.localhost", roots)
		if err != nil || code != 200 || body != "a" || proto != "HTTP/2.0" {
			t.Fatalf("%s: %d %q %s %v\n%s\nproxy.log:\n%s", when, code, body, proto, err, logs, readLog(data))
		}
		if _, _, _, err := getTLS(s.TLSAddr(), "other.dev.localhost", roots); err == nil {
			t.Errorf("%s: a host without a certificate was served", when)
		}
	}
	if s.TLSAddr() == "" {
		t.Fatal("no HTTPS address")
	}
	check("started")

	pid, tlsAddr := s.PID(), s.TLSAddr()
	s.Detach()
	restarts := make(chan Restart, 1)
	s2, _ := supervise(t, data, Options{TLSAddr: "127.0.0.1:0", Command: tlsFlags.Args(), OnRestart: func(r Restart) { restarts <- r }})
	defer s2.Detach()
	s = s2
	if s.PID() != pid || s.TLSAddr() != tlsAddr {
		t.Errorf("adopted: proxy %d on %s, want %d on %s", s.PID(), s.TLSAddr(), pid, tlsAddr)
	}
	check("adopted")

	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-restarts:
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy process was not restarted")
	}
	check("restarted")
}

func TestTLSFlags(t *testing.T) {
	certs := t.TempDir()
	in := TLS{Domain: "apps.example.com", Addr: "127.0.0.1:8443", Certs: certs, ACMEEnvs: "prod, preprod", ACMEDirectory: "https://acme.example/dir", ACMEEmail: "ops@example.com"}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var out TLS
	out.Register(fs, "")
	if err := fs.Parse(append(in.Args(), "--tls-addr", in.Addr)); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("through the flags %+v became %+v", in, out)
	}
	var opts proxy.Options
	if err := out.Apply(&opts, "/data"); err != nil {
		t.Fatal(err)
	}
	if opts.Domain != "apps.example.com" || opts.TLS == nil || opts.TLS.CertDir != certs || opts.TLS.ACME == nil || !slices.Equal(opts.TLS.ACME.PublicEnvs, []string{"prod", "preprod"}) ||
		opts.TLS.ACME.CacheDir != "/data/proxy/acme" || opts.TLS.ACME.Email != in.ACMEEmail || opts.TLS.ACME.DirectoryURL != in.ACMEDirectory {
		t.Errorf("options %+v %+v", opts.TLS, opts.TLS.ACME)
	}
	for _, tc := range []struct {
		tls  TLS
		want string
	}{
		{TLS{Certs: certs}, "--proxy-tls-certs needs --proxy-tls-addr"},
		{TLS{ACMEEnvs: "prod"}, "--proxy-acme-envs needs --proxy-tls-addr"},
		{TLS{Addr: ":8443"}, "--proxy-tls-addr needs certificates"},
		{TLS{Addr: ":8443", Certs: filepath.Join(certs, "missing")}, "--proxy-tls-certs: "},
		{TLS{Domain: "apps_example.com"}, `--proxy-domain "apps_example.com": want DNS labels`},
	} {
		if err := tc.tls.Check("proxy-"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.tls, err, tc.want)
		}
	}
	if err := (TLS{}).Check("proxy-"); err != nil {
		t.Errorf("no TLS: %v", err)
	}
}
