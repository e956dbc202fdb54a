package proxyd

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/socle-dev/socle/internal/proxy"
)

// Edge is what the proxy does at the edge (see proxy.Options): the access
// log, request body limit and trusted proxies. The same flags are those of
// `socle proxy` and `socle up`, which passes them on to the proxy process
// it starts; a proxy process that socle adopts keeps those it was started
// with until it is restarted.
type Edge struct {
	// AccessLog is where the access log goes: "" (none), "stderr", or a
	// file, appended to.
	AccessLog string
	// AccessLogEvery logs one request in every AccessLogEvery (and every
	// error).
	AccessLogEvery int
	// MaxRequestBody bounds request bodies, in bytes; 0 is no limit.
	MaxRequestBody int64
	// TrustedProxies are CIDR prefixes, comma-separated.
	TrustedProxies string
}

// Register adds Edge's flags to fs.
func (e *Edge) Register(fs *flag.FlagSet) {
	fs.StringVar(&e.AccessLog, "access-log", "", `where the proxy logs each request, as JSON lines with a request ID (also passed to the app in X-Request-Id): "stderr", a file, or nothing`)
	fs.IntVar(&e.AccessLogEvery, "access-log-every", 1, "log one request in every N (every error is logged)")
	fs.Int64Var(&e.MaxRequestBody, "max-request-body", 0, "answer 413 to request bodies larger than this many bytes (0: no limit)")
	fs.StringVar(&e.TrustedProxies, "trusted-proxies", "", "comma-separated CIDR prefixes of proxies in front of socle's (a load balancer) whose X-Forwarded-For, -Proto and -Host are passed on")
}

// Args returns the flags that give e to `socle proxy`.
func (e Edge) Args() []string {
	var args []string
	if e.AccessLog != "" {
		args = append(args, "--access-log", e.AccessLog)
	}
	if e.AccessLogEvery > 1 {
		args = append(args, "--access-log-every", strconv.Itoa(e.AccessLogEvery))
	}
	if e.MaxRequestBody > 0 {
		args = append(args, "--max-request-body", strconv.FormatInt(e.MaxRequestBody, 10))
	}
	if e.TrustedProxies != "" {
		args = append(args, "--trusted-proxies", e.TrustedProxies)
	}
	return args
}

// Apply sets e in opts; stderr is the access log's "stderr". It returns a
// file to close when the proxy stops, if it opened one.
func (e Edge) Apply(opts *proxy.Options, stderr io.Writer) (io.Closer, error) {
	if e.AccessLogEvery < 0 {
		return nil, fmt.Errorf("--access-log-every %d: must be 1 or more", e.AccessLogEvery)
	}
	if e.MaxRequestBody < 0 {
		return nil, fmt.Errorf("--max-request-body %d: must be 0 or more", e.MaxRequestBody)
	}
	for _, s := range strings.Split(e.TrustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is neither a CIDR prefix nor an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		opts.TrustedProxies = append(opts.TrustedProxies, p.Masked())
	}
	opts.MaxRequestBody = e.MaxRequestBody
	opts.AccessLogEvery = e.AccessLogEvery
	var closer io.Closer
	switch e.AccessLog {
	case "":
		return nil, nil
	case "stderr", "-":
	default:
		f, err := os.OpenFile(e.AccessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--access-log: %w", err)
		}
		stderr, closer = f, f
	}
	opts.AccessLog = slog.New(slog.NewJSONHandler(stderr, nil))
	return closer, nil
}
