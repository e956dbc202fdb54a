// Package sandbox runs the commands socle runs for apps (replicas of the
// local runtime, exec probes, build commands) in a sandbox of bubblewrap
// (bwrap): mount, PID, IPC and user namespaces of their own, the files they
// need read-only, a private /tmp, and nothing of socle's data directory or
// of other apps. When socle runs as root, each sandbox also runs as a user of
// its own (UserOf), so that even outside the namespaces its processes can
// read neither socle's files (0600) nor other apps' /proc/<pid>/environ.
//
// Why bwrap: it is small, well kept (the sandbox of Flatpak and of GNOME's
// thumbnailers), needs no setuid bit where user namespaces are allowed, and
// is one command line to audit. Hand-written namespace code would have to get
// right what bwrap already does (pivot_root, the order of mounts, the init
// that reaps orphans in the PID namespace, the uid/gid maps); runc would
// need an OCI bundle per replica and a daemon-less lifecycle that socle
// would have to supervise through yet another process.
//
// The network stays the host's: replicas listen on the loopback port socle
// gives them in $PORT, and builds fetch modules.
//
// A replica with resources.limits runs in a control group of its own that
// enforces them (package cgroup), when socle runs as root on a machine with
// the memory and cpu controllers (cgroup v2, or v1 as in the hybrid layout);
// Limits says which, or why not. Builds and exec probes are not limited.
package sandbox

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/socle-dev/socle/internal/sandbox/cgroup"
)

// Mode is how commands run.
type Mode string

const (
	// Enforced: every command runs in a sandbox.
	Enforced Mode = "enforced"
	// Insecure: the sandbox is switched off (socle up --insecure-no-sandbox);
	// commands run as socle's user, seeing what it sees.
	Insecure Mode = "insecure"
	// Refused: no sandbox can be made here (no bwrap, or user namespaces
	// forbidden) and it was not switched off: no command of an app runs.
	Refused Mode = "refused"
)

// Sandbox makes the sandboxed commands. Its zero value is not usable: call
// Detect or Off.
type Sandbox struct {
	mode   Mode
	reason string // why Refused, or what Insecure means
	bwrap  string // path of bwrap when Enforced
	root   bool   // socle runs as root: each sandbox runs as a user of its own
}

// Off returns the sandbox switched off: commands run as plain processes.
func Off() *Sandbox {
	return &Sandbox{mode: Insecure, reason: "the sandbox is off (--insecure-no-sandbox): apps and builds run as socle's user and can read its data directory, its secrets and other apps' environments"}
}

// DemoOff returns the sandbox switched off for socle's own demo, where
// none can be made (refused says why): its apps are socle's code, and a
// newcomer's first `socle up` on a machine with Go alone must serve them.
// A repository of one's own still needs a sandbox or
// --insecure-no-sandbox.
func DemoOff(refused string) *Sandbox {
	return &Sandbox{mode: Insecure, reason: "the demo's apps run without a sandbox, as socle's user, because none can be made here (" + refused + "); a platform repository of your own (--repo) is refused until one can"}
}

var (
	detectOnce sync.Once
	detected   *Sandbox
)

// Detect returns the sandbox of this machine: Enforced if bwrap is found and
// can make its namespaces, else Refused with the reason and what to do.
// It tries once per process.
func Detect() *Sandbox {
	detectOnce.Do(func() { detected = With("") })
	return detected
}

// howto ends the reason of a refusal.
const howto = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0), or start socle up with --insecure-no-sandbox to run apps without a sandbox"

// With returns the sandbox made with the bwrap at path, or the one found
// along PATH (then in /usr/bin, /usr/local/bin) if path is empty.
func With(path string) *Sandbox {
	if runtime.GOOS != "linux" {
		return &Sandbox{mode: Refused, reason: "bubblewrap sandboxes need Linux's namespaces, and this is " + runtime.GOOS + ": run socle on Linux (a VM or a container will do) for sandboxed apps, or start socle up with --insecure-no-sandbox to run apps without a sandbox"}
	}
	s := &Sandbox{root: os.Geteuid() == 0}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return &Sandbox{mode: Refused, reason: fmt.Sprintf("bwrap is not installed (%v): %s", err, howto)}
		}
	} else if p, err := exec.LookPath("bwrap"); err == nil {
		path = p
	} else {
		for _, p := range []string{"/usr/bin/bwrap", "/usr/local/bin/bwrap"} {
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				path = p
				break
			}
		}
		if path == "" {
			return &Sandbox{mode: Refused, reason: "bwrap is not installed: " + howto}
		}
	}
	s.bwrap, s.mode = path, Enforced
	// A sandbox like those it will make, as the users it will make them as.
	cmd, err := s.command(Spec{Name: "socle-sandbox-check", Argv: []string{"true"}, HostRoot: true})
	if err == nil {
		var out []byte
		out, err = cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		return &Sandbox{mode: Refused, reason: fmt.Sprintf("%s cannot make a sandbox here (%v): %s", path, err, howto)}
	}
	s.reason = "replicas and builds run in bubblewrap sandboxes (" + path + ")"
	if s.root {
		s.reason += ", each app as a user of its own"
	}
	return s
}

// Mode returns the sandbox's mode.
func (s *Sandbox) Mode() Mode { return s.mode }

// Message says what the mode means here: the reason of a refusal and what to
// do about it, or what the insecure mode exposes.
func (s *Sandbox) Message() string { return s.reason }

// Enabled reports whether commands run sandboxed.
func (s *Sandbox) Enabled() bool { return s.mode == Enforced }

// Ready returns nil when commands may run (sandboxed or not), and the reason
// of the refusal otherwise.
func (s *Sandbox) Ready() error {
	if s.mode == Refused {
		return errors.New("no sandbox for apps on this machine: " + s.reason)
	}
	return nil
}

// PerAppUsers reports whether each sandbox runs as a user of its own
// (socle runs as root).
func (s *Sandbox) PerAppUsers() bool { return s.mode == Enforced && s.root }

// Base and range of the users of sandboxes: above the ids Debian gives to
// people and to subordinate id ranges of rootless containers (100000 +
// 65536 per user), in a range nobody allocates by default.
const (
	uidBase  = 0x7e000000
	uidRange = 1 << 20
)

// UserOf returns the uid (and gid, equal) that the sandboxes of name run as
// when socle is root: a fixed base plus a stable hash of the name.
func UserOf(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return uidBase + h.Sum32()%uidRange
}

// Owner returns the uid and gid that the sandboxes of name run as outside
// their namespaces, and whether it differs from socle's (files a sandbox
// must write are then given to it with Chown).
func (s *Sandbox) Owner(name string) (uid, gid int, own bool) {
	if s.PerAppUsers() {
		u := int(UserOf(name))
		return u, u, true
	}
	return os.Geteuid(), os.Getegid(), false
}

// Chown gives the tree at path to the user of name's sandboxes, when they
// run as one of their own: the directories a sandbox writes.
func (s *Sandbox) Chown(name, path string) error {
	uid, gid, own := s.Owner(name)
	if !own {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// Spec is a command to run in a sandbox.
type Spec struct {
	// Name is whose sandbox it is: its user derives from it (UserOf).
	Name string
	// Argv is the command inside the sandbox: Argv[0] a path in the
	// sandbox's view, or a name looked for along PATH.
	Argv []string
	// Env is the command's whole environment (and bwrap's: a process is
	// found by a variable of it).
	Env []string
	// Dir is the working directory inside the sandbox ("/" if empty).
	Dir string
	// Root is a directory (an unpacked image) whose entries make the
	// sandbox's root, read-only. Top-level directories of the host that it
	// lacks (SystemDirs) are the host's, read-only, so that the host's
	// loader and interpreters still run its files.
	Root string
	// HostRoot makes the host's whole tree the sandbox's root, read-only
	// (builds: the host's toolchain), instead of Root.
	HostRoot bool
	// Hide are host directories replaced by empty ones (socle's data
	// directory) with HostRoot.
	Hide []string
	// Writable are host directories bound read-write at their own path,
	// after Hide: a build's work and cache directories. They must be
	// reachable by the sandbox's user: give them to it with Chown.
	Writable []string
	// Die makes the sandbox die with its parent (builds and probes; never
	// replicas, which outlive a crash of socle).
	Die bool
}

// SystemDirs are the top-level directories of the host that a sandbox of
// an image gets when the image lacks them.
var SystemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"}

// reserved are the top-level names of a sandbox that an image cannot
// provide.
var reserved = map[string]bool{"proc": true, "dev": true, "tmp": true, "sys": true}

// Command returns the command that runs spec: in a sandbox if s is
// Enforced, as a plain process (Insecure, with Root's files at their host
// paths) otherwise. Refused is an error. The command is in a process
// group of its own (Setpgid): killing the group kills the sandbox and
// everything in it. Set Stdin, Stdout, Stderr before starting it.
func (s *Sandbox) Command(spec Spec) (*exec.Cmd, error) {
	switch s.mode {
	case Refused:
		return nil, s.Ready()
	case Insecure:
		return plain(spec), nil
	}
	return s.command(spec)
}

// plain is spec without a sandbox: Root's paths are the host's under Root.
func plain(spec Spec) *exec.Cmd {
	argv0, dir := spec.Argv[0], spec.Dir
	if spec.Root != "" {
		if filepath.IsAbs(argv0) && !hostDirOf(spec.Root, argv0) {
			argv0 = InRoot(spec.Root, argv0)
		}
		dir = InRoot(spec.Root, cmpOr(dir, "/"))
	}
	cmd := exec.Command(argv0, spec.Argv[1:]...)
	cmd.Args[0] = spec.Argv[0]
	cmd.Env, cmd.Dir = spec.Env, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.Die {
		dieWithParent(cmd.SysProcAttr)
	}
	return cmd
}

// InRoot returns name, a path inside root, as a path of the host.
func InRoot(root, name string) string {
	return filepath.Join(root, filepath.Clean("/"+name))
}

// hostDirOf reports whether the absolute path name is, in the sandbox of
// image root, one of the host's (under a system directory the image lacks).
func hostDirOf(root, name string) bool {
	top := "/" + strings.SplitN(strings.TrimPrefix(filepath.Clean(name), "/"), "/", 2)[0]
	for _, d := range SystemDirs {
		if d == top {
			_, err := os.Lstat(filepath.Join(root, top))
			return errors.Is(err, fs.ErrNotExist)
		}
	}
	return false
}

// Visible reports whether the host file at path is visible at the same path
// in the sandbox of image root: it is under a system directory the image
// lacks. (A file of the image is visible at its path inside the image.)
func Visible(root, path string) bool { return hostDirOf(root, path) }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// command builds the bwrap command line of spec.
func (s *Sandbox) command(spec Spec) (*exec.Cmd, error) {
	uid, gid, own := s.Owner(spec.Name)
	args := []string{
		"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--uid", fmt.Sprint(uid), "--gid", fmt.Sprint(gid),
		"--hostname", "sandbox",
	}
	if spec.Die {
		args = append(args, "--die-with-parent")
	}
	switch {
	case spec.HostRoot:
		args = append(args, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp")
		for _, h := range spec.Hide {
			args = append(args, "--tmpfs", h)
		}
		for _, w := range spec.Writable {
			args = append(args, "--bind", w, w)
		}
	case spec.Root != "":
		entries, err := os.ReadDir(spec.Root)
		if err != nil {
			return nil, err
		}
		have := map[string]bool{}
		for _, e := range entries {
			name := e.Name()
			have["/"+name] = true
			if reserved[name] {
				continue
			}
			src, dst := filepath.Join(spec.Root, name), "/"+name
			if e.Type()&fs.ModeSymlink != 0 {
				target, err := os.Readlink(src)
				if err != nil {
					return nil, err
				}
				args = append(args, "--symlink", target, dst)
				continue
			}
			args = append(args, "--ro-bind", src, dst)
		}
		for _, d := range SystemDirs {
			if have[d] {
				continue
			}
			fi, err := os.Lstat(d)
			switch {
			case err != nil:
			case fi.Mode()&fs.ModeSymlink != 0:
				target, err := os.Readlink(d)
				if err != nil {
					return nil, err
				}
				args = append(args, "--symlink", target, d)
			default:
				args = append(args, "--ro-bind", d, d)
			}
		}
		args = append(args, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--remount-ro", "/")
	default:
		return nil, errors.New("sandbox: neither Root nor HostRoot")
	}
	args = append(args, "--chdir", cmpOr(spec.Dir, "/"), "--")
	args = append(args, spec.Argv...)
	cmd := exec.Command(s.bwrap, args...)
	cmd.Env = spec.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if own {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	return cmd, nil
}

// Reachable tells why the sandbox of name cannot reach path (bind it), if
// it cannot: when sandboxes run as users of their own, every directory
// above path must be searchable by others.
func (s *Sandbox) Reachable(name, path string) error {
	if !s.PerAppUsers() {
		return nil
	}
	for dir := filepath.Dir(filepath.Clean(path)); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("the sandbox's user (uid %d) cannot reach %s: %s is not searchable by others (chmod o+x %s, or choose a data directory under searchable ones)", UserOf(name), path, dir, dir)
		}
		if dir == "/" {
			return nil
		}
	}
}

// Limits says whether the resource limits of replicas (Score
// resources.limits) are enforced here, with what, or why not.
func (s *Sandbox) Limits() string {
	if runtime.GOOS != "linux" {
		return cgroup.Detect().Message() // not on this system at all
	}
	if !s.Enabled() {
		return "resources.limits are not enforced: replicas run without a sandbox"
	}
	return cgroup.Detect().Message() + " (builds and exec probes are not limited)"
}

// Cgroups returns the hierarchy in which the replicas run in this sandbox
// get their limits, or nil if there is none: the sandbox is off or
// refused, or limits are not enforced here (Limits says why).
func (s *Sandbox) Cgroups() *cgroup.Hierarchy {
	if h := cgroup.Detect(); s.Enabled() && h.Version() != cgroup.None {
		return h
	}
	return nil
}
