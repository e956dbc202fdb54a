// Package process is the provision driver for local environments: the
// services a resource needs (a PostgreSQL database, a redis) run as
// processes socle starts itself from the machine's binaries (Debian's
// postgresql and redis-server packages), with their data and state under
// socle's data directory.
//
// The servers are daemons: they outlive socle, and a restarted socle
// adopts them again (from postmaster.pid, redis' pidfile). A server that
// died is started again with its data on the next Provision. The package
// owns the servers and their directories; it knows nothing of the units
// or apps that use what it provisions.
package process

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/process/machine"
	"github.com/socle-dev/socle/internal/safefile"
	"github.com/socle-dev/socle/internal/seal"
)

// Budgets of the waits: a server that does not start within startTimeout
// has failed (the error carries its log's last lines); a server that does
// not answer within probeTimeout is not working.
const (
	startTimeout = 30 * time.Second
	probeTimeout = 5 * time.Second
	stopTimeout  = 15 * time.Second
)

// Config is the driver's configuration.
type Config struct {
	// Dir holds the servers' data and state, one directory per
	// environment: <data>/resources.
	Dir string
	// Logger receives what the driver starts and creates; never a
	// secret. Nil discards.
	Logger *slog.Logger
	// Seal, when set, seals the passwords kept in the state files; they
	// are 0600 files readable by socle only either way.
	Seal *seal.Key
	// PostgresBin is the directory of PostgreSQL's initdb and pg_ctl.
	// Empty finds them on PATH, then in /usr/lib/postgresql/<version>/bin
	// (where Debian's postgresql package puts them), newest first.
	PostgresBin string
	// RedisBin is the directory of redis-server. Empty finds it on PATH.
	RedisBin string
	// Shared is where the servers live instead of Dir when socle runs as
	// root and a parent of Dir is private (a clone under /root, whose
	// mode is 0700): the servers run as their own users, who could not
	// reach Dir, and socle changes no permission above its data
	// directory. Empty: /var/lib/socle/resources, or socle-resources in
	// the temporary directory for a data directory there (a test's), so
	// that what is temporary stays where the system cleans.
	Shared string
}

// sharedRoot is Config.Shared's default, beside the system's other
// services' data (Debian's PostgreSQL keeps its own in /var/lib/postgresql).
const sharedRoot = "/var/lib/socle/resources"

// Driver is the "process" provision driver.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	envs map[string]*sync.Mutex
}

var _ provision.Driver = (*Driver)(nil)

// New returns the driver over cfg.Dir. One socle process uses a data
// directory at a time: the locks that serialise the work on an
// environment's servers are in this value.
func New(cfg Config) *Driver {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Every path handed to a server is absolute.
	if abs, err := filepath.Abs(cfg.Dir); err == nil {
		cfg.Dir = abs
	}
	if abs, err := filepath.Abs(cfg.Shared); err == nil && cfg.Shared != "" {
		cfg.Shared = abs
	}
	log = log.With("driver", "process")
	if os.Geteuid() == 0 {
		cfg.Dir = reachable(cfg, log)
	}
	return &Driver{cfg: cfg, log: log, envs: map[string]*sync.Mutex{}}
}

// reachable is where the servers live when socle is root and they run as
// their own users: cfg.Dir, unless a parent of it is private, or was when
// they were moved (a location is kept: the servers and their data stay
// where they are when the parent is opened since); then a directory under
// Config.Shared (see relocate). One that cannot be made leaves them in
// cfg.Dir, where serverDir says what to do.
func reachable(cfg Config, log *slog.Logger) string {
	private := privateParent(cfg.Dir)
	if _, err := os.Stat(filepath.Join(cfg.Dir, "location")); private == "" && err != nil {
		return cfg.Dir
	}
	shared := cfg.Shared
	if tmp := os.TempDir(); shared == "" && strings.HasPrefix(cfg.Dir, tmp+string(filepath.Separator)) {
		shared = filepath.Join(tmp, "socle-resources")
	}
	dir, err := relocate(cfg.Dir, cmp.Or(shared, sharedRoot))
	if err != nil {
		log.Warn("the servers cannot live outside the data directory", "dir", cfg.Dir, "err", err)
		return cfg.Dir
	}
	log.Info("the servers live outside the data directory: a parent of it is private to root, and they run as their own users",
		"private", private, "dir", dir)
	return dir
}

// privateParent returns the first existing parent of dir that others
// cannot search, "" when there is none.
func privateParent(dir string) string {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return p
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}

// relocate returns the directory under shared where the servers of the
// data directory whose resources directory is dir live: a random name,
// kept in dir/location so that every start finds the same, and that a new
// data directory at the same path does not adopt an old one's servers.
func relocate(dir, shared string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	loc := filepath.Join(dir, "location")
	if b, err := os.ReadFile(loc); err == nil {
		if p := strings.TrimSpace(string(b)); filepath.IsAbs(p) {
			return p, searchable(p, shared)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	p := filepath.Join(shared, hex.EncodeToString(id[:]))
	if err := searchable(p, shared); err != nil {
		return "", err
	}
	return p, safefile.Write(loc, []byte(p+"\n"))
}

// searchable makes p and the directories from shared down to it, owned by
// root, searchable but not readable by others. A p kept from a Config.Shared
// since changed is not under shared: only p is changed then, never its
// parents (/var, /tmp, /).
func searchable(p, shared string) error {
	if err := os.MkdirAll(p, 0o711); err != nil {
		return err
	}
	for q := p; ; q = filepath.Dir(q) {
		if err := os.Chmod(q, 0o711); err != nil {
			return err
		}
		if !strings.HasPrefix(q, shared+string(filepath.Separator)) {
			return nil
		}
	}
}

// Name is "process".
func (d *Driver) Name() string { return "process" }

// Provision makes the resource exist on its environment's server,
// starting the server when it is not running, and returns its outputs.
func (d *Driver) Provision(ctx context.Context, r provision.Request) (map[string]string, error) {
	s, unlock, err := d.service(r)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out, err := s.provision(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("provisioning %s %s in %s: %w", r.Type, r.Name, r.Env, err)
	}
	return out, nil
}

// Check reports whether the resource's server runs and lets the
// resource's credentials in.
func (d *Driver) Check(ctx context.Context, r provision.Request) error {
	s, unlock, err := d.service(r)
	if err != nil {
		return err
	}
	defer unlock()
	return s.check(ctx, r)
}

// Deprovision removes the resource and its data: a database and its role
// (the environment's PostgreSQL server stays), a redis server and its
// directory.
func (d *Driver) Deprovision(ctx context.Context, r provision.Request) error {
	s, unlock, err := d.service(r)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.deprovision(ctx, r); err != nil {
		return fmt.Errorf("deprovisioning %s %s in %s: %w", r.Type, r.Name, r.Env, err)
	}
	return nil
}

// Stop stops env's servers, keeping their data: the next Provision starts
// them again. Nothing running is not an error.
func (d *Driver) Stop(ctx context.Context, env string) error {
	if err := checkEnv(env); err != nil {
		return err
	}
	unlock := d.lock(env)
	defer unlock()
	var errs []error
	pg := d.postgres(env)
	errs = append(errs, pg.stop(ctx))
	dirs, _ := filepath.Glob(filepath.Join(d.cfg.Dir, env, "redis-*"))
	for _, dir := range dirs {
		errs = append(errs, (&redis{d: d, env: env, dir: dir}).stop(ctx, true))
	}
	return errors.Join(errs...)
}

// StopAll stops the servers of every environment, keeping their data
// (provision.Stopper): socle stops them with the apps when it stops.
func (d *Driver) StopAll(ctx context.Context) error {
	envs, err := os.ReadDir(d.cfg.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range envs {
		if e.IsDir() && checkEnv(e.Name()) == nil {
			errs = append(errs, d.Stop(ctx, e.Name()))
		}
	}
	return errors.Join(errs...)
}

// service is what serves r, with the lock of r's environment held until
// unlock: calls for the same environment run one at a time, so that its
// shared server is started once and its state files are written by one.
func (d *Driver) service(r provision.Request) (service, func(), error) {
	if err := checkEnv(r.Env); err != nil {
		return nil, nil, err
	}
	if r.Name == "" {
		return nil, nil, errors.New("a resource to provision has no name")
	}
	var s service
	switch r.Type {
	case "postgres":
		s = d.postgres(r.Env)
	case "redis":
		s = &redis{d: d, env: r.Env, dir: filepath.Join(d.cfg.Dir, r.Env, "redis-"+ident(r.Name))}
	default:
		return nil, nil, fmt.Errorf("resource %s of type %q: %w (the process driver serves postgres and redis)", r.Name, r.Type, provision.ErrUnsupported)
	}
	return s, d.lock(r.Env), nil
}

type service interface {
	provision(ctx context.Context, r provision.Request) (map[string]string, error)
	check(ctx context.Context, r provision.Request) error
	deprovision(ctx context.Context, r provision.Request) error
}

func (d *Driver) lock(env string) func() {
	d.mu.Lock()
	m := d.envs[env]
	if m == nil {
		m = &sync.Mutex{}
		d.envs[env] = m
	}
	d.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// envName is the environments' names socle accepts (see spec): they name
// directories here.
var envName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func checkEnv(env string) error {
	if !envName.MatchString(env) {
		return fmt.Errorf("environment name %q cannot name a directory", env)
	}
	return nil
}

// hashed is the shape of a name ident has shortened or changed: a name
// that has it already is changed too, so that no resource's name can be
// another's changed one.
var hashed = regexp.MustCompile(`_[0-9a-f]{10}$`)

// reserved are names PostgreSQL refuses for a role or a database, or that
// its own databases have.
var reserved = map[string]bool{
	"postgres": true, "template0": true, "template1": true, "public": true, "none": true,
	"current_user": true, "session_user": true, "current_role": true, "system_user": true,
}

// ident is the name of what a resource gets (a PostgreSQL role and
// database, a redis directory): the resource's name when it is already a
// plain lower-case identifier, else that name with what is not [a-z0-9_]
// replaced, cut to fit PostgreSQL's 63 bytes, and suffixed with a hash of
// the resource's name, so that two resources never get the same one.
func ident(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s != "" && s == name && !reserved[s] && !hashed.MatchString(s) && len(s) <= 63 &&
		s[0] >= 'a' && s[0] <= 'z' && !strings.HasPrefix(s, "pg_") {
		return s
	}
	if s == "" || s[0] < 'a' || s[0] > 'z' || strings.HasPrefix(s, "pg_") {
		s = "r_" + s
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "_" + hex.EncodeToString(sum[:])[:10]
	return s[:min(len(s), 63-len(suffix))] + suffix
}

// account is the user a server runs as (see machine.Account); pkg is the
// Debian package that creates it.
func account(name, pkg string) (*syscall.Credential, error) {
	cred, err := machine.Account(name)
	if err != nil {
		return nil, fmt.Errorf("socle runs as root and runs %s as the %s user, which does not exist here (Debian's %s package creates it): %w", pkg, name, pkg, err)
	}
	return cred, nil
}

// serverDir makes dir, where a server's directory and state live, owned
// by socle. When socle is root the server runs as another user, who must
// reach its data directory: the directories from Config.Dir down are made
// traversable (not readable) by others; those above are the data
// directory's parents, and are only checked.
func (d *Driver) serverDir(dir string, cred *syscall.Credential, who string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if cred == nil {
		return nil
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		mode, st := fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t)
		switch {
		case mode&0o001 != 0 || st.Gid == cred.Gid && mode&0o010 != 0 || st.Uid == cred.Uid && mode&0o100 != 0:
		case p == d.cfg.Dir || strings.HasPrefix(p, d.cfg.Dir+"/"):
			if err := os.Chmod(p, mode|0o001); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s runs as uid %d (socle runs as root) and cannot reach %s: %s is not searchable by it (chmod o+x it, or run socle as an unprivileged user)", who, cred.Uid, dir, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// ownedDir makes dir, owned by the server's user, private to it.
func ownedDir(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return chown(dir, cred)
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}

// readState reads a server's state; a missing file leaves v as it is.
func readState(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// writeState replaces a server's state, readable by socle only.
func writeState(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(path, append(b, '\n'))
}

// hide is how a password is kept in a state file: sealed with
// Config.Seal when there is one, bound by aad to where it is kept.
func (d *Driver) hide(password, aad string) (string, error) {
	if d.cfg.Seal == nil {
		return password, nil
	}
	b, err := d.cfg.Seal.Seal([]byte(password), []byte(aad))
	if err != nil {
		return "", err
	}
	return sealedPrefix + base64.StdEncoding.EncodeToString(b), nil
}

const sealedPrefix = "sealed:"

// reveal is what hide hid.
func (d *Driver) reveal(kept, aad string) (string, error) {
	rest, sealed := strings.CutPrefix(kept, sealedPrefix)
	if !sealed {
		return kept, nil
	}
	if d.cfg.Seal == nil {
		return "", fmt.Errorf("a password of %s is sealed and socle has no sealing key", aad)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("a password of %s: %w", aad, seal.ErrOpen)
	}
	plain, err := d.cfg.Seal.Open(b, []byte(aad))
	if err != nil {
		return "", fmt.Errorf("a password of %s: %w", aad, err)
	}
	return string(plain), nil
}

// alive reports whether pid is a live process working in dir: the
// servers chdir to their data directory, so a pid reused by another
// process, or a dead server's zombie (which has no cwd), is not one.
func alive(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	if _, err := os.Stat("/proc/self/cwd"); err != nil {
		// No /proc (not Linux): the pid's existence is all there is.
		return syscall.Kill(pid, 0) == nil
	}
	return worksIn(pid, realPath(dir))
}

// worksIn reports whether process pid's working directory is real, a
// path with its symbolic links resolved.
func worksIn(pid int, real string) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return err == nil && cwd == real
}

// workingIn lists the live processes working in dir: what remains of a
// killed PostgreSQL server (its backends) until they notice and exit.
// Without /proc there are none to find.
func workingIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	real := realPath(dir)
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && worksIn(pid, real) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// pidIn reads the process id on the first line of a pidfile; 0 when
// there is none.
func pidIn(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// tail is the last n lines of a log, for an error saying why a server
// did not start.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// poll calls try every 50ms until it succeeds or ctx ends, and returns
// try's last error then.
func poll(ctx context.Context, try func() error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}
