package process

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
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

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/process/machine"
)

// postgres is an environment's PostgreSQL server, shared by its postgres
// resources (a database and a role each), in <Dir>/<env>/postgres:
//
//	state.json     port, passwords (0600, socle's)
//	postgres.log   the server's log
//	data/          the data directory (the server's user's)
type postgres struct {
	d   *Driver
	env string
	dir string
}

func (d *Driver) postgres(env string) *postgres {
	return &postgres{d: d, env: env, dir: filepath.Join(d.cfg.Dir, env, "postgres")}
}

// pgState is what state.json keeps of a server.
type pgState struct {
	// Port is picked free when the server is made, then kept.
	Port int `json:"port"`
	// Superuser is the password of the server's superuser, postgres
	// (see Driver.hide).
	Superuser string `json:"superuser"`
	// Passwords are the resources' roles' passwords by resource name.
	Passwords map[string]string `json:"passwords,omitempty"`
}

// loopback is where the servers listen, and all they listen on.
const loopback = "127.0.0.1"

func (p *postgres) data() string    { return filepath.Join(p.dir, "data") }
func (p *postgres) logFile() string { return filepath.Join(p.dir, "postgres.log") }
func (p *postgres) state() string   { return filepath.Join(p.dir, "state.json") }
func (p *postgres) pidFile() string { return filepath.Join(p.data(), "postmaster.pid") }

// aad binds a password kept in state.json to its place: the superuser's
// (resource ""), or a resource's role's.
func (p *postgres) aad(resource string) string {
	if resource == "" {
		return "process/" + p.env + "/postgres superuser"
	}
	return "process/" + p.env + "/postgres/" + resource
}

func (p *postgres) provision(ctx context.Context, r provision.Request) (map[string]string, error) {
	st, super, err := p.start(ctx)
	if err != nil {
		return nil, err
	}
	pw, err := p.rolePassword(&st, r.Name)
	if err != nil {
		return nil, err
	}
	conn, err := connect(ctx, st.Port, "postgres", super, "postgres")
	if err != nil {
		return nil, fmt.Errorf("connecting to the postgres server for %s as its superuser: %w", p.env, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := ident(r.Name)
	if err := ensureDatabase(ctx, conn, name, pw); err != nil {
		return nil, err
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(name, pw),
		Host:     net.JoinHostPort(loopback, strconv.Itoa(st.Port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return map[string]string{
		"host": loopback, "port": strconv.Itoa(st.Port), "name": name, "database": name,
		"username": name, "password": pw, "url": u.String(),
	}, nil
}

// ensureDatabase makes role name, logging in with pw, and its database
// name, which other roles cannot connect to. Each step is idempotent:
// the role's password is set again each time, to the one kept.
func ensureDatabase(ctx context.Context, conn *pgx.Conn, name, pw string) error {
	verifier, err := scramVerifier(pw)
	if err != nil {
		return err
	}
	id := pgx.Identifier{name}.Sanitize()
	var role, db bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1),
		EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&role, &db); err != nil {
		return fmt.Errorf("looking for role and database %s: %w", name, err)
	}
	verb := "CREATE"
	if role {
		verb = "ALTER"
	}
	// The statement carries the password's SCRAM verifier, not the
	// password: the server's log may show the statement.
	if _, err := conn.Exec(ctx, verb+" ROLE "+id+" LOGIN PASSWORD '"+verifier+"'"); err != nil {
		return fmt.Errorf("setting up role %s: %w", name, err)
	}
	if !db {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+id+" OWNER "+id); err != nil {
			return fmt.Errorf("creating database %s: %w", name, err)
		}
	}
	// Every role may connect to every database unless told otherwise:
	// one app's role must not open another's database, nor the
	// maintenance one.
	for _, stmt := range []string{
		"REVOKE CONNECT, TEMPORARY ON DATABASE " + id + " FROM PUBLIC",
		"GRANT CONNECT, TEMPORARY ON DATABASE " + id + " TO " + id,
		"REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("restricting database %s to its role: %w", name, err)
		}
	}
	return nil
}

// rolePassword is the password of the resource's role: the one kept in
// st, else a new one, kept before the role is made so that a crash in
// between leaves nothing that differs from what the outputs say.
func (p *postgres) rolePassword(st *pgState, resource string) (string, error) {
	aad := p.aad(resource)
	if kept, ok := st.Passwords[resource]; ok {
		return p.d.reveal(kept, aad)
	}
	pw := machine.Password()
	hidden, err := p.d.hide(pw, aad)
	if err != nil {
		return "", err
	}
	if st.Passwords == nil {
		st.Passwords = map[string]string{}
	}
	st.Passwords[resource] = hidden
	return pw, writeState(p.state(), st)
}

func (p *postgres) check(ctx context.Context, r provision.Request) error {
	var st pgState
	if err := readState(p.state(), &st); err != nil {
		return err
	}
	kept, ok := st.Passwords[r.Name]
	if !ok {
		return fmt.Errorf("postgres database of %s in %s was never provisioned", r.Name, p.env)
	}
	if err := p.running(); err != nil {
		return err
	}
	pw, err := p.d.reveal(kept, p.aad(r.Name))
	if err != nil {
		return err
	}
	name := ident(r.Name)
	conn, err := connect(ctx, st.Port, name, pw, name)
	if err != nil {
		return fmt.Errorf("postgres server for %s does not let %s into its database: %w", p.env, r.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	qctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := conn.Exec(qctx, "SELECT 1"); err != nil {
		return fmt.Errorf("postgres server for %s does not answer a query on %s's database: %w", p.env, r.Name, err)
	}
	return nil
}

// running says why the server is not running, or nil.
func (p *postgres) running() error {
	pid := pidIn(p.pidFile())
	if pid == 0 {
		return fmt.Errorf("postgres server for %s is not running (postmaster.pid gone)", p.env)
	}
	if !alive(pid, p.data()) {
		return fmt.Errorf("postgres server for %s is not running (its process %d, in postmaster.pid, is gone)", p.env, pid)
	}
	return nil
}

func (p *postgres) deprovision(ctx context.Context, r provision.Request) error {
	if _, err := os.Stat(filepath.Join(p.data(), "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		return nil // no server, no database
	}
	st, super, err := p.start(ctx)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, st.Port, "postgres", super, "postgres")
	if err != nil {
		return fmt.Errorf("connecting to the postgres server for %s as its superuser: %w", p.env, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	id := pgx.Identifier{ident(r.Name)}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", ident(r.Name), err)
	}
	if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+id); err != nil {
		return fmt.Errorf("dropping role %s: %w", ident(r.Name), err)
	}
	if _, ok := st.Passwords[r.Name]; !ok {
		return nil
	}
	delete(st.Passwords, r.Name)
	return writeState(p.state(), &st)
}

// start makes the server (initdb) when there is none, starts it when it
// is not running, and returns its state and its superuser's password.
func (p *postgres) start(ctx context.Context) (pgState, string, error) {
	var st pgState
	bin, err := p.d.postgresBin()
	if err != nil {
		return st, "", err
	}
	cred, err := account("postgres", "postgresql")
	if err != nil {
		return st, "", err
	}
	if err := p.d.serverDir(p.dir, cred, "PostgreSQL"); err != nil {
		return st, "", err
	}
	if err := readState(p.state(), &st); err != nil {
		return st, "", err
	}
	if _, err := os.Stat(filepath.Join(p.data(), "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := p.initdb(bin, cred, &st); err != nil {
			return st, "", err
		}
	} else if err != nil {
		return st, "", err
	} else if st.Superuser == "" {
		// Never made again over data: that is for a person to decide.
		return st, "", fmt.Errorf("the postgres server for %s has its data in %s but its state, with its superuser's password, is gone from %s: move the data directory away to start afresh",
			p.env, p.data(), p.state())
	}
	super, err := p.d.reveal(st.Superuser, p.aad(""))
	if err != nil {
		return st, "", err
	}
	if pid := pidIn(p.pidFile()); alive(pid, p.data()) {
		p.d.log.Debug("postgres server running", "env", p.env, "pid", pid)
		return st, super, nil
	} else if pid != 0 {
		// A server killed leaves its postmaster.pid; PostgreSQL
		// itself refuses to start over one whose pid now names a
		// live process of another kind.
		if err := os.Remove(p.pidFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, "", err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// The backends of a killed server exit when they notice; the new
	// one would not start while they hold the old shared memory.
	if err := poll(ctx, func() error {
		if pids := workingIn(p.data()); len(pids) > 0 {
			return fmt.Errorf("postgres server for %s cannot start: processes %v of its killed server still run", p.env, pids)
		}
		return nil
	}); err != nil {
		return st, "", err
	}
	if err := touch(p.logFile(), cred); err != nil {
		return st, "", err
	}
	p.d.log.Info("starting postgres server", "env", p.env, "port", st.Port)
	// pg_ctl detaches the server (its own session, output to the log):
	// it outlives socle, which adopts it again from postmaster.pid.
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_ctl"), "start", "-D", p.data(), "-l", p.logFile(),
		"-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "-s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = machine.Env()
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return st, "", fmt.Errorf("postgres server for %s did not start (%v): %s\nlast lines of %s:\n%s",
			p.env, err, strings.TrimSpace(string(out)), p.logFile(), tail(p.logFile(), 20))
	}
	return st, super, nil
}

// initdb makes the data directory: a superuser postgres with a random
// password (scram-sha-256 for every connection), listening on
// 127.0.0.1:<port> only. It is made beside and renamed into place once
// complete, so that data/ is never a half-made one. The port and the
// roles' passwords kept in st stay.
func (p *postgres) initdb(bin string, cred *syscall.Credential, st *pgState) error {
	fresh := p.data() + ".new"
	if err := os.RemoveAll(fresh); err != nil {
		return err
	}
	if err := ownedDir(fresh, cred); err != nil {
		return err
	}
	defer os.RemoveAll(fresh)
	if st.Port == 0 {
		port, err := machine.FreePort()
		if err != nil {
			return err
		}
		st.Port = port
	}
	super := machine.Password()
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(super+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := chown(pwfile, cred); err != nil {
		return err
	}
	p.d.log.Info("creating postgres server", "env", p.env, "dir", p.data())
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", fresh, "-U", "postgres", "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = machine.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb for the postgres server of %s: %v\n%s", p.env, err, out)
	}
	// The settings go in the data directory's own configuration, so that
	// the server is the same however it is started.
	conf, err := os.OpenFile(filepath.Join(fresh, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(conf, "\n# socle: loopback TCP only, on the port socle picked\nlisten_addresses = '%s'\nport = %d\nunix_socket_directories = ''\n", loopback, st.Port)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The password is kept before the data is in place: data/ never
	// exists without it.
	if st.Superuser, err = p.d.hide(super, p.aad("")); err != nil {
		return err
	}
	if err := writeState(p.state(), st); err != nil {
		return err
	}
	if err := os.RemoveAll(p.data()); err != nil {
		return err
	}
	return os.Rename(fresh, p.data())
}

// stop stops the server, fast (sessions are ended), keeping its data.
func (p *postgres) stop(ctx context.Context) error {
	if p.running() != nil {
		return nil
	}
	bin, err := p.d.postgresBin()
	if err != nil {
		return err
	}
	cred, err := account("postgres", "postgresql")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_ctl"), "stop", "-D", p.data(), "-m", "fast",
		"-w", "-t", strconv.Itoa(int(stopTimeout/time.Second)), "-s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = machine.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stopping the postgres server for %s: %v: %s", p.env, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// postgresBin is the directory of initdb and pg_ctl (see
// Config.PostgresBin).
func (d *Driver) postgresBin() (string, error) {
	const install = "install Debian's postgresql package"
	if dir := d.cfg.PostgresBin; dir != "" {
		for _, prog := range []string{"initdb", "pg_ctl"} {
			if _, err := os.Stat(filepath.Join(dir, prog)); err != nil {
				return "", fmt.Errorf("postgres resources need PostgreSQL's %s, and there is none in %s (%s)", prog, dir, install)
			}
		}
		return dir, nil
	}
	dir := machine.PostgresBin()
	if dir == "" {
		return "", fmt.Errorf("postgres resources need PostgreSQL's initdb and pg_ctl, on PATH or in /usr/lib/postgresql/<version>/bin, and there are none (%s)", install)
	}
	return dir, nil
}

// connect opens a connection to the server on 127.0.0.1:port, within
// probeTimeout. pgx's errors name the user and database, never the
// password.
func connect(ctx context.Context, port int, user, password, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d sslmode=disable", loopback, port))
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = user, password, db
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// scramVerifier is what PostgreSQL keeps of a scram-sha-256 password
// (RFC 5802, RFC 7677), computed here so that the password itself never
// reaches the server, nor its log.
func scramVerifier(password string) (string, error) {
	const iterations = 4096 // PostgreSQL's scram_iterations default
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha256.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac("Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac("Server Key"))), nil
}

// touch makes a log file the server's user may append to.
func touch(path string, cred *syscall.Credential) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return chown(path, cred)
}
