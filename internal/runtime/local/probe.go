package local

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/runtime"
)

// probeClient sends HTTP probes: a connection per probe, so that none is
// kept to a process about to be killed, no redirect followed (a 3xx is a
// success), and no certificate verified, as Kubernetes does.
var probeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes check liveness, not identity
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// probe runs pr once against the replica.
func (r *replica) probe(ctx context.Context, pr *runtime.Probe) error {
	ctx, cancel := context.WithTimeout(ctx, pr.Timeout)
	defer cancel()
	if pr.HTTPGet != nil {
		return r.httpGet(ctx, pr.HTTPGet)
	}
	return r.exec(ctx, pr.Exec)
}

func (r *replica) httpGet(ctx context.Context, g *runtime.HTTPGetAction) error {
	port, err := r.spec.PortFor(g.Port)
	if err != nil {
		return err
	}
	address := ""
	for _, b := range r.ports {
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

func (r *replica) exec(ctx context.Context, e *runtime.ExecAction) error {
	path, err := resolve(r.spec, e.Command[0], r.d.sandbox.Enabled())
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	if r.d.sandbox.Enabled() {
		// A sandbox of its own, like the replica's: the same files, the
		// same user, its own processes. It dies with socle.
		spec := r.sandboxSpec(path, e.Command[1:])
		spec.Die = true
		// Without the marker: a probe is not the replica's process.
		spec.Env = slices.DeleteFunc(slices.Clone(spec.Env), func(kv string) bool { return strings.HasPrefix(kv, markerVar+"=") })
		if cmd, err = r.d.sandbox.Command(spec); err != nil {
			return err
		}
	} else {
		cmd = exec.Command(path, e.Command[1:]...)
		cmd.Args[0] = e.Command[0]
		cmd.Env, cmd.Dir = r.env, inRoot(r.spec.Root, r.spec.WorkingDir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	cmd.WaitDelay = time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Start()
	if err == nil {
		// The context ends the probe: kill its whole group.
		stop := context.AfterFunc(ctx, func() { signalGroup(cmd.Process.Pid, unix.SIGKILL) })
		err = cmd.Wait()
		stop()
	}
	out := buf.Bytes()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: timed out", e.Command[0])
	}
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 200 {
			msg = "…" + msg[len(msg)-200:]
		}
		return fmt.Errorf("%s: %w: %s", e.Command[0], err, msg)
	}
	return nil
}
