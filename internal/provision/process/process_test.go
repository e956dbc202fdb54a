package process

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/syncbuf"
)

// dataDir is a data directory for a test. Not t.TempDir: its parents are
// private to the test's user, and when the test runs as root the servers
// run as their own users, who must reach their directories (as they must
// reach socle's real data directory).
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "process-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "resources")
}

// stopWhenDone stops env's servers when the test ends: none outlives it.
func stopWhenDone(t *testing.T, d *Driver, env string) {
	t.Cleanup(func() {
		if err := d.Stop(context.Background(), env); err != nil {
			t.Errorf("stopping the servers of %s: %v", env, err)
		}
	})
}

// killed kills pid with SIGKILL and waits until it is gone.
func killed(t *testing.T, pid int, dir string) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := poll(ctx, func() error {
		if alive(pid, dir) {
			return errors.New("still alive")
		}
		return nil
	}); err != nil {
		t.Fatalf("process %d after SIGKILL: %v", pid, err)
	}
}

func pgConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connecting with the outputs: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgres(t *testing.T) {
	ctx := context.Background()
	dir := dataDir(t)
	key, err := seal.New([]byte("test secret"))
	if err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	cfg := Config{Dir: dir, Seal: key, Logger: slogTo(&log)}
	d := New(cfg)
	stopWhenDone(t, d, "dev")
	a := provision.Request{Name: "api-db", Env: "dev", Type: "postgres"}
	b := provision.Request{Name: "worker", Env: "dev", Type: "postgres"}

	// Two resources of one environment at once: one server.
	outs := make([]map[string]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, r := range []provision.Request{a, b} {
		wg.Go(func() { outs[i], errs[i] = d.Provision(ctx, r) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	outA, outB := outs[0], outs[1]
	for _, out := range outs {
		for _, k := range []string{"host", "port", "name", "database", "username", "password", "url"} {
			if out[k] == "" {
				t.Errorf("output %s is empty in %v", k, out)
			}
		}
	}
	if outA["port"] != outB["port"] {
		t.Errorf("two servers for one environment: ports %s and %s", outA["port"], outB["port"])
	}
	if outA["database"] == outB["database"] || outA["password"] == outB["password"] {
		t.Errorf("two resources share a database or a password: %v, %v", outA["database"], outB["database"])
	}

	connA, connB := pgConnect(t, outA["url"]), pgConnect(t, outB["url"])
	for _, conn := range []*pgx.Conn{connA, connB} {
		if _, err := conn.Exec(ctx, "CREATE TABLE notes (body text)"); err != nil {
			t.Fatalf("creating a table in its own database: %v", err)
		}
	}
	if _, err := connA.Exec(ctx, "INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	// A's role cannot open B's database, nor the maintenance one.
	for _, db := range []string{outB["database"], "postgres"} {
		cfg, err := pgx.ParseConfig(outA["url"])
		if err != nil {
			t.Fatal(err)
		}
		cfg.Database = db
		conn, err := pgx.ConnectConfig(ctx, cfg)
		var pgErr *pgconn.PgError
		if err == nil {
			conn.Close(ctx)
			t.Errorf("%s's role connected to database %s", a.Name, db)
		} else if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s's role connecting to %s: want permission denied, got %v", a.Name, db, err)
		}
	}

	again, err := d.Provision(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(again, outA) {
		t.Errorf("provisioning again changed the outputs:\n%v\n%v", outA, again)
	}

	// A restart of socle: a new driver adopts the running server.
	pg := d.postgres("dev")
	pid := pidIn(pg.pidFile())
	d2 := New(cfg)
	restarted, err := d2.Provision(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(restarted, outA) {
		t.Errorf("a new driver changed the outputs:\n%v\n%v", outA, restarted)
	}
	if now := pidIn(pg.pidFile()); now != pid {
		t.Errorf("a new driver started another server (pid %d, was %d)", now, pid)
	}
	if err := d2.Check(ctx, a); err != nil {
		t.Errorf("check of a running resource: %v", err)
	}

	// kill -9 of the server: Check says so, Provision brings it back
	// with its data.
	killed(t, pid, pg.data())
	err = d2.Check(ctx, a)
	if err == nil || !strings.Contains(err.Error(), "postgres server for dev is not running") {
		t.Errorf("check of a killed server: want it not running, got %v", err)
	}
	if _, err := d2.Provision(ctx, b); err != nil {
		t.Fatalf("provisioning after a kill -9: %v", err)
	}
	if now := pidIn(pg.pidFile()); now == pid || !alive(now, pg.data()) {
		t.Errorf("server after a kill -9: pid %d (was %d), alive %v", now, pid, alive(now, pg.data()))
	}
	if err := d2.Check(ctx, a); err != nil {
		t.Errorf("check after restart: %v", err)
	}
	var body string
	if err := pgConnect(t, outA["url"]).QueryRow(ctx, "SELECT body FROM notes").Scan(&body); err != nil || body != "kept" {
		t.Errorf("the row written before the kill: %q, %v", body, err)
	}

	// Secrets: sealed at rest, never logged.
	state, err := os.ReadFile(pg.state())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(pg.state()); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, out := range outs {
		if strings.Contains(string(state), out["password"]) {
			t.Errorf("a password is in clear in %s", pg.state())
		}
		if strings.Contains(log.String(), out["password"]) {
			t.Errorf("a password is in the log:\n%s", log.String())
		}
	}

	// Deprovision drops the database and the role, twice is fine; the
	// server and the other resource stay.
	for range 2 {
		if err := d2.Deprovision(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	connB = pgConnect(t, outB["url"])
	var dbs, roles int
	if err := connB.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1), (SELECT count(*) FROM pg_roles WHERE rolname = $1)",
		outA["database"]).Scan(&dbs, &roles); err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || roles != 0 {
		t.Errorf("after deprovisioning: %d databases, %d roles named %s", dbs, roles, outA["database"])
	}
	if err := d2.Check(ctx, a); err == nil || !strings.Contains(err.Error(), "never provisioned") {
		t.Errorf("check of a deprovisioned resource: %v", err)
	}
	if err := d2.Check(ctx, b); err != nil {
		t.Errorf("the other resource after deprovisioning one: %v", err)
	}

	// A server whose state is gone is never made again over its data.
	if err := os.Rename(pg.state(), pg.state()+".away"); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Provision(ctx, b); err == nil || !strings.Contains(err.Error(), "move the data directory away") {
		t.Errorf("provisioning with the state gone: %v", err)
	}
	if err := os.Rename(pg.state()+".away", pg.state()); err != nil {
		t.Fatal(err)
	}
	if err := d2.Check(ctx, b); err != nil {
		t.Errorf("the resource after its state came back: %v", err)
	}

	// Stopped, the server is started again on Provision; one that
	// cannot start says why, with its log.
	if err := d2.Stop(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if err := d2.Check(ctx, b); err == nil || !strings.Contains(err.Error(), "postgres server for dev is not running (postmaster.pid gone)") {
		t.Errorf("check of a stopped server: %v", err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", outB["port"]))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d2.Provision(ctx, b)
	l.Close()
	if err == nil || !strings.Contains(err.Error(), "postgres server for dev did not start") || !strings.Contains(err.Error(), "Address already in use") {
		t.Errorf("starting on a port taken: %v", err)
	}
	if _, err := d2.Provision(ctx, b); err != nil {
		t.Errorf("starting once the port is free again: %v", err)
	}
}

func TestRedis(t *testing.T) {
	ctx := context.Background()
	dir := dataDir(t)
	var log syncbuf.Buffer
	d := New(Config{Dir: dir, Logger: slogTo(&log)})
	stopWhenDone(t, d, "dev")
	r := provision.Request{Name: "cache", Env: "dev", Type: "redis"}
	out, err := d.Provision(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	want := "redis://:" + out["password"] + "@127.0.0.1:" + out["port"] + "/0"
	if out["url"] != want || out["username"] != "default" || out["host"] != "127.0.0.1" {
		t.Errorf("outputs %v", out)
	}
	port, _ := strconv.Atoi(out["port"])
	c, err := dialRedis(ctx, port, out["password"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.do("SET", "greeting", "hello"); err != nil {
		t.Fatal(err)
	}
	c.close()
	if _, err := dialRedis(ctx, port, "wrong"); err == nil {
		t.Error("redis let a wrong password in")
	}
	if err := d.Check(ctx, r); err != nil {
		t.Errorf("check of a running resource: %v", err)
	}

	s := &redis{d: d, env: "dev", dir: filepath.Join(dir, "dev", "redis-cache")}
	pid := pidIn(s.pidFile())
	killed(t, pid, s.data())
	if err := d.Check(ctx, r); err == nil || !strings.Contains(err.Error(), "redis server of cache in dev is not running") {
		t.Errorf("check of a killed server: want it not running, got %v", err)
	}
	again, err := New(Config{Dir: dir}).Provision(ctx, r)
	if err != nil {
		t.Fatalf("provisioning after a kill -9: %v", err)
	}
	if !maps.Equal(again, out) {
		t.Errorf("provisioning again changed the outputs:\n%v\n%v", out, again)
	}
	c, err = dialRedis(ctx, port, out["password"])
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.do("GET", "greeting")
	c.close()
	if err != nil || got != "hello" {
		t.Errorf("the key set before the kill: %q, %v", got, err)
	}
	if fi, err := os.Stat(s.state()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, %v", fi.Mode(), err)
	}
	if strings.Contains(log.String(), out["password"]) {
		t.Errorf("the password is in the log:\n%s", log.String())
	}

	newPid := pidIn(s.pidFile())
	for range 2 {
		if err := d.Deprovision(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if alive(newPid, s.data()) {
		t.Errorf("redis server %d still runs after deprovisioning", newPid)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after deprovisioning: %v", s.dir, err)
	}
}

func TestMissingPrograms(t *testing.T) {
	d := New(Config{Dir: dataDir(t), PostgresBin: "/nonexistent/bin", RedisBin: "/nonexistent/bin"})
	for typ, pkg := range map[string]string{"postgres": "install Debian's postgresql package", "redis": "install Debian's redis-server package"} {
		_, err := d.Provision(context.Background(), provision.Request{Name: "x", Env: "dev", Type: typ})
		if err == nil || !strings.Contains(err.Error(), pkg) || !strings.Contains(err.Error(), "/nonexistent/bin") {
			t.Errorf("%s without its programs: %v", typ, err)
		}
	}
}

func TestBadRequests(t *testing.T) {
	d := New(Config{Dir: dataDir(t)})
	ctx := context.Background()
	_, err := d.Provision(ctx, provision.Request{Name: "q", Env: "dev", Type: "amqp"})
	if !errors.Is(err, provision.ErrUnsupported) || !strings.Contains(err.Error(), `"amqp"`) {
		t.Errorf("an unsupported type: %v", err)
	}
	for _, env := range []string{"", "../etc", "a/b", "Dev"} {
		if err := d.Check(ctx, provision.Request{Name: "q", Env: env, Type: "redis"}); err == nil || !strings.Contains(err.Error(), "environment name") {
			t.Errorf("environment %q: %v", env, err)
		}
	}
}

// As root, the servers run as their users, who must reach their data: a
// data directory under a private parent (a clone in /root) has its
// servers live under Config.Shared instead, the same place at every
// start, and socle changes no permission above its data directory.
func TestPrivateParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs servers as other users")
	}
	ctx := context.Background()
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dataDir(t), "shared")
	cfg := Config{Dir: filepath.Join(parent, "data", "resources"), Shared: shared}
	d := New(cfg)
	stopWhenDone(t, d, "dev")
	r := provision.Request{Name: "db", Env: "dev", Type: "postgres"}
	out, err := d.Provision(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if found, _ := filepath.Glob(filepath.Join(shared, "*", "dev", "postgres", "data", "postmaster.pid")); len(found) != 1 {
		t.Errorf("servers running under %s: %v, want one", shared, found)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "dev")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the server's files are in the private data directory too: %v", err)
	}
	if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the private parent's mode changed: %v, %v", fi.Mode(), err)
	}
	// A restarted socle finds the same servers, also once the parent is
	// no longer private: they and their data stay where they were moved.
	again, err := New(cfg).Provision(ctx, r)
	if err != nil || !maps.Equal(again, out) {
		t.Errorf("after a restart: %v, %v; want the same outputs", again, err)
	}
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	again, err = New(cfg).Provision(ctx, r)
	if err != nil || !maps.Equal(again, out) {
		t.Errorf("after a restart with the parent opened: %v, %v; want the same outputs", again, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "dev")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("with the parent opened, a second server was made in the data directory: %v", err)
	}
}

// searchable opens the way from Config.Shared down to a server's
// directory, and nothing above it: a location kept from another
// Config.Shared has only its own directory changed.
func TestSearchable(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(base, "shared")
	for _, p := range []string{filepath.Join(shared, "a1"), filepath.Join(base, "earlier", "b2")} {
		if err := searchable(p, shared); err != nil {
			t.Fatalf("searchable(%s): %v", p, err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o711 {
			t.Errorf("%s: %v, %v; want it 0711", p, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("%s: %v, %v; want it 0711", shared, fi.Mode(), err)
	}
	if fi, err := os.Stat(base); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the parent of Config.Shared: %v, %v; want it left 0700", fi.Mode(), err)
	}
}

func TestIdent(t *testing.T) {
	long := strings.Repeat("a", 80)
	names := []string{"db", "api-db", "api_db", "API_DB", "Api_db", "postgres", "pg_stat", "1cache", "", "café",
		"x_0123456789", ident("API_DB"), long, long + "b", strings.Repeat("b", 63)}
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	seen := map[string]string{}
	for _, n := range names {
		id := ident(n)
		if len(id) > 63 || !valid.MatchString(id) || strings.HasPrefix(id, "pg_") || reserved[id] {
			t.Errorf("ident(%q) = %q: not a plain identifier of at most 63 bytes", n, id)
		}
		if other, ok := seen[id]; ok {
			t.Errorf("ident(%q) = ident(%q) = %q", n, other, id)
		}
		seen[id] = n
	}
	for _, n := range []string{"db", "api_db", "worker2", strings.Repeat("b", 63)} {
		if ident(n) != n {
			t.Errorf("ident(%q) = %q, want it unchanged", n, ident(n))
		}
	}
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// StopAll stops the servers of every environment, as socle does when it
// stops its apps, and keeps their data: the next Provision starts them
// again with it.
func TestStopAll(t *testing.T) {
	ctx := context.Background()
	d := New(Config{Dir: dataDir(t)})
	var reqs []provision.Request
	for _, env := range []string{"dev", "preprod"} {
		stopWhenDone(t, d, env)
		r := provision.Request{Name: "api-db", Env: env, Type: "postgres"}
		out, err := d.Provision(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		conn := pgConnect(t, out["url"])
		if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('"+env+"')"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		reqs = append(reqs, r)
	}
	if err := d.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := d.Check(ctx, r); err == nil {
			t.Errorf("%s: Check passed after StopAll", r.Env)
		}
		out, err := d.Provision(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		var v string
		if err := pgConnect(t, out["url"]).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != r.Env {
			t.Errorf("%s: after a restart the row reads %q, %v", r.Env, v, err)
		}
	}
	if err := New(Config{Dir: filepath.Join(t.TempDir(), "none")}).StopAll(ctx); err != nil {
		t.Errorf("StopAll with no server ever started: %v", err)
	}
}
