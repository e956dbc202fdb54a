package stack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/socle-dev/socle/internal/spec"
)

// A run's log is what terraform printed during one plan, apply or drift
// check of an instance, each command announced by a "$ terraform <cmd>"
// line: <Dir>/<stack>/<instance>/logs/<start>-<kind>.log, the last
// keepLogs of each instance. Terraform masks the sensitive values it
// knows; the instance's secret inputs are replaced besides, as they are
// in messages, before a line reaches the file, so the log is kept in
// clear (readable by socle's user only), and what serves it redacts it
// again with what it knows. What terraform prints as JSON (its version,
// the outputs read after an apply) is never logged. A log is made
// read-only once its outcome line is written: a log still writable is
// one whose run goes on, or whose process died before it ended.
const (
	logsDir = "logs"
	// keepLogs is how many run logs each instance keeps.
	keepLogs = 20
	// MaxLog bounds one run's log; past it the rest is dropped, and the
	// log says so.
	MaxLog = 1 << 20
)

// The kinds of run a log is of.
const (
	LogPlan  = "plan"
	LogApply = "apply"
	LogDrift = "drift"
)

// LogInfo is one run log of an instance.
type LogInfo struct {
	// Name names the log among the instance's: <start>-<kind>.log.
	Name    string
	Kind    string
	Started time.Time
	Size    int64
	// Ended: the run wrote its outcome line, the last of the log.
	Ended bool
}

// runLog writes one run's log, a line at a time; safe for the concurrent
// writes of terraform's stdout and stderr.
type runLog struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	secrets []string
	partial []byte
	n       int64
	cut     bool
}

// openLog starts the log of a run of kind on f's instance, rotating the
// oldest away. A log that cannot be written does not stop the run: it is
// logged, and the run goes on without (nil, which every method accepts).
func (r *Runner) openLog(f *files, kind string, secrets []string) *runLog {
	dir := f.path(logsDir)
	lg, err := func() (*runLog, error) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		start := r.now()
		fh, err := os.OpenFile(filepath.Join(dir, stamp(start)+"-"+kind+".log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		// Two runs in the same nanosecond (a clock that stands still):
		// the second is named a nanosecond later.
		for i := 0; errors.Is(err, fs.ErrExist) && i < 100; i++ {
			start = start.Add(time.Nanosecond)
			fh, err = os.OpenFile(filepath.Join(dir, stamp(start)+"-"+kind+".log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
		if err != nil {
			return nil, err
		}
		lg := &runLog{f: fh, w: bufio.NewWriter(fh), secrets: lineSecrets(secrets)}
		lg.line(fmt.Sprintf("# %s of %s @ %s, started %s", kind, f.stack, f.instance, start.UTC().Format(time.RFC3339)))
		return lg, rotateKind(dir, kind, keepLogs)
	}()
	if err != nil {
		r.logError("starting a run's log", err, Run{Stack: f.stack, Instance: f.instance})
	}
	return lg
}

// lineSecrets are secrets as a log's lines may hold them: a secret of
// several lines (a PEM key) is written a line at a time, so each of its
// lines long enough to mean something is replaced on its own.
func lineSecrets(secrets []string) []string {
	out := slices.Clone(secrets)
	for _, sec := range secrets {
		if !strings.ContainsAny(sec, "\r\n") {
			continue
		}
		for l := range strings.FieldsFuncSeq(sec, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if len(strings.TrimSpace(l)) >= 4 {
				out = append(out, l)
			}
		}
	}
	return out
}

// rotateKind keeps the last keep logs of kind in dir: drift checks, which
// run often, never push out the last apply's log.
func rotateKind(dir, kind string, keep int) error {
	es, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range es {
		if !e.IsDir() && strings.HasSuffix(e.Name(), "-"+kind+".log") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names[:max(0, len(names)-keep)] {
		errs = append(errs, os.Remove(filepath.Join(dir, n)))
	}
	return errors.Join(errs...)
}

// Write takes what terraform prints; complete lines are written.
func (l *runLog) Write(p []byte) (int, error) {
	if l == nil {
		return len(p), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 64<<10 { // a line without end: written as it is
		l.line(string(l.partial))
		l.partial = nil
	}
	return len(p), nil
}

// line writes one line, secrets replaced, within MaxLog. l.mu is held (or
// the log not shared yet).
func (l *runLog) line(s string) {
	if l.cut {
		return
	}
	if l.n+int64(len(s))+1 > MaxLog {
		l.cut = true
		s = fmt.Sprintf("# the log is cut here: it is over %d bytes", MaxLog)
	}
	l.write(s)
}

// write writes one line as it is but for its secrets, whatever the size.
func (l *runLog) write(s string) {
	for _, sec := range l.secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	n, _ := l.w.WriteString(strings.TrimRight(s, "\r") + "\n")
	l.n += int64(n)
	l.w.Flush() // followers read it as it comes
}

// command announces a terraform command, from terraform-exec's log line
// "running Terraform command: /path/terraform init -no-color …": its
// subcommand only (the rest names socle's files).
func (l *runLog) command(msg string) {
	if l == nil {
		return
	}
	_, cmd, ok := strings.Cut(msg, "running Terraform command: ")
	if !ok {
		return
	}
	args := strings.Fields(cmd)
	if len(args) < 2 {
		return
	}
	sub := args[1]
	for _, a := range args[2:] {
		if strings.HasPrefix(a, "-") {
			if a == "-refresh-only" {
				sub += " " + a
			}
			continue
		}
		break
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line("$ terraform " + sub)
}

// end writes how the run ended and closes the log.
func (l *runLog) end(how string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
	l.write("# " + spec.Truncate(how, 4096)) // the outcome, past a cut too
	l.w.Flush()
	l.f.Chmod(0o400) // ended: a follower reads to the end and stops
	l.f.Close()
}

// logTo sends what tf's commands print to lg from now on. terraform's
// version is read first, so that its JSON is not logged.
func logTo(ctx context.Context, tf *tfexec.Terraform, lg *runLog) {
	if lg == nil {
		return
	}
	tf.Version(ctx, false) // cached by tf; an error shows at the first command
	tf.SetStdout(lg)
	tf.SetStderr(lg)
}

// Logs lists the run logs kept of stack's instance, newest first; none
// when it never ran here.
func (r *Runner) Logs(stack, instance string) ([]LogInfo, error) {
	dir := filepath.Join(instanceDir(r.Dir, stack, instance), logsDir)
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the logs of %s @ %s: %w", stack, instance, err)
	}
	var out []LogInfo
	for _, e := range slices.Backward(es) {
		name := e.Name()
		base, ok := strings.CutSuffix(name, ".log")
		if e.IsDir() || !ok {
			continue
		}
		at, kind, ok := strings.Cut(base, "-")
		if !ok {
			continue
		}
		started, err := time.Parse(stampLayout, at)
		if err != nil {
			continue
		}
		info := LogInfo{Name: name, Kind: kind, Started: started}
		if fi, err := e.Info(); err == nil {
			info.Size, info.Ended = fi.Size(), logEnded(fi)
		}
		out = append(out, info)
	}
	return out, nil
}

// logEnded tells a log whose run wrote its outcome line.
func logEnded(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o200 == 0 }

// LogEnded reports whether the run that writes stack's instance's log
// name has written its outcome line (its last). A log of a run whose
// process died has not: with no lock held, it will grow no more either.
func (r *Runner) LogEnded(stack, instance, name string) bool {
	fi, err := os.Stat(filepath.Join(instanceDir(r.Dir, stack, instance), logsDir, filepath.Base(name)))
	return err != nil || logEnded(fi)
}

// OpenLog opens one run log of stack's instance by its name (as Logs
// lists it); fs.ErrNotExist when there is no such log.
func (r *Runner) OpenLog(stack, instance, name string) (io.ReadSeekCloser, error) {
	if name == "" || name != filepath.Base(name) || !strings.HasSuffix(name, ".log") {
		return nil, fmt.Errorf("no log %q of %s @ %s: %w", name, stack, instance, fs.ErrNotExist)
	}
	return os.Open(filepath.Join(instanceDir(r.Dir, stack, instance), logsDir, name))
}

// ended is how a plan ended, as its log's last line says it.
func (res Result) ended() string {
	switch res.Status {
	case StatusPlanned:
		return "planned: " + res.Summary.String()
	case StatusFailed:
		return fmt.Sprintf("failed (%s): %s", res.Reason, res.Message)
	}
	return strings.ToLower(string(res.Status))
}

// ended is how an apply ended, as its log's last line says it.
func (run Run) ended() string {
	switch {
	case run.Status == RunApplied && run.Destroy:
		return "destroyed: " + run.Summary.String()
	case run.Status == RunApplied:
		return "applied: " + run.Summary.String()
	}
	return fmt.Sprintf("%s (%s): %s", strings.ToLower(string(run.Status)), run.Reason, run.Message)
}

// ended is how a drift check ended, as its log's last line says it.
func (d DriftResult) ended() string {
	if d.Message != "" {
		return fmt.Sprintf("%s (%s): %s", strings.ToLower(string(d.Status)), d.Reason, d.Message)
	}
	return strings.ToLower(string(d.Status))
}
