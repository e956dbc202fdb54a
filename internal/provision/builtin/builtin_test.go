package builtin_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/builtin"
	"github.com/socle-dev/socle/internal/wiring"
)

func TestBuiltin(t *testing.T) {
	d := builtin.New(builtin.Config{ProxyAddr: "127.0.0.1:7080", Host: wiring.ProxyHost})
	long := strings.Repeat("a", 70)
	for _, tc := range []struct {
		name string
		req  provision.Request
		want map[string]string
		err  string
	}{
		{name: "environment", req: provision.Request{Name: "shop-env", Env: "dev", Type: "environment",
			Config: map[string]any{"values": map[string]any{"LOG_LEVEL": "debug"}}}, want: map[string]string{"LOG_LEVEL": "debug"}},
		{name: "environment without variables", req: provision.Request{Name: "shop-env", Env: "dev", Type: "environment"}, want: map[string]string{}},
		{name: "environment variable not a string", req: provision.Request{Name: "shop-env", Env: "dev", Type: "environment",
			Config: map[string]any{"values": map[string]any{"N": 3}}}, err: "variable N of environment dev is a int"},
		{name: "dns", req: provision.Request{Name: "shop-dns", Env: "dev", Type: "dns"}, want: map[string]string{"host": "shop-dns.dev.localhost"}},
		{name: "dns of an id with dots and capitals", req: provision.Request{Name: "Shared.Site", Env: "qa", Type: "dns"}, want: map[string]string{"host": "shared-site.qa.localhost"}},
		{name: "dns of a long name", req: provision.Request{Name: long, Env: "dev", Type: "dns"},
			want: map[string]string{"host": strings.Repeat("a", 54) + "-" + "6bd5e503" + ".dev.localhost"}},
		{name: "service-port, primary port", req: provision.Request{Name: "b-dep", Env: "dev", Type: "service-port",
			Params: map[string]any{"workload": "a", "port": "web"}, Config: map[string]any{"primaryPort": "web"}},
			want: map[string]string{"hostname": "a.dev.localhost", "port": "7080"}},
		{name: "service-port, another port", req: provision.Request{Name: "b-dep", Env: "dev", Type: "service-port",
			Params: map[string]any{"workload": "a", "port": "metrics"}, Config: map[string]any{"primaryPort": "web"}},
			want: map[string]string{"hostname": "metrics.a.dev.localhost", "port": "7080"}},
		{name: "service-port without params", req: provision.Request{Name: "b-dep", Env: "dev", Type: "service-port"}, err: "params {workload: <app>, port: <port name>}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Provision(context.Background(), tc.req)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "resource "+tc.req.Name) {
					t.Fatalf("error %v, want one naming resource %s and saying %q", err, tc.req.Name, tc.err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("outputs %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	if _, err := d.Provision(context.Background(), provision.Request{Name: "data", Type: "volume"}); !errors.Is(err, provision.ErrUnsupported) {
		t.Errorf("a volume: %v, want ErrUnsupported", err)
	}
	host := func(name string) string {
		out, _ := d.Provision(context.Background(), provision.Request{Name: name, Env: "dev", Type: "dns"})
		return out["host"]
	}
	if first, _, _ := strings.Cut(host(long), "."); len(first) > 63 || host(long) == host(long+"b") {
		t.Errorf("host of a long name %q: want a first label of at most 63 characters, unique", host(long))
	}
}
