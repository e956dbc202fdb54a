package proxyd

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/socle-dev/socle/internal/proxy"
)

// TLS is the proxy's HTTPS side (see proxy.TLSOptions): where it listens,
// certificates from files, and ACME for the hosts of public environments;
// and the domain the apps' hosts are under, which certificates name.
// `socle up` has the flags with a "proxy-" prefix (--proxy-tls-addr) and
// passes them on to `socle proxy` (--tls-addr: socle makes the socket and
// hands it over, as for --addr). Off unless Addr is set.
type TLS struct {
	// Domain is the domain apps are served under, <app>.<env>.<Domain>;
	// localhost when empty.
	Domain string
	// Addr is where HTTPS is served, host:port; empty: no HTTPS.
	Addr string
	// Certs is a directory of <host>.crt and <host>.key files.
	Certs string
	// ACMEEnvs are the public environments, comma-separated: their
	// routed hosts get certificates over ACME and plain HTTP redirected to
	// HTTPS.
	ACMEEnvs string
	// ACMEDirectory is the ACME directory URL (Let's Encrypt's when empty).
	ACMEDirectory string
	// ACMEEmail is the contact address given to the CA.
	ACMEEmail string
}

// ACMECacheDir is where the proxy keeps its ACME account key and
// certificates, in Dir of the data directory.
const ACMECacheDir = "acme"

// Register adds t's flags to fs, each name after prefix ("" for socle
// proxy, "proxy-" for socle up).
func (t *TLS) Register(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&t.Domain, prefix+"domain", "", "the domain the apps are served under, <app>.<env>.<domain> (default localhost); a public one for certificates over ACME")
	fs.StringVar(&t.Addr, prefix+"tls-addr", "", "where the proxy serves HTTPS (HTTP/1.1 and HTTP/2), host:port; none when empty")
	fs.StringVar(&t.Certs, prefix+"tls-certs", "", "directory of certificates by host name, <host>.crt (PEM chain) and <host>.key, read again when they change")
	fs.StringVar(&t.ACMEEnvs, prefix+"acme-envs", "", "comma-separated public environments: their apps' hosts get certificates over ACME (Let's Encrypt) and plain HTTP is redirected to HTTPS")
	fs.StringVar(&t.ACMEDirectory, prefix+"acme-directory", "", "ACME directory URL (default: Let's Encrypt's production directory)")
	fs.StringVar(&t.ACMEEmail, prefix+"acme-email", "", "contact e-mail address given to the ACME certificate authority")
}

// Args returns the flags that give t to `socle proxy`, but for Addr: the
// supervisor passes the HTTPS socket itself.
func (t TLS) Args() []string {
	var args []string
	for _, f := range []struct{ name, v string }{
		{"--domain", t.Domain}, {"--tls-certs", t.Certs}, {"--acme-envs", t.ACMEEnvs},
		{"--acme-directory", t.ACMEDirectory}, {"--acme-email", t.ACMEEmail},
	} {
		if f.v != "" {
			args = append(args, f.name, f.v)
		}
	}
	return args
}

// Check reports a flag set without the others it needs; prefix is that of
// Register.
func (t TLS) Check(prefix string) error {
	for _, l := range strings.Split(strings.Trim(strings.ToLower(t.Domain), "."), ".") {
		if t.Domain == "" {
			break
		}
		if l == "" || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("--%sdomain %q: want DNS labels of a-z, 0-9 and inner -", prefix, t.Domain)
		}
	}
	if t.Addr == "" {
		for _, f := range []struct{ name, v string }{
			{"tls-certs", t.Certs}, {"acme-envs", t.ACMEEnvs}, {"acme-directory", t.ACMEDirectory}, {"acme-email", t.ACMEEmail},
		} {
			if f.v != "" {
				return fmt.Errorf("--%s%s needs --%stls-addr", prefix, f.name, prefix)
			}
		}
		return nil
	}
	if t.Certs == "" && t.ACMEEnvs == "" {
		return fmt.Errorf("--%stls-addr needs certificates: --%stls-certs, --%sacme-envs or both", prefix, prefix, prefix)
	}
	if t.Certs != "" {
		fi, err := os.Stat(t.Certs)
		if err == nil && !fi.IsDir() {
			err = errors.New("not a directory")
		}
		if err != nil {
			return fmt.Errorf("--%stls-certs: %w", prefix, err)
		}
	}
	return nil
}

// Apply sets t in opts (no TLS when t.Certs and t.ACMEEnvs are empty);
// data is socle's data directory, where the ACME cache goes.
func (t TLS) Apply(opts *proxy.Options, data string) error {
	if t.Domain != "" {
		opts.Domain = strings.ToLower(strings.Trim(t.Domain, "."))
	}
	if t.Certs == "" && t.ACMEEnvs == "" {
		return nil
	}
	o := &proxy.TLSOptions{}
	if t.Certs != "" {
		abs, err := filepath.Abs(t.Certs)
		if err != nil {
			return fmt.Errorf("--tls-certs: %w", err)
		}
		o.CertDir = abs
	}
	var envs []string
	for _, e := range strings.Split(t.ACMEEnvs, ",") {
		if e = strings.TrimSpace(e); e != "" {
			envs = append(envs, e)
		}
	}
	if len(envs) > 0 {
		o.ACME = &proxy.ACMEOptions{DirectoryURL: t.ACMEDirectory, Email: t.ACMEEmail, PublicEnvs: envs,
			CacheDir: filepath.Join(data, Dir, ACMECacheDir)}
	}
	opts.TLS = o
	return nil
}
