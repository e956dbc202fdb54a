package proxyd

import (
	"bytes"
	"flag"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/proxy"
)

// The flags socle up passes to socle proxy give the proxy the same edge.
func TestEdgeFlagsRoundTrip(t *testing.T) {
	in := Edge{AccessLog: "stderr", AccessLogEvery: 10, MaxRequestBody: 1 << 20, TrustedProxies: "10.0.0.0/8, 192.0.2.7"}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var out Edge
	out.Register(fs)
	if err := fs.Parse(in.Args()); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("through the flags %+v became %+v", in, out)
	}
	var opts proxy.Options
	var stderr bytes.Buffer
	closer, err := out.Apply(&opts, &stderr)
	if err != nil || closer != nil {
		t.Fatalf("Apply: %v, %v", closer, err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}
	if !slices.Equal(opts.TrustedProxies, want) || opts.MaxRequestBody != 1<<20 || opts.AccessLogEvery != 10 || opts.AccessLog == nil {
		t.Errorf("options %+v", opts)
	}
	opts.AccessLog.Info("request", "request_id", "x")
	if !strings.Contains(stderr.String(), `"request_id":"x"`) {
		t.Errorf("the access log went to %q", stderr.String())
	}
}

func TestEdgeErrors(t *testing.T) {
	for _, tc := range []struct {
		edge Edge
		want string
	}{
		{Edge{TrustedProxies: "10.0.0.0/8,nonsense"}, `--trusted-proxies: "nonsense" is neither`},
		{Edge{MaxRequestBody: -1}, "--max-request-body -1"},
		{Edge{AccessLogEvery: -2}, "--access-log-every -2"},
		{Edge{AccessLog: filepath.Join(t.TempDir(), "missing", "access.log")}, "--access-log: "},
	} {
		var opts proxy.Options
		if _, err := tc.edge.Apply(&opts, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.edge, err, tc.want)
		}
	}
	// A file: appended to, socle's alone.
	path := filepath.Join(t.TempDir(), "access.log")
	var opts proxy.Options
	closer, err := Edge{AccessLog: path}.Apply(&opts, nil)
	if err != nil || closer == nil {
		t.Fatalf("Apply: %v, %v", closer, err)
	}
	closer.Close()
}
