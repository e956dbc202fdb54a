package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// podman runs the podman command line. socle drives Podman through its CLI
// rather than its Go bindings: the bindings pull in most of Podman and
// containers/storage as modules (the module proxy socle builds with does
// not serve them), and the CLI is the interface Podman keeps stable
// across versions.
//
// Every invocation reads socle's own containers.conf (CONTAINERS_CONF),
// never the machine's, so that socle needs no change to the system's
// configuration and changes nothing a user runs with podman.
type podman struct {
	bin  string
	conf string // the containers.conf every invocation reads
}

// defaultConf is the containers.conf socle writes when its state directory
// has none; a user may edit it afterwards, socle does not rewrite it.
//
//   - runtime = "runc": crun, Debian's default, refuses hosts whose cgroups
//     are in hybrid mode (v1 controllers with a v2 mount), which runc runs
//     on, as on v1 and v2.
//   - default_ulimits = []: Debian's podman raises RLIMIT_NOFILE of every
//     container to its hard maximum, which a socle started with a lower
//     hard limit (a service manager's, a CI runner's) is not permitted to
//     do: the container would not start. Containers inherit socle's limit.
const defaultConf = `# socle's containers.conf: read by every podman command socle runs
# (CONTAINERS_CONF), instead of the machine's. socle writes it once; edit it
# as you need, socle keeps your version.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
`

// newPodman returns podman over the containers.conf at conf, writing the
// default one there first if there is none.
func newPodman(conf string) (podman, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return podman{}, fmt.Errorf("the container runtime needs podman (apt-get install podman runc): %w", err)
	}
	if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(conf, []byte(defaultConf), 0o600); err != nil {
			return podman{}, err
		}
	}
	conf, err = filepath.Abs(conf)
	if err != nil {
		return podman{}, err
	}
	return podman{bin: bin, conf: conf}, nil
}

// command returns the command podman args, whose environment is socle's
// with CONTAINERS_CONF and extra (KEY=value).
func (p podman) command(ctx context.Context, extra []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	cmd.Env = append(cmd.Env, extra...)
	return cmd
}

// run runs podman args and returns its standard output, trimmed; its error
// carries what podman wrote on its standard error.
func (p podman) run(ctx context.Context, args ...string) (string, error) {
	return p.runEnv(ctx, nil, args...)
}

func (p podman) runEnv(ctx context.Context, extra []string, args ...string) (string, error) {
	cmd := p.command(ctx, extra, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = "…" + msg[len(msg)-500:]
		}
		if msg == "" {
			return "", fmt.Errorf("podman %s: %w", args[0], err)
		}
		return "", fmt.Errorf("podman %s: %w: %s", args[0], err, msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// combined runs podman args and returns what it wrote on both outputs, in
// order (podman logs writes the container's stderr on its own).
func (p podman) combined(ctx context.Context, args ...string) (string, error) {
	cmd := p.command(ctx, nil, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
