package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/process/machine"
)

// redis is one resource's redis server (redis has no per-database users
// worth using, so resources share nothing), in <Dir>/<env>/redis-<name>:
//
//	state.json   port, password (0600, socle's)
//	redis.conf   the server's settings, password included (0600, the server's user's)
//	data/        append-only files, redis.pid, redis.log (the server's user's)
type redis struct {
	d   *Driver
	env string
	dir string
}

// redisState is what state.json keeps of a server.
type redisState struct {
	// Port is picked free when the server is made, then kept.
	Port int `json:"port"`
	// Password is requirepass (see Driver.hide).
	Password string `json:"password"`
}

func (s *redis) data() string    { return filepath.Join(s.dir, "data") }
func (s *redis) state() string   { return filepath.Join(s.dir, "state.json") }
func (s *redis) pidFile() string { return filepath.Join(s.data(), "redis.pid") }
func (s *redis) logFile() string { return filepath.Join(s.data(), "redis.log") }
func (s *redis) aad() string     { return "process/" + s.env + "/" + filepath.Base(s.dir) }

func (s *redis) provision(ctx context.Context, r provision.Request) (map[string]string, error) {
	bin, err := s.d.redisBin()
	if err != nil {
		return nil, err
	}
	cred, err := account("redis", "redis-server")
	if err != nil {
		return nil, err
	}
	if err := s.d.serverDir(s.dir, cred, "redis"); err != nil {
		return nil, err
	}
	var st redisState
	if err := readState(s.state(), &st); err != nil {
		return nil, err
	}
	if st.Port == 0 || st.Password == "" {
		if st.Port, err = machine.FreePort(); err != nil {
			return nil, err
		}
		if st.Password, err = s.d.hide(machine.Password(), s.aad()); err != nil {
			return nil, err
		}
		if err := writeState(s.state(), &st); err != nil {
			return nil, err
		}
	}
	pw, err := s.d.reveal(st.Password, s.aad())
	if err != nil {
		return nil, err
	}
	if err := s.start(ctx, bin, cred, st.Port, pw); err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword("", pw), Host: net.JoinHostPort(loopback, strconv.Itoa(st.Port)), Path: "/0"}
	return map[string]string{
		"host": loopback, "port": strconv.Itoa(st.Port), "username": "default", "password": pw, "url": u.String(),
	}, nil
}

// start starts the server unless it runs, and waits until it answers.
func (s *redis) start(ctx context.Context, bin string, cred *syscall.Credential, port int, pw string) error {
	pid := pidIn(s.pidFile())
	if alive(pid, s.data()) {
		s.d.log.Debug("redis server running", "env", s.env, "dir", s.dir, "pid", pid)
		return nil
	}
	if err := os.Remove(s.pidFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := ownedDir(s.data(), cred); err != nil {
		return err
	}
	// In a file rather than on the command line, where every user of
	// the machine could read the password.
	conf := filepath.Join(s.dir, "redis.conf")
	settings := fmt.Sprintf("bind %s\nport %d\nrequirepass %s\nappendonly yes\ndaemonize yes\npidfile %s\nlogfile %s\ndir %s\n",
		loopback, port, pw, s.pidFile(), s.logFile(), s.data())
	if err := os.WriteFile(conf, []byte(settings), 0o600); err != nil {
		return err
	}
	if err := chown(conf, cred); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	s.d.log.Info("starting redis server", "env", s.env, "dir", s.dir, "port", port)
	// daemonize: the server forks into its own session and outlives
	// socle, which adopts it again from its pidfile.
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "redis-server"), conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = machine.Env()
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		err = poll(ctx, func() error { return ping(ctx, port, pw) })
	}
	if err != nil {
		return fmt.Errorf("redis server in %s did not start (%v): %s\nlast lines of %s:\n%s",
			s.dir, err, strings.TrimSpace(string(out)), s.logFile(), tail(s.logFile(), 20))
	}
	return nil
}

func (s *redis) check(ctx context.Context, r provision.Request) error {
	var st redisState
	if err := readState(s.state(), &st); err != nil {
		return err
	}
	if st.Port == 0 {
		return fmt.Errorf("redis of %s in %s was never provisioned", r.Name, s.env)
	}
	pid := pidIn(s.pidFile())
	if pid == 0 {
		return fmt.Errorf("redis server of %s in %s is not running (redis.pid gone)", r.Name, s.env)
	}
	if !alive(pid, s.data()) {
		return fmt.Errorf("redis server of %s in %s is not running (its process %d, in redis.pid, is gone)", r.Name, s.env, pid)
	}
	pw, err := s.d.reveal(st.Password, s.aad())
	if err != nil {
		return err
	}
	if err := ping(ctx, st.Port, pw); err != nil {
		return fmt.Errorf("redis server of %s in %s does not answer: %w", r.Name, s.env, err)
	}
	return nil
}

func (s *redis) deprovision(ctx context.Context, r provision.Request) error {
	if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := s.stop(ctx, false); err != nil {
		return err
	}
	return os.RemoveAll(s.dir)
}

// stop shuts the server down, saving its data when save (the append-only
// file has it anyway), and waits until its process is gone: asked with
// SHUTDOWN, else SIGTERM, else, after stopTimeout, SIGKILL.
func (s *redis) stop(ctx context.Context, save bool) error {
	pid := pidIn(s.pidFile())
	if !alive(pid, s.data()) {
		return nil
	}
	gone := func() error {
		if alive(pid, s.data()) {
			return fmt.Errorf("redis server in %s (process %d) did not stop", s.dir, pid)
		}
		return nil
	}
	var st redisState
	err := readState(s.state(), &st)
	var pw string
	if err == nil {
		pw, err = s.d.reveal(st.Password, s.aad())
	}
	if err == nil {
		var c *resp
		if c, err = dialRedis(ctx, st.Port, pw); err == nil {
			cmd := []string{"SHUTDOWN", "NOSAVE"}
			if save {
				cmd[1] = "SAVE"
			}
			// A server that shuts down answers nothing: it closes.
			if _, err = c.do(cmd...); errors.Is(err, io.EOF) {
				err = nil
			}
			c.close()
		}
	}
	if err != nil {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	wait, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	if poll(wait, gone) != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		kill, cancel := context.WithTimeout(ctx, stopTimeout)
		defer cancel()
		return poll(kill, gone)
	}
	return nil
}

// redisBin is the directory of redis-server (see Config.RedisBin).
func (d *Driver) redisBin() (string, error) {
	const install = "install Debian's redis-server package"
	if dir := d.cfg.RedisBin; dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "redis-server")); err != nil {
			return "", fmt.Errorf("redis resources need redis-server, and there is none in %s (%s)", dir, install)
		}
		return dir, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis resources need redis-server, and there is none on PATH (%s)", install)
	}
	return filepath.Dir(p), nil
}

// ping authenticates to the server on 127.0.0.1:port and pings it.
func ping(ctx context.Context, port int, password string) error {
	c, err := dialRedis(ctx, port, password)
	if err != nil {
		return err
	}
	defer c.close()
	reply, err := c.do("PING")
	if err == nil && reply != "PONG" {
		err = fmt.Errorf("PING answered %q", reply)
	}
	return err
}

// resp is a connection to a redis server speaking RESP, redis' protocol,
// written by hand: socle sends a few short commands (AUTH, PING,
// SHUTDOWN), which a client library's dependency is not worth.
type resp struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRedis connects and authenticates, every exchange on the
// connection bounded by probeTimeout.
func dialRedis(ctx context.Context, port int, password string) (*resp, error) {
	var dialer net.Dialer
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(probeTimeout))
	c := &resp{conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.do("AUTH", password); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticating: %w", err)
	}
	return c, nil
}

func (c *resp) close() { c.conn.Close() }

// do sends a command and returns its reply: a simple or bulk string, an
// integer in decimal, "" for nil; a redis error as an error.
func (c *resp) do(args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return "", err
	}
	line, err := c.r.ReadSlice('\n') // at most the reader's 4 KiB
	if err != nil {
		return "", err
	}
	text := strings.TrimSuffix(string(line), "\r\n")
	if text == "" {
		return "", errors.New("empty reply from redis")
	}
	switch text[0] {
	case '+', ':':
		return text[1:], nil
	case '-':
		return "", errors.New(text[1:])
	case '$':
		n, err := strconv.Atoi(text[1:])
		if err != nil || n > 1<<20 {
			return "", fmt.Errorf("bad bulk length in reply %q", text)
		}
		if n < 0 {
			return "", nil
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", text)
}
