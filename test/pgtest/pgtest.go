// Package pgtest starts a real PostgreSQL server for a test, from the
// machine's initdb and postgres (Debian's postgresql package, which
// scripts/test installs), in a temporary directory, listening on a free
// loopback port only, and stops it when the test ends.
//
// It lives under test/, beside the other test equipment, rather than in
// internal/store: a PostgreSQL server is what the store's PostgreSQL
// backend, the stack tests' provider and the postgres resource
// provisioners all need, and none of them owns it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/provision/process/machine"
)

// Server is a running PostgreSQL server. The admin role is a superuser
// that logs in with a password (scram-sha-256), as a real server's would.
type Server struct {
	Host     string
	Port     int
	User     string
	Password string
	// Dir holds the data directory and the server's log.
	Dir string

	stop func() error
	// stopped is set once the server stopped: its databases went with it.
	// A pointer, so that copies of a Server (another user's login) share it.
	stopped *atomic.Bool
}

// Stop stops the server now, as the end of its test would: a fast
// shutdown, which ends every session. A test stops its server to see what
// its clients do when the database goes away; stopping twice is stopping
// once.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// URL is a connection string to database db as the admin role.
func (s *Server) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.User, s.Password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Connect opens a connection to db as the admin role, closed when the
// test ends.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.URL(db))
	if err != nil {
		t.Fatalf("connecting to %s: %v", db, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Bin finds the directory of PostgreSQL's server programs, as the
// process provision driver does (see machine.PostgresBin).
func Bin() (string, error) {
	dir := machine.PostgresBin()
	if dir == "" {
		return "", errors.New("no initdb on PATH nor in /usr/lib/postgresql/*/bin: install Debian's postgresql package (scripts/test does)")
	}
	return dir, nil
}

// Start starts a server for t and stops it when t ends. A machine without
// PostgreSQL's programs fails the test, with what to install.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Launch starts a server that the caller stops, with Close: for a
// TestMain that shares one server among the tests of a package, each with
// a database of its own (see CreateDB).
//
// initdb and postgres refuse to run as root: as root, they run as the
// postgres user (which Debian's package creates) in a directory it owns.
// The server is the test's own child rather than pg_ctl's daemon, so that
// a test binary killed mid-way takes it along (see procAttr).
func Launch() (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	cred, err := machine.Account("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL runs as the postgres user: %w", err)
	}
	// Not t.TempDir: its parents are private to the test's user, and
	// the postgres user must reach its directory.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s, err := launch(bin, dir, cred)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := s.stop
	s.stop = func() error {
		err := stop()
		os.RemoveAll(dir)
		return err
	}
	return s, nil
}

// Close stops a server started by Launch and removes its directory.
func (s *Server) Close() error { return s.stop() }

func launch(bin, dir string, cred *syscall.Credential) (*Server, error) {
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	s := &Server{Host: "127.0.0.1", User: "postgres", Password: machine.Password(), Dir: dir, stopped: new(atomic.Bool)}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", s.User, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = machine.Env()
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)

	// The free port is found by binding it and letting it go: another
	// process may take it in between, and then the server is started
	// again on another.
	var lastErr error
	for range 3 {
		port, err := machine.FreePort()
		if err != nil {
			return nil, err
		}
		s.Port = port
		if lastErr = s.run(bin, data, cred); lastErr == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("starting postgres: %w", lastErr)
}

// run starts postgres and waits until it accepts connections, or exits.
func (s *Server) run(bin, data string, cred *syscall.Credential) error {
	logPath := filepath.Join(s.Dir, fmt.Sprintf("postgres-%d.log", s.Port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses="+s.Host,
		"-c", "unix_socket_directories=", // loopback TCP only
		// A test's server needs no durability: what it writes is thrown away.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.SysProcAttr = procAttr(cred)
	cmd.Env = machine.Env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.ready(ctx, exited); err != nil {
		cmd.Process.Kill()
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\n%s", err, log)
	}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			s.stopped.Store(true)
			// SIGINT is PostgreSQL's fast shutdown: sessions are ended,
			// the server stops at once.
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				<-exited
				stopErr = errors.New("postgres did not stop within a minute of SIGINT: killed")
			}
		})
		return stopErr
	}
	return nil
}

// CreateDB creates a database of its own for t, as a copy of template
// ("" for an empty one), and drops it when t ends; it returns its name. A
// database made from a template is a file copy: a package's tests share
// one server and take a fresh database each, at a few milliseconds each.
// Nobody may be connected to template meanwhile.
func (s *Server) CreateDB(t testing.TB, template string) string {
	t.Helper()
	// The random part keeps apart the databases of test binaries that
	// share a server.
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), machine.Password()[:8])
	if err := s.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+templateClause(template)); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if s.stopped.Load() {
			return
		}
		if err := s.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	return name
}

func templateClause(template string) string {
	if template == "" {
		return " TEMPLATE template0"
	}
	return " TEMPLATE " + pgx.Identifier{template}.Sanitize()
}

var dbSeq atomic.Int64

// Exec runs sql in the postgres database as the admin role, on a
// connection of its own.
func (s *Server) Exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// ready waits until the server accepts a connection. The server says it
// is ready only in its log, so a connection is tried until it is
// accepted, the server exits, or ctx ends.
func (s *Server) ready(ctx context.Context, exited <-chan error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("postgres exited before accepting connections: %v", werr)
		case <-ctx.Done():
			return fmt.Errorf("postgres accepted no connection: %w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
