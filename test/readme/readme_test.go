package readme

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/syncbuf"
)

// budget bounds the whole run: compiling socle and the demo's three apps on
// a loaded two-core machine with cold caches takes minutes.
const budget = 20 * time.Minute

// stopWait bounds socle's shutdown after Ctrl-C.
const stopWait = time.Minute

// The demo's web app answers its greeting; up's banner names the
// addresses it listens on.
var (
	greeting  = "Grüezi from Alpenrose"
	apiAddr   = regexp.MustCompile(`socle is up on http://(\S+)`)
	proxyPort = regexp.MustCompile(`\.localhost:(\d+)`)
	statusCmd = regexp.MustCompile(`(?m)^ +status +(socle status .*)$`)
	webInDev  = regexp.MustCompile(`(?m)^web +dev `)
	appsLine  = regexp.MustCompile(`(?m)^ +apps +(.*)$`)
	appHost   = regexp.MustCompile(`http://([a-z0-9.-]+\.localhost):\d+`)
)

// TestFirstCommand runs the README's first command exactly as written, in a
// fresh copy of the repository (the files a clone would have: tracked ones,
// with the working tree's content), asking only for free ports, and waits
// for web.dev.localhost to answer with the demo's page. It then runs the
// README's install step and the status command up printed, stops socle as
// a person does (Ctrl-C), and checks that the copy holds nothing new but
// the ignored .socle, and that no app process is left running.
func TestFirstCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds socle and the demo's apps: not with -short")
	}
	root := repoRoot(t)
	readme := filepath.Join(root, "README.md")
	args := readmeCommand(t, readme)
	install := readmeCommand(t, readme, "go", "install")
	clone := copyRepo(t, root)

	// Within go test's -timeout too, with time left to stop socle: a test
	// binary that panics on its timeout would leave socle and its apps
	// running (go run passes no signal on).
	wait := budget
	if d, ok := t.Deadline(); ok {
		wait = min(wait, time.Until(d)-stopWait-30*time.Second)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	out := &syncbuf.Buffer{}
	cmd := exec.Command(args[0], append(args[1:], "--addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0")...)
	cmd.Dir = clone
	cmd.Env = userEnv()
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own: Ctrl-C reaches go run and the socle it runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(stopWait):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Errorf("socle did not stop within %s of Ctrl-C", stopWait)
		}
	}
	t.Cleanup(func() {
		stop()
		for _, pid := range processesUnder(clone) { // never leave an app running on the machine
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", strings.Join(args, " "), tail(out.String(), 60))
		}
	})

	// The banner says where socle and its proxy listen.
	var proxy string
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for proxy == "" {
		if m, p := apiAddr.FindStringSubmatch(out.String()), proxyPort.FindStringSubmatch(out.String()); m != nil && p != nil {
			proxy = "127.0.0.1:" + p[1]
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("%s ended before it was up: %v", strings.Join(args, " "), err)
		case <-ctx.Done():
			t.Fatalf("no banner after %s", wait)
		case <-tick.C:
		}
	}
	up := time.Since(start)

	var last string
	for {
		body, err := get(ctx, proxy, "web.dev.localhost")
		if err == nil && strings.Contains(body, greeting) {
			break
		}
		last = fmt.Sprint(body, err)
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("%s ended: %v; web.dev.localhost last answered %q", strings.Join(args, " "), err, last)
		case <-ctx.Done():
			t.Fatalf("web.dev.localhost did not answer %q within %s; it last answered %q", greeting, wait, last)
		case <-tick.C:
		}
	}
	t.Logf("%s: up after %s, web.dev.localhost answered after %s", strings.Join(args, " "), up.Round(time.Second), time.Since(start).Round(time.Second))

	// Every address the banner gives a newcomer answers, not only web's:
	// a 404 at the address socle printed reads as socle being broken.
	apps := appsLine.FindStringSubmatch(out.String())
	if apps == nil {
		t.Fatalf("up's banner has no apps line")
	}
	for _, m := range appHost.FindAllStringSubmatch(apps[1], -1) {
		for {
			_, err := get(ctx, proxy, m[1])
			if err == nil {
				break
			}
			last = err.Error()
			select {
			case err := <-exited:
				stopped = true
				t.Fatalf("%s ended: %v; %s last answered %q", strings.Join(args, " "), err, m[1], last)
			case <-ctx.Done():
				t.Fatalf("%s, which up's banner lists, did not answer within %s; it last answered %q", m[1], wait, last)
			case <-tick.C:
			}
		}
	}

	// The socle commands up prints work once the README's install step
	// has put socle on the PATH: its status command, with the admin token
	// up wrote where the README says.
	bin := t.TempDir()
	inst := exec.CommandContext(ctx, install[0], install[1:]...)
	inst.Dir, inst.Env = clone, append(userEnv(), "GOBIN="+bin)
	if b, err := inst.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(install, " "), err, b)
	}
	m := statusCmd.FindStringSubmatch(out.String())
	if m == nil || strings.ContainsAny(m[1], "$`'\"\\|&;<>(){}*?~") {
		t.Fatalf("up's banner gives no socle status command to run without a shell")
	}
	token, err := os.ReadFile(filepath.Join(clone, ".socle", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	status := strings.Fields(m[1])
	st := exec.CommandContext(ctx, filepath.Join(bin, status[0]), status[1:]...)
	st.Dir, st.Env = clone, append(userEnv(), "SOCLE_TOKEN="+strings.TrimSpace(string(token)))
	if b, err := st.CombinedOutput(); err != nil || !webInDev.Match(b) {
		t.Errorf("%s (installed by %s): %v\n%s", m[1], strings.Join(install, " "), err, b)
	}

	stop()
	if pids := processesUnder(clone); len(pids) > 0 {
		t.Errorf("processes %v still run from %s after Ctrl-C", pids, clone)
	}
	if status := git(t, clone, "status", "--porcelain", "--untracked-files=all"); status != "" {
		t.Errorf("socle changed the repository outside .socle:\n%s", status)
	}
}

// repoRoot is the top of the repository holding this test.
func repoRoot(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed (scripts/test installs it)")
	}
	return git(t, ".", "rev-parse", "--show-toplevel")
}

// shLine is a command line of the README's sh blocks, its comment cut.
type shLine struct {
	n    int // line number
	args []string
}

// commands returns the command lines of the README's sh blocks.
func commands(t *testing.T, readme string) []shLine {
	t.Helper()
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var lines []shLine
	inBlock := false
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock && line == "```sh"
		case inBlock:
			line, _, _ = strings.Cut(line, "#")
			if args := strings.Fields(line); len(args) > 0 {
				lines = append(lines, shLine{n: i + 1, args: args})
			}
		}
	}
	return lines
}

// readmeCommand returns the README's first command line that starts with
// prefix (the very first with none). The test runs it without a shell, so
// it must need none.
func readmeCommand(t *testing.T, readme string, prefix ...string) []string {
	t.Helper()
	for _, l := range commands(t, readme) {
		if len(l.args) < len(prefix) || !slices.Equal(l.args[:len(prefix)], prefix) {
			continue
		}
		if line := strings.Join(l.args, " "); strings.ContainsAny(line, "$`'\"\\|&;<>(){}*?~") {
			t.Fatalf("%s:%d: %q needs a shell; the test runs it without one", readme, l.n, line)
		}
		return l.args
	}
	t.Fatalf("%s: no command %q in a ```sh block", readme, strings.Join(prefix, " "))
	return nil
}

// copyRepo copies what a clone would hold into a new directory and commits
// it there: the files git tracks or would track (not those it ignores, such
// as a .socle of the developer's own), with the working tree's content, so
// that the test tries the code under test, committed or not. In CI, whose
// checkout is a fresh clone, that is exactly the clone.
func copyRepo(t *testing.T, root string) string {
	t.Helper()
	tmp := t.TempDir()
	// Searchable, as a newcomer's clone is, by the users socle's resource
	// servers run as when the test runs as root: their data stays in the
	// clone's .socle and goes with it.
	for _, d := range []string{tmp, filepath.Dir(tmp)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(tmp, "socle")
	list := git(t, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	n := 0
	for name := range strings.SplitSeq(list, "\x00") {
		if name == "" {
			continue
		}
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree, not yet in git
		}
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				t.Fatal(err)
			}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(to, data, fi.Mode().Perm())
			}
			if err != nil {
				t.Fatal(err)
			}
		default:
			continue // a submodule's directory: a clone would not have it either
		}
		n++
	}
	if n == 0 {
		t.Fatalf("git lists no file in %s", root)
	}
	git(t, dst, "init", "-q")
	git(t, dst, "add", "-A")
	git(t, dst, "-c", "user.name=Newcomer", "-c", "user.email=newcomer@example.com", "commit", "-q", "-m", "clone")
	return dst
}

// userEnv is the environment a user has, without socle's own variables
// (a token or server of the developer running the test). HOME and the Go
// caches stay: a newcomer has them, and CI warms them.
func userEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCLE_") {
			env = append(env, kv)
		}
	}
	return env
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("git %s in %s: %v", strings.Join(args, " "), dir, err)
	}
	return strings.TrimRight(string(out), "\n")
}

// get asks the proxy at addr for host's page.
func get(ctx context.Context, addr, host string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), err
}

// processesUnder lists the processes whose executable lies under dir: the
// apps socle runs from dir/.socle.
func processesUnder(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
