// Package machine is what the machine offers a server socle runs itself
// (a PostgreSQL or a redis): where its programs are, the user it runs as
// when socle is root, a free loopback port, a clean environment, a
// password. The process provision driver and test/pgtest, which runs a
// PostgreSQL server for tests, both use it; how a server is started,
// supervised and stopped is theirs.
package machine

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// PostgresBin is the directory of PostgreSQL's server programs (initdb,
// pg_ctl, postgres): initdb's on PATH, else
// /usr/lib/postgresql/<version>/bin, where Debian's postgresql package
// puts them, the newest version first. "" when there is none.
func PostgresBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return ""
	}
	version := func(initdb string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
		return n
	}
	slices.SortFunc(found, func(a, b string) int { return version(b) - version(a) })
	return filepath.Dir(found[0])
}

// Account is the credential of the user a server runs as: nil (the
// caller's own user) unless the caller is root, which PostgreSQL refuses
// and no server needs; then the user name, which the server's Debian
// package creates. The error is user.Lookup's: the caller says which
// package to install.
func Account(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	// No supplementary groups: not root's.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// FreePort is a TCP port free on 127.0.0.1 when asked: another process
// may take it before the server binds it.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Env is a server's environment: the C locale, and nothing of its
// parent's (no PG* settings, no secrets).
func Env() []string {
	return []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
}

// Password is a new random password: hex, so that it needs no escaping
// in a URL, a config file or SASLprep.
func Password() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
