package supervise

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"

	"github.com/socle-dev/socle/internal/runtime"
)

// probeClient sends HTTP probes: a connection per probe, so that none is
// kept to a replica about to be killed, no redirect followed (a 3xx is a
// success), and no certificate verified, as Kubernetes does.
var probeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes check liveness, not identity
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// probe runs pr once against the replica, within the probe's timeout: an
// HTTP probe on the loopback address of the port it names, an exec probe
// by the runner.
func (r *Replica[P]) probe(ctx context.Context, pr *runtime.Probe) error {
	ctx, cancel := context.WithTimeout(ctx, pr.Timeout)
	defer cancel()
	if pr.HTTPGet != nil {
		return r.httpGet(ctx, pr.HTTPGet)
	}
	return r.runner.Exec(ctx, pr.Exec)
}

func (r *Replica[P]) httpGet(ctx context.Context, g *runtime.HTTPGetAction) error {
	port, err := r.Spec.PortFor(g.Port)
	if err != nil {
		return err
	}
	address := ""
	for _, b := range r.Ports {
		if b.Name == port.Name {
			address = b.Address
		}
	}
	scheme := "http"
	if g.Scheme == "HTTPS" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+address+g.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "socle-probe")
	for _, h := range g.Headers {
		req.Header.Add(h.Name, h.Value)
	}
	if g.Host != "" {
		req.Host = g.Host
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", g.Path, resp.Status)
	}
	return nil
}
