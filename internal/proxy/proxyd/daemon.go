package proxyd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/proxy"
)

// Protocol is the version of the control protocol this build speaks: the
// prefix of its paths (/v1/...).
const Protocol = 1

// StateFile is the route table's file in the data directory, the same the
// in-process proxy keeps, so that switching between the two keeps routes.
const StateFile = "proxy.json"

// Dir is the directory of the proxy's control sockets, record and log in
// the data directory; mode 0700.
const Dir = "proxy"

// Info is what GET /v1/info answers.
type Info struct {
	// PID is the proxy process's.
	PID int `json:"pid"`
	// Protocols are the control protocol versions it speaks.
	Protocols []int `json:"protocols"`
	// Build identifies the binary it runs (see [BuildID]).
	Build string `json:"build"`
	// Addr is the address of the listening socket.
	Addr string `json:"addr"`
	// TLSAddr is the address of the HTTPS listening socket, if any.
	TLSAddr string `json:"tlsAddr,omitempty"`
}

// Config is what [Run] serves.
type Config struct {
	// Data is socle's data directory: the state file and Dir are in it.
	Data string
	// Listener is the proxy's listening socket.
	Listener net.Listener
	// Logger receives the proxy's log.
	Logger *slog.Logger
	// Ready, when set, is called once the proxy serves and its control
	// socket listens, with the socket's path.
	Ready func(socket string)
	// Edge is the access log, body limit and trusted proxies.
	Edge Edge
	// TLSListener, when set, is the HTTPS listening socket, served with
	// the certificates TLS says.
	TLSListener net.Listener
	TLS         TLS
	// Stderr is the access log's "stderr"; os.Stderr when nil.
	Stderr io.Writer
}

// Main is `socle proxy`: it parses args, serves until SIGTERM, SIGINT or
// POST /v1/stop, and returns the process's exit code.
//
//	socle proxy --data DIR [--addr HOST:PORT | --listen-fd N] [--ready-fd N]
//	    [--tls-addr HOST:PORT | --tls-listen-fd N] [--tls-certs DIR] [--acme-envs ENV,...]
//
// socle starts it with --listen-fd (the socket it made) and --ready-fd (a
// pipe the proxy writes its control socket's path to once it serves).
// Started by hand with --addr it listens itself; socle then adopts it like
// any other.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("socle proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", ".socle", "socle's data directory")
	addr := fs.String("addr", "127.0.0.1:7080", "where to listen, without --listen-fd")
	listenFD := fs.Int("listen-fd", -1, "serve on this inherited listening socket")
	readyFD := fs.Int("ready-fd", -1, "write the control socket's path to this inherited descriptor once ready")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	tlsListenFD := fs.Int("tls-listen-fd", -1, "serve HTTPS on this inherited listening socket")
	var edge Edge
	edge.Register(fs)
	var tlsCfg TLS
	tlsCfg.Register(fs, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "socle proxy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	check := tlsCfg
	if *tlsListenFD >= 0 {
		check.Addr = "inherited"
	}
	if err := check.Check(""); err != nil {
		fmt.Fprintf(stderr, "socle proxy: %v\n", err)
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "socle proxy: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})).With("component", "proxy", "pid", os.Getpid())
	var ln net.Listener
	var err error
	if *listenFD >= 0 {
		f := os.NewFile(uintptr(*listenFD), "listener")
		ln, err = net.FileListener(f)
		f.Close()
		if err != nil {
			err = fmt.Errorf("--listen-fd %d: %w", *listenFD, err)
		}
	} else {
		ln, err = net.Listen("tcp", *addr)
	}
	if err != nil {
		log.Error("socle proxy: listening", "err", err)
		return 1
	}
	var tlsLn net.Listener
	if *tlsListenFD >= 0 {
		f := os.NewFile(uintptr(*tlsListenFD), "tls listener")
		tlsLn, err = net.FileListener(f)
		f.Close()
		if err != nil {
			err = fmt.Errorf("--tls-listen-fd %d: %w", *tlsListenFD, err)
		}
	} else if tlsCfg.Addr != "" {
		tlsLn, err = net.Listen("tcp", tlsCfg.Addr)
	}
	if err != nil {
		ln.Close()
		log.Error("socle proxy: listening for HTTPS", "err", err)
		return 1
	}
	var ready func(string)
	if *readyFD >= 0 {
		f := os.NewFile(uintptr(*readyFD), "ready")
		ready = func(socket string) {
			fmt.Fprintln(f, socket)
			f.Close()
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// socle's terminal may go away; the proxy stays.
	signal.Ignore(syscall.SIGHUP)
	if err := Run(ctx, Config{Data: *data, Listener: ln, Logger: log, Ready: ready, Edge: edge, Stderr: stderr,
		TLSListener: tlsLn, TLS: tlsCfg}); err != nil {
		log.Error("socle proxy", "err", err)
		return 1
	}
	return 0
}

// Run serves the proxy on cfg.Listener and the control protocol on a Unix
// socket in the data directory until ctx ends or socle asks it to stop;
// then it stops accepting, waits for the requests in flight (30s at most)
// and returns. It closes cfg.Listener.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	dir := filepath.Join(cfg.Data, Dir)
	if cfg.TLSListener != nil {
		// Closed with cfg.Listener, on any return.
		defer cfg.TLSListener.Close()
	}
	if err := secureDir(dir); err != nil {
		cfg.Listener.Close()
		return err
	}
	reg := prometheus.NewRegistry()
	opts := proxy.Options{StateFile: filepath.Join(cfg.Data, StateFile), Registry: reg, Logger: log}
	stderr := cfg.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	accessLog, err := cfg.Edge.Apply(&opts, stderr)
	if err != nil {
		cfg.Listener.Close()
		return err
	}
	if accessLog != nil {
		defer accessLog.Close()
	}
	if err := cfg.TLS.Apply(&opts, cfg.Data); err != nil {
		cfg.Listener.Close()
		return err
	}
	if cfg.TLSListener != nil {
		if opts.TLS == nil {
			cfg.Listener.Close()
			return errors.New("an HTTPS listener without certificates (--tls-certs, --acme-envs)")
		}
	}
	p, err := proxy.New(opts)
	if err != nil {
		cfg.Listener.Close()
		return err
	}
	defer p.Close()
	socket := filepath.Join(dir, "proxy-"+strconv.Itoa(os.Getpid())+".sock")
	ctl, err := listenControl(socket)
	if err != nil {
		cfg.Listener.Close()
		return err
	}
	defer os.Remove(socket)

	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	build, _ := BuildID()
	d := &daemon{p: p, reg: reg, ln: cfg.Listener, tlsLn: cfg.TLSListener, log: log, stop: stopServing,
		info: Info{PID: os.Getpid(), Protocols: []int{Protocol}, Build: build, Addr: cfg.Listener.Addr().String()}}
	if cfg.TLSListener != nil {
		d.info.TLSAddr = cfg.TLSListener.Addr().String()
	}
	ctlSrv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
	ctlDone := make(chan struct{})
	go func() {
		defer close(ctlDone)
		if err := ctlSrv.Serve(ctl); !errors.Is(err, http.ErrServerClosed) {
			log.Error("control socket", "err", err)
		}
	}()
	served := make(chan error, 2)
	go func() { served <- p.Serve(serveCtx, cfg.Listener) }()
	if cfg.TLSListener != nil {
		go func() { served <- p.ServeTLS(serveCtx, cfg.TLSListener) }()
	}
	log.Info("proxy serving", "addr", d.info.Addr, "tls_addr", d.info.TLSAddr, "control", socket, "build", build)
	if cfg.Ready != nil {
		cfg.Ready(socket)
	}
	err = <-served
	if cfg.TLSListener != nil {
		// Both stop together: a listener's end stops the other.
		stopServing()
		err = errors.Join(err, <-served)
	}
	log.Info("proxy stopped serving")
	// The control socket answers until the requests in flight are done:
	// socle may still read stats meanwhile.
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ctlSrv.Shutdown(shut)
	<-ctlDone
	return err
}

// secureDir makes dir, mode 0700, and refuses one that others may enter
// or that another user owns.
func secureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s: owned by uid %d, not %d", dir, st.Uid, os.Geteuid())
	}
	return nil
}

// daemon is the state of one Run.
type daemon struct {
	p     *proxy.Proxy
	reg   *prometheus.Registry
	ln    net.Listener
	tlsLn net.Listener // nil without HTTPS
	log   *slog.Logger
	info  Info
	stop  context.CancelFunc

	stopOnce sync.Once
}

// errorBody is the body of a control call's error.
type errorBody struct {
	Error string `json:"error"`
	// Code is "unhealthy", "not_drained", "invalid", "not_found" or
	// "internal".
	Code string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
