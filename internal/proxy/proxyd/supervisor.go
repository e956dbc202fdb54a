package proxyd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/safefile"
)

// Options configure a [Supervisor].
type Options struct {
	// Data is socle's data directory.
	Data string
	// Addr is where the proxy must listen. A port of 0 takes any free
	// port, and a running proxy on any address is kept.
	Addr string
	// TLSAddr, when set, is where the proxy serves HTTPS, as Addr; its
	// socket is handed over, kept and adopted as Addr's is. Command must
	// then give the proxy its certificates (TLS.Args).
	TLSAddr string
	// Command runs `socle proxy`: the binary and its first arguments;
	// the supervisor appends --data, --listen-fd and --ready-fd.
	Command []string
	// Logger receives the supervisor's log; the proxy process's own log
	// goes to <data>/proxy/proxy.log.
	Logger *slog.Logger
	// Registry, when set, receives socle_proxy_up,
	// socle_proxy_restarts_total and socle_proxy_restart_gap_seconds.
	Registry prometheus.Registerer
	// OnRestart, when set, is called after each restart of a proxy
	// process that died.
	OnRestart func(Restart)
}

// Restart is one restart of a proxy process that died.
type Restart struct {
	// Died is the pid of the process that died; PID the new one's.
	Died, PID int
	// Gap is the time from the death (as the supervisor saw it) to the
	// new process serving. The listening socket stayed open meanwhile:
	// connections waited in its queue, none was refused.
	Gap time.Duration
}

// readyTimeout bounds the start of a proxy process.
const readyTimeout = 30 * time.Second

// Supervisor starts or adopts socle's proxy process, restarts it when it
// dies, and replaces it when it runs another build. See the package's doc.
type Supervisor struct {
	opts   Options
	log    *slog.Logger
	dir    string
	build  string
	client *Client
	// ln is socle's descriptor of the listening socket: while socle holds
	// it the socket stays open, whatever becomes of the proxy process.
	ln   *os.File
	addr string
	// tlsLn is socle's descriptor of the HTTPS listening socket, nil
	// without one.
	tlsLn   *os.File
	tlsAddr string

	ctx    context.Context // ends at Stop or Detach: no more restarts
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	cur *proc

	up       prometheus.Gauge
	restarts prometheus.Counter
	gap      prometheus.Gauge
}

// proc is one proxy process.
type proc struct {
	PID    int    `json:"pid"`
	Ticks  uint64 `json:"startTicks"`
	Socket string `json:"socket"`
	Build  string `json:"build"`
	Addr   string `json:"addr"`
	// TLSAddr is the HTTPS socket's address, empty without one.
	TLSAddr string `json:"tlsAddr,omitempty"`

	exited  <-chan struct{}
	readyAt time.Time
}

// recordFile is the record of the proxy process socle runs, in Dir.
const recordFile = "process.json"

// Start adopts the proxy process that serves for the data directory, or
// starts one, and watches it. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Supervisor, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Command) == 0 {
		return nil, errors.New("proxy process: no command")
	}
	s := &Supervisor{opts: opts, log: opts.Logger, dir: filepath.Join(opts.Data, Dir),
		up:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "socle_proxy_up", Help: "1 when socle's proxy process answers on its control socket."}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "socle_proxy_restarts_total", Help: "Restarts of socle's proxy process after it died."}),
		gap:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "socle_proxy_restart_gap_seconds", Help: "Time from the last death of the proxy process to its successor serving."}),
	}
	if err := secureDir(s.dir); err != nil {
		return nil, err
	}
	var err error
	if s.build, err = BuildID(); err != nil {
		return nil, fmt.Errorf("proxy process: this binary's build: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.start(ctx); err != nil {
		s.cancel()
		if s.ln != nil {
			s.ln.Close()
		}
		if s.tlsLn != nil {
			s.tlsLn.Close()
		}
		return nil, err
	}
	if opts.Registry != nil {
		for _, c := range []prometheus.Collector{s.up, s.restarts, s.gap} {
			if err := opts.Registry.Register(c); err != nil {
				s.Detach()
				return nil, fmt.Errorf("registering proxy process metrics: %w", err)
			}
		}
	}
	s.up.Set(1)
	s.wg.Go(s.watch)
	return s, nil
}

// start adopts or starts the proxy process.
func (s *Supervisor) start(ctx context.Context) error {
	old, err := s.find(ctx)
	if err != nil {
		return err
	}
	if old != nil && (!addrFits(s.opts.Addr, old.Addr) || (s.opts.TLSAddr == "") != (old.TLSAddr == "") || s.opts.TLSAddr != "" && !addrFits(s.opts.TLSAddr, old.TLSAddr)) {
		s.log.Warn("the proxy process listens elsewhere: stopping it", "pid", old.PID, "addr", old.Addr, "want", s.opts.Addr,
			"tls_addr", old.TLSAddr, "want_tls", s.opts.TLSAddr)
		s.stopOld(ctx, old)
		s.ln.Close()
		if s.tlsLn != nil {
			s.tlsLn.Close()
		}
		s.ln, s.tlsLn, s.tlsAddr, old = nil, nil, "", nil
	}
	if old == nil {
		var err error
		if s.ln, s.addr, err = listenFile(s.opts.Addr); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		if s.opts.TLSAddr != "" {
			if s.tlsLn, s.tlsAddr, err = listenFile(s.opts.TLSAddr); err != nil {
				return fmt.Errorf("proxy: HTTPS: %w", err)
			}
		}
		p, err := s.spawn(ctx)
		if err != nil {
			return err
		}
		s.log.Info("proxy process started", "pid", p.PID, "addr", s.addr)
		s.cur = p
	} else if old.Build != s.build {
		// Another build: a hand-off on the same socket, then the old
		// process drains and exits.
		p, err := s.spawn(ctx)
		if err != nil {
			return fmt.Errorf("replacing the proxy process %d of another build: %w", old.PID, err)
		}
		s.log.Info("proxy process of another build replaced, on the same listening socket", "old_pid", old.PID, "old_build", old.Build,
			"pid", p.PID, "build", p.Build, "addr", s.addr)
		s.cur = p
		s.stopOld(ctx, old)
	} else {
		s.log.Info("proxy process adopted", "pid", old.PID, "addr", s.addr)
		s.cur = old
	}
	s.client = NewClient(s.cur.Socket, s.log)
	if err := s.client.Refresh(ctx); err != nil {
		return fmt.Errorf("reading the proxy process's routes: %w", err)
	}
	return s.saveRecord(s.cur)
}

// find returns the proxy process that runs for the data directory, with
// socle's descriptor of its listening socket in s.ln; nil if none does.
// The recorded process is tried first, by its pid and start time; then
// any other socket in Dir (a process whose record was lost, or one started
// by hand). Other live proxy processes are asked to stop; sockets nobody
// listens on are removed.
func (s *Supervisor) find(ctx context.Context) (*proc, error) {
	var rec proc
	if b, err := os.ReadFile(filepath.Join(s.dir, recordFile)); err == nil {
		if err := json.Unmarshal(b, &rec); err != nil {
			s.log.Warn("proxy process record unreadable: ignored", "file", filepath.Join(s.dir, recordFile), "err", err)
			rec = proc{}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	sockets, _ := filepath.Glob(filepath.Join(s.dir, "proxy-*.sock"))
	if rec.Socket != "" {
		sockets = slices.DeleteFunc(sockets, func(p string) bool { return p == rec.Socket })
		sockets = append([]string{rec.Socket}, sockets...)
	}
	var found *proc
	for _, socket := range sockets {
		p, ln, err := s.adopt(ctx, socket)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist):
			os.Remove(socket) // its process is gone
		case err != nil:
			s.log.Warn("proxy process not adopted", "socket", socket, "err", err)
		case rec.PID != 0 && p.PID == rec.PID && p.Ticks != rec.Ticks:
			// The same pid, another process: not the one recorded.
			s.log.Warn("proxy process not adopted: its start time is not the one recorded", "pid", p.PID)
			ln.Close()
		case found == nil:
			found, s.ln, s.addr = p, ln, p.Addr
			if p.TLSAddr != "" {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				s.tlsLn, _, err = fetchListenerAt(cctx, socket, "/v1/tls-listener")
				cancel()
				if err != nil {
					// Restarted, it could not serve HTTPS: replaced.
					s.log.Warn("proxy process: its HTTPS socket could not be taken: replacing it", "pid", p.PID, "err", err)
					found.TLSAddr = ""
				} else {
					s.tlsAddr = p.TLSAddr
				}
			}
		default:
			s.log.Warn("a second proxy process for this data directory: stopping it", "pid", p.PID)
			ln.Close()
			s.stopOld(ctx, p)
		}
	}
	return found, nil
}

// listenFile listens on addr and returns the socket as a file, and its
// address.
func listenFile(addr string) (*os.File, string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	defer l.Close() // the file keeps the socket open
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		return nil, "", err
	}
	return f, l.Addr().String(), nil
}

// adopt checks the proxy process on socket, watches for its end and takes
// a descriptor of its listening socket.
func (s *Supervisor) adopt(ctx context.Context, socket string) (*proc, *os.File, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	f, info, err := fetchListener(cctx, socket)
	if err != nil {
		return nil, nil, err
	}
	ticks, zombie, err := startTicks(info.PID)
	if err != nil || zombie {
		f.Close()
		return nil, nil, fmt.Errorf("proxy process %d: gone", info.PID)
	}
	exited, err := watchPID(s.ctx, info.PID, ticks)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !slices.Contains(info.Protocols, Protocol) {
		// A build that speaks another protocol is replaced like any other
		// build.
		info.Build = "protocols " + fmt.Sprint(info.Protocols)
	}
	return &proc{PID: info.PID, Ticks: ticks, Socket: socket, Build: info.Build, Addr: info.Addr, TLSAddr: info.TLSAddr,
		exited: exited, readyAt: time.Now()}, f, nil
}

// addrFits reports whether a proxy listening on addr serves where socle
// was asked to, wantAddr.
func addrFits(wantAddr, addr string) bool {
	want, err := net.ResolveTCPAddr("tcp", wantAddr)
	if err != nil {
		return false
	}
	if want.Port == 0 {
		return true
	}
	have, err := net.ResolveTCPAddr("tcp", addr)
	return err == nil && have.Port == want.Port && (want.IP == nil || want.IP.IsUnspecified() && have.IP.IsUnspecified() || want.IP.Equal(have.IP))
}

// stopOld asks a proxy process to drain and exit, and waits for it up to
// its drain's grace.
func (s *Supervisor) stopOld(ctx context.Context, p *proc) {
	c := NewClient(p.Socket, s.log)
	defer c.Close()
	if err := c.Stop(ctx); err != nil {
		s.log.Warn("stopping proxy process", "pid", p.PID, "err", err)
		return
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
	case <-time.After(35 * time.Second):
		s.log.Warn("proxy process did not stop within 35s", "pid", p.PID)
	}
}

// spawn starts a proxy process on s.ln and waits until it serves.
func (s *Supervisor) spawn(ctx context.Context) (*proc, error) {
	logPath := filepath.Join(s.dir, "proxy.log")
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	args := append(slices.Clone(s.opts.Command[1:]), "--data", s.opts.Data, "--listen-fd", "3", "--ready-fd", "4")
	files := []*os.File{s.ln, w}
	if s.tlsLn != nil {
		args = append(args, "--tls-listen-fd", "5")
		files = append(files, s.tlsLn)
	}
	cmd := exec.Command(s.opts.Command[0], args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = files
	// A session of its own, and no Pdeathsig: the proxy outlives socle,
	// and a signal to socle's terminal or process group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("starting the proxy process: %w", err)
	}
	// Not reaped before Wait: its stat is there to read.
	ticks, _, err := startTicks(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	r.SetReadDeadline(time.Now().Add(readyTimeout))
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })
	line, err := bufio.NewReader(r).ReadString('\n')
	stop()
	if err != nil {
		cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("the proxy process did not start (see %s): %w", logPath, err)
	}
	return &proc{PID: cmd.Process.Pid, Ticks: ticks, Socket: strings.TrimSpace(line), Build: s.build, Addr: s.addr, TLSAddr: s.tlsAddr,
		exited: exited, readyAt: time.Now()}, nil
}

func (s *Supervisor) saveRecord(p *proc) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(filepath.Join(s.dir, recordFile), append(b, '\n'))
}

// watch restarts the proxy process whenever it dies, until Stop or
// Detach: at once, or after a backoff (100ms doubling to 10s) while it
// dies within a second of starting.
func (s *Supervisor) watch() {
	var delay time.Duration
	for {
		s.mu.Lock()
		p := s.cur
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return
		case <-p.exited:
		}
		died, diedPID := time.Now(), p.PID
		s.up.Set(0)
		os.Remove(p.Socket) // a killed process leaves it
		if died.Sub(p.readyAt) < time.Second {
			delay = min(max(2*delay, 100*time.Millisecond), 10*time.Second)
		} else {
			delay = 0
		}
		s.log.Error("the proxy process died: restarting it on the same listening socket", "pid", p.PID, "up_for", died.Sub(p.readyAt), "backoff", delay)
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(delay):
			}
			np, err := s.spawn(s.ctx)
			if err == nil {
				p = np
				break
			}
			delay = min(max(2*delay, 100*time.Millisecond), 10*time.Second)
			s.log.Error("restarting the proxy process", "err", err, "backoff", delay)
		}
		gap := time.Since(died)
		s.mu.Lock()
		s.cur = p
		s.mu.Unlock()
		s.client.retarget(p.Socket)
		if err := s.client.Refresh(s.ctx); err != nil {
			s.log.Warn("reading the new proxy process's routes", "err", err)
		}
		if err := s.saveRecord(p); err != nil {
			s.log.Warn("recording the proxy process", "err", err)
		}
		s.up.Set(1)
		s.restarts.Inc()
		s.gap.Set(gap.Seconds())
		s.log.Info("proxy process restarted", "pid", p.PID, "gap", gap)
		if s.opts.OnRestart != nil {
			s.opts.OnRestart(Restart{Died: diedPID, PID: p.PID, Gap: gap})
		}
	}
}

// Running returns the pid of the proxy process recorded for the data
// directory data, if it runs.
func Running(data string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(data, Dir, recordFile))
	if err != nil {
		return 0, false
	}
	var rec proc
	if json.Unmarshal(b, &rec) != nil || rec.PID <= 0 {
		return 0, false
	}
	ticks, zombie, err := startTicks(rec.PID)
	return rec.PID, err == nil && !zombie && ticks == rec.Ticks
}

// Client is the client of the current proxy process.
func (s *Supervisor) Client() *Client { return s.client }

// Addr is the address of the proxy's listening socket.
func (s *Supervisor) Addr() string { return s.addr }

// TLSAddr is the address of the proxy's HTTPS listening socket, empty
// without one.
func (s *Supervisor) TLSAddr() string { return s.tlsAddr }

// PID is the current proxy process's.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.PID
}

// Detach stops supervising and lets the proxy process serve on alone: the
// next socle adopts it. socle's descriptor of the listening socket is
// closed; the proxy's keeps it open.
func (s *Supervisor) Detach() {
	s.cancel()
	s.wg.Wait()
	s.ln.Close()
	if s.tlsLn != nil {
		s.tlsLn.Close()
	}
	s.client.Close()
}

// Stop stops supervising and stops the proxy process: it stops accepting,
// finishes its requests in flight (30s at most) and exits; Stop waits for
// that until ctx ends. Then the listening socket is closed.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.cancel()
	s.wg.Wait()
	defer s.client.Close()
	defer s.ln.Close()
	if s.tlsLn != nil {
		defer s.tlsLn.Close()
	}
	s.mu.Lock()
	p := s.cur
	s.mu.Unlock()
	if err := s.client.Stop(ctx); err != nil {
		return err
	}
	// s.ctx has ended: p.exited of an adopted process no longer closes,
	// so the end is watched again here.
	exited := p.exited
	if w, err := watchPID(ctx, p.PID, p.Ticks); err == nil {
		exited = w
	} else {
		return nil // already gone
	}
	select {
	case <-exited:
		os.Remove(filepath.Join(s.dir, recordFile))
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping the proxy process %d: %w", p.PID, context.Cause(ctx))
	}
}
