package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/artifact"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/gitwrite"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/notify"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/promotion"
	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/proxy/proxyd"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/resource"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/sopsfile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/trace"
	units "github.com/socle-dev/socle/internal/unit"
	"github.com/socle-dev/socle/internal/wiring"
)

// Config is what `socle up` starts with.
type Config struct {
	// Repo is the platform repository: a path or a file://, https:// or ssh:// URL.
	Repo string
	// Branch to follow; empty means the repository's default.
	Branch string
	// Data is the data directory: the database, socle's git mirror.
	Data string
	// Store is the database when it is not the data directory's SQLite
	// file: a postgres:// URL. Empty: <Data>/socle.db.
	Store string
	// Addr is the API's listen address.
	Addr string
	// Poll is the interval between fetches; the git webhook fetches at once.
	Poll time.Duration
	// ProxyAddr is where the built-in proxy listens for app traffic.
	ProxyAddr string
	// ProxyCommand runs `socle proxy`, the proxy's own process (the
	// binary and its first arguments: socle up passes its own executable
	// and "proxy"), which socle starts or re-adopts and supervises, and
	// which outlives socle: see internal/proxy/proxyd. nil: the proxy runs
	// inside socle's process and stops with it (socle up --proxy
	// inprocess).
	ProxyCommand []string
	// ProxyEdge is the proxy's access log, body limit and trusted
	// proxies; with ProxyCommand, its flags are there too.
	ProxyEdge proxyd.Edge
	// ProxyTLS is the proxy's HTTPS listener and certificates (off when
	// its Addr is empty); with ProxyCommand, its flags but the address
	// are there too.
	ProxyTLS proxyd.TLS
	// KeepRunning leaves the apps running when socle stops.
	KeepRunning bool
	// ApplyStacks makes the stacks' instances engine units: planned on
	// each revision in force and applied as they say (socle up sets it).
	// Off, the API lists them and nothing plans or applies them.
	ApplyStacks bool
	// ProvisionResources makes the resources workloads ask for engine
	// units, provisioned by the driver their provisioner names before the
	// apps that use them start (socle up sets it). Off, apps read made-up
	// outputs of resources that do not exist.
	ProvisionResources bool
	// Provisioners are the provisioner drivers by name; nil: the wiring's
	// (wiring.Provisioners).
	Provisioners map[string]provision.Driver
	// Resync is how often every unit is observed without a trigger.
	Resync time.Duration
	// WebhookSecret authenticates git hosts' webhooks by signature
	// (GitHub, Gitea) or token (GitLab), for hosts that cannot send a
	// bearer token; empty means webhooks need a token like any call.
	WebhookSecret string
	// Kubeconfig is the kubeconfig file of environments on Kubernetes;
	// empty means kubectl's rules ($KUBECONFIG, then ~/.kube/config).
	Kubeconfig string
	// ProgressDeadline is how long a rollout may make no progress before
	// it fails and is rolled back (default 2m).
	ProgressDeadline time.Duration
	// Demo: the repository is socle's demo (socle up without --repo):
	// where no sandbox can be made, its apps (socle's own code) run
	// without one rather than not at all, and the status says so.
	Demo bool
	// InsecureNoSandbox runs apps' replicas and builds without a sandbox,
	// as socle's user (socle up --insecure-no-sandbox); the status says
	// so. Off, they run in bubblewrap sandboxes (package sandbox), and
	// where none can be made socle starts none and says why.
	InsecureNoSandbox bool
	// Scale tunes the autoscaler.
	Scale  replicas.ScalePolicy
	Logger *slog.Logger
	// Clock is socle's time, which gates, soaks, freezes and backoffs
	// read; the system's when nil. Tests move it (socle up --clock-file).
	Clock clock.Clock
	// AgeIdentities is a file of age identities that decrypt the apps'
	// secret files, beside those of <data>/age/*.txt; socle never writes
	// them to Git.
	AgeIdentities string
	// LeaseTTL is how long a lease of a shared store (PostgreSQL) lasts
	// without renewal: a socle that stops renewing (killed, paused, cut
	// off) is taken over within it and a third of it (the waiting socles
	// ask again every third). 0: defaultLeaseTTL.
	LeaseTTL time.Duration
}

// defaultLeaseTTL is the lease TTL on a shared store: a dead holder is
// taken over within 10 + 10/3 s, under the 15 s that a load balancer's
// health checks and the users' patience allow.
const defaultLeaseTTL = 10 * time.Second

// DBFile is the database's name inside the data directory.
const DBFile = wiring.DBFile

// Server is a running socle.
type Server struct {
	cfg Config
	log *slog.Logger
	// accessLog is the in-process proxy's access log file, if any.
	accessLog io.Closer
	// leases hands the jobs the lease of their scope; release gives up
	// what the process claimed for its life (the data directory), last.
	leases  lease.Leaser
	holder  lease.Holder
	release func()
	// sandbox runs the apps' replicas and builds (Config.InsecureNoSandbox).
	sandbox *sandbox.Sandbox
	store   store.Store
	stores  *wiring.Stores // under store: its file is checked for readiness
	hub     *hub           // hands new events to the event streams
	units   *unitStore     // the store the engine and the unit kinds write through, fenced by their lease
	// leaseEpoch is the fencing token of the platform lease while this
	// process holds it, 0 otherwise (for /metrics).
	leaseEpoch atomic.Uint64
	unready    atomic.Bool
	repo       *source.Repo
	watcher    *source.Watcher
	http       *http.Server
	ln         net.Listener

	// router is the proxy the replica runtime drives: proxy in-process,
	// or the client of the proxy process that proxySup supervises.
	router        replicas.Router
	proxy         *proxy.Proxy // in-process only
	proxyLn       net.Listener // in-process only
	proxyTLSLn    net.Listener // in-process only, nil without HTTPS
	proxySup      *proxyd.Supervisor
	registry      *registry.Handler
	driver        runtime.Driver // the local runtime's: the engine runs its replicas
	engine        *reconcile.Engine
	metrics       *prometheus.Registry
	notifier      *notify.Notifier
	announce      notify.Announcer // records and notifies what the engine tells of
	costs         *cost.Service
	stacks        *stack.Runner  // nil without terraform
	resources     *resource.Kind // nil when socle provisions no resource
	provisioners  map[string]provision.Driver
	stackPolicies stackPolicies
	auth          *auth.Authenticator
	images        *images
	secret        []byte            // the data directory's secret: resource credentials derive from it
	keyring       *sopsfile.Keyring // the age identities that decrypt the apps' secret files
	secrets       secrets
	refs          *secretRefs // resolves references to secret managers (ref+vault://…)
	patterns      patterns

	// runtimeTypes are the runtime types socle is built with; runtimes
	// opens them per environment.
	runtimeTypes *runtime.Registry
	runtimes     *wiring.Drivers

	clock    clock.Clock
	pipeline *pipeline.Pipeline
	commits  *gitwrite.Writer
	promo    *promotion.Service

	// signals are the apps' golden signals, sampled from the router.
	signals *signals
}

// New opens the store and the repository and listens; Run serves.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
	}
	// Paths under the data directory are handed to builds and replicas,
	// which run elsewhere: resolved once, here.
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	cfg.Data = data
	// One socle per data directory: a second one would run every app
	// twice and write the same store.
	host, _ := os.Hostname()
	holder := lease.Holder{PID: os.Getpid(), Host: host, Addr: cfg.Addr}
	leases, release, err := wiring.Claim(ctx, cfg.Data, holder)
	if err != nil {
		return nil, err
	}
	stores, secret, err := wiring.OpenData(ctx, cfg.Data, cfg.Store, clock.Or(cfg.Clock))
	if err != nil {
		release()
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	st := stores.Store
	if l := stores.Leaser(cmp.Or(cfg.LeaseTTL, defaultLeaseTTL)); l != nil {
		// Several socles share the store: the jobs run under its lease,
		// which one of them holds at a time; the data directory's stays
		// this process's own (its git mirror, proxy, replicas).
		leases = l
	}
	sum := sha256.Sum256([]byte(cfg.Repo))
	repo, err := source.Open(ctx, source.Options{URL: cfg.Repo, Branch: cfg.Branch, Dir: filepath.Join(cfg.Data, "git", hex.EncodeToString(sum[:8]))})
	if err != nil {
		stores.Close()
		release()
		return nil, fmt.Errorf("opening the platform repository: %w", err)
	}
	s := &Server{cfg: cfg, leases: leases, holder: holder, release: release, store: st, stores: stores, repo: repo, metrics: prometheus.NewRegistry(), clock: clock.Or(cfg.Clock)}
	s.auth = &auth.Authenticator{Store: st, Now: s.clock.Now}
	// Everything socle logs goes through the redactor of secrets.
	cfg.Logger = slog.New(redactHandler{cfg.Logger.Handler(), s})
	// And every failed span's message (a collector is outside socle).
	trace.SetRedactor(func(msg string) string { return s.redactor().String(msg) })
	s.cfg.Logger, s.log = cfg.Logger, cfg.Logger
	s.hub = newHub(st, stores.WatchEvents, cfg.Logger)
	s.units = &unitStore{Store: st, scope: lease.Platform, changed: s.hub.poke}
	s.metrics.MustRegister(leaseCollector{s})
	s.hub.register(s.metrics)
	s.secret = secret
	if s.keyring, err = loadKeyring(cfg); err != nil {
		s.closeAll()
		return nil, err
	}
	s.refs = newSecretRefs(s)
	s.openStacks()
	s.runtimeTypes = wiring.Runtimes(wiring.RuntimeOptions{Kubeconfig: cfg.Kubeconfig})
	s.commits = &gitwrite.Writer{Repo: repo, Audit: st, Log: cfg.Logger, Recognize: recognize}
	// The pipeline asks promotion's gates of each pinned change; promotion
	// asks the pipeline for the revision in force.
	gates := func(ctx context.Context, repo *spec.Repo, c *plan.Change, old *plan.Unit) gate.Result {
		return s.promo.Gates(ctx, repo, c, old)
	}
	s.pipeline = pipeline.New(pipeline.Config{Store: st, Git: repo, Engine: engineApplier{s}, Gates: gates, Commits: s.commits,
		Secrets: s.keyring, References: s.refs, Load: s.load, OnInForce: func(r *spec.Repo) { s.notifier.SetPlatform(&r.Platform) }, Clock: s.clock, Log: cfg.Logger})
	if err := s.openRuntime(ctx, cfg); err != nil {
		s.closeAll()
		return nil, err
	}
	s.signals = newSignals(s.router, s.clock)
	s.holder.Addr = s.Addr() // what a shared store's leases name: the address bound
	if s.notifier, err = notify.New(notify.Options{Dir: filepath.Join(cfg.Data, "notify"), Logger: cfg.Logger, Registry: s.metrics, Events: st, Clock: s.clock}); err != nil {
		s.closeAll()
		return nil, err
	}
	s.announce = notify.Announcer{Events: st, Notifier: s.notifier, Log: cfg.Logger}
	s.promo = promotion.New(promotion.Config{Store: st, Git: repo, Commits: s.commits, Pipeline: s.pipeline, Units: appUnits{s}, Notifier: s.notifier,
		Fetch: s.Trigger, Clock: s.clock, Log: cfg.Logger})
	s.costs = &cost.Service{Store: stores.Costs, Repo: s.pipeline.Repo, Notifier: budgetAlerts{s.notifier}, Log: cfg.Logger, Now: s.clock.Now}
	s.watcher = &source.Watcher{Repo: repo, Interval: cfg.Poll, Logger: cfg.Logger, OnRevision: s.pipeline.OnRevision, OnError: s.pipeline.OnFetchError}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// openRuntime opens what runs the apps: the listeners, socle's registry and
// image builder, the proxy, the runtimes of the wiring's registry (the
// local one now, a Kubernetes driver per kubeconfig context as
// environments need them: runtimes.go) and the engine with the app kind.
func (s *Server) openRuntime(ctx context.Context, cfg Config) error {
	var err error
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return err
	}
	if cfg.ProxyAddr == "" {
		cfg.ProxyAddr = "127.0.0.1:0"
	}
	if cfg.ProxyCommand == nil {
		if pid, ok := proxyd.Running(cfg.Data); ok {
			return fmt.Errorf("proxy: a proxy process (pid %d, socle proxy) serves the apps of %s: run socle up with --proxy process to adopt it, or stop it first (kill %d)", pid, cfg.Data, pid)
		}
		if s.proxyLn, err = net.Listen("tcp", cfg.ProxyAddr); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		if cfg.ProxyTLS.Addr != "" {
			if s.proxyTLSLn, err = net.Listen("tcp", cfg.ProxyTLS.Addr); err != nil {
				return fmt.Errorf("proxy: HTTPS: %w", err)
			}
		}
	}
	reg, err := registry.Open(filepath.Join(cfg.Data, "registry"))
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	s.registry = registry.NewHandler(reg, cfg.Logger)
	s.sandbox = chooseSandbox(sandbox.Detect(), cfg)
	switch s.sandbox.Mode() {
	case sandbox.Refused:
		s.log.Error("apps will not start: no sandbox", "reason", s.sandbox.Message())
	case sandbox.Insecure:
		s.log.Warn("apps run without a sandbox", "reason", s.sandbox.Message())
	}
	builder, err := artifact.NewBuilder(artifact.Config{Dir: filepath.Join(cfg.Data, "artifacts"), Registry: reg, Host: s.ln.Addr().String(), Logger: cfg.Logger,
		Sandbox: s.sandbox, Hide: []string{cfg.Data}})
	if err != nil {
		return err
	}
	unpacker, err := artifact.NewUnpacker(filepath.Join(cfg.Data, "rootfs"), reg)
	if err != nil {
		return err
	}
	if cfg.ProxyCommand == nil {
		opts := proxy.Options{StateFile: filepath.Join(cfg.Data, proxyd.StateFile), Registry: s.metrics, Logger: cfg.Logger}
		accessLog, err := cfg.ProxyEdge.Apply(&opts, os.Stderr)
		if err != nil {
			return err
		}
		s.accessLog = accessLog
		if err := cfg.ProxyTLS.Apply(&opts, cfg.Data); err != nil {
			return err
		}
		if s.proxy, err = proxy.New(opts); err != nil {
			return err
		}
		s.router = s.proxy
	} else {
		// The proxy process keeps serving what it last had while socle is
		// away (stopped, killed, upgraded); socle takes it back here.
		s.proxySup, err = proxyd.Start(ctx, proxyd.Options{Data: cfg.Data, Addr: cfg.ProxyAddr, TLSAddr: cfg.ProxyTLS.Addr, Command: cfg.ProxyCommand,
			Logger: cfg.Logger, Registry: s.metrics})
		if err != nil {
			return err
		}
		s.router = s.proxySup.Client()
	}
	s.images = &images{builder: builder, unpacker: unpacker, repo: s.repo, appAt: s.pipeline.AppAt}
	// Kubernetes' own progress deadline and the engine's are one: the
	// cluster says a rollout is stuck, with the pods' reason, before socle
	// would give up waiting.
	progressDeadline := cmp.Or(cfg.ProgressDeadline, 2*time.Minute)
	// The app kind drives every environment's runtime as a unit runtime:
	// one that runs whole units (Kubernetes) as it is, one that runs
	// replicas (local) through socle's replica runtime, behind the proxy.
	if err := s.openResources(); err != nil {
		return err
	}
	s.runtimes = s.newRuntimes(progressDeadline, func(d runtime.Driver) runtime.UnitDriver {
		return replicas.New(replicas.Config{Driver: d, Router: s.router, Images: s.images, Registry: s.ln.Addr().String(), Secret: s.secret, Resources: s.resourceOutputs(), References: inForceRefs{s.refs}, Scale: cfg.Scale,
			ProgressDeadline: progressDeadline, Clock: s.clock, Logger: cfg.Logger})
	})
	// The local runtime is opened now: the units of an environment no
	// longer in force ran on it, and are pruned from it.
	if s.driver, err = s.runtimes.Replicas(string(spec.RuntimeLocal)); err != nil {
		return err
	}
	kind := apps.New(apps.Config{
		Store: s.units, Runtimes: unitRuntimes{s.runtimes, s.pipeline.Repo},
		Images: s.images, Clock: s.clock, Logger: cfg.Logger, ProgressDeadline: progressDeadline,
		Notes: s.releaseNotes, Author: s.releaseAuthor, OnRelease: s.onRelease, SelfHeal: s.selfHeals, OnDrift: s.onDrift,
		ResourceHash: s.resourceHash,
	})
	kinds := []reconcile.Kind{kind}
	if k := s.stackKind(); k != nil {
		kinds = append(kinds, k)
	}
	if s.resources != nil {
		kinds = append(kinds, s.resources)
	}
	s.engine, err = reconcile.New(reconcile.Config{
		Store: s.units, Kinds: kinds, Logger: cfg.Logger, Clock: s.clock, Resync: cfg.Resync,
		Keep: s.keepsOrphans, OnPhase: s.onPhase, Redact: func(b []byte) []byte { return s.redactor().JSON(b) },
	})
	return err
}

// keepsOrphans reports whether an environment keeps apps removed from Git.
func (s *Server) keepsOrphans(env string) bool {
	repo := s.pipeline.Repo()
	if repo == nil {
		return true // nothing is known yet: never stop what runs
	}
	e := repo.Environment(env)
	return e != nil && e.Prune != nil && !*e.Prune
}

// selfHeals reports whether an environment corrects drift (the default).
func (s *Server) selfHeals(env string) bool {
	repo := s.pipeline.Repo()
	if repo == nil {
		return true
	}
	e := repo.Environment(env)
	return e == nil || e.SelfHeal == nil || *e.SelfHeal
}

// onDrift records and notifies drift.
func (s *Server) onDrift(app, env, what string, corrected bool) {
	verb := "reported"
	if corrected {
		verb = "corrected"
	}
	msg := fmt.Sprintf("%s @ %s drifted from Git (%s): %s", app, env, verb, what)
	s.announce.Record(context.Background(), store.Event{Kind: "drift", App: app, Env: env, Message: msg})
	s.announce.Notify(context.Background(), notify.Event{Kind: notify.Drift, App: app, Env: env, Title: "Drift in " + env, Message: msg})
}

// Sandbox is how the apps' replicas and builds run (Config.InsecureNoSandbox).
func (s *Server) Sandbox() *sandbox.Sandbox { return s.sandbox }

// chooseSandbox is the sandbox apps run in: the machine's (detected),
// off when asked, off for the demo where none can be made.
func chooseSandbox(detected *sandbox.Sandbox, cfg Config) *sandbox.Sandbox {
	switch {
	case cfg.InsecureNoSandbox:
		return sandbox.Off()
	case detected.Mode() == sandbox.Refused && cfg.Demo:
		return sandbox.DemoOff(detected.Message())
	}
	return detected
}

// ProxyAddr is the address the proxy listens on.
func (s *Server) ProxyAddr() string {
	if s.proxySup != nil {
		return s.proxySup.Addr()
	}
	return s.proxyLn.Addr().String()
}

// ProxyTLSAddr is the address the proxy serves HTTPS on, empty without
// HTTPS.
func (s *Server) ProxyTLSAddr() string {
	if s.proxySup != nil {
		return s.proxySup.TLSAddr()
	}
	if s.proxyTLSLn == nil {
		return ""
	}
	return s.proxyTLSLn.Addr().String()
}

// Both proxies serve the replica runtime.
var (
	_ replicas.Router = (*proxy.Proxy)(nil)
	_ replicas.Router = (*proxyd.Client)(nil)
)

// gatherer gathers socle's metrics, with the proxy process's when it runs
// apart (relayed over its control socket).
func (s *Server) gatherer() prometheus.Gatherer {
	if s.proxySup != nil {
		return prometheus.Gatherers{s.metrics, s.proxySup.Client()}
	}
	return s.metrics
}

func (s *Server) closeAll() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.proxyLn != nil {
		s.proxyLn.Close()
	}
	if s.proxyTLSLn != nil {
		s.proxyTLSLn.Close()
	}
	if s.proxy != nil {
		s.proxy.Close()
	}
	if s.proxySup != nil {
		s.proxySup.Detach() // it serves on; the next socle adopts it
	}
	if s.runtimes != nil {
		s.runtimes.Close()
	}
	s.stores.Close()
	s.release()
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Store exposes the store to the wiring of other features.
func (s *Server) Store() store.Store { return s.store }

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The engine takes back what runs, and what it persisted, before it
	// is handed the recorded desired state; a unit that runs and is still
	// wanted is pruned only if Apply says it is not.
	if err := s.engine.Start(ctx); err != nil {
		s.log.Warn("starting the engine", "err", err)
	}
	s.pipeline.Apply(ctx)
	if err := s.hub.start(ctx); err != nil {
		s.log.Warn("reading the last event: the event streams start from the first", "err", err)
	}
	go s.hub.run(ctx)
	errc := make(chan error, 3)
	engineDone := make(chan struct{})
	go func() {
		s.runJobs(ctx, errc)
		close(engineDone)
	}()
	go s.signals.run(ctx)
	go func() {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go s.watchStore(ctx)
	go s.syncPauses(ctx)
	proxyDone, tlsDone := make(chan error, 1), make(chan error, 1)
	if s.proxy != nil {
		go func() { proxyDone <- s.proxy.Serve(ctx, s.proxyLn) }()
	} else {
		proxyDone <- nil // the proxy process serves on its own
	}
	if s.proxyTLSLn != nil {
		go func() { tlsDone <- s.proxy.ServeTLS(ctx, s.proxyTLSLn) }()
	} else {
		tlsDone <- nil
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	<-engineDone
	shut, done := context.WithTimeout(context.Background(), 30*time.Second)
	defer done()
	if !s.cfg.KeepRunning {
		if serr := s.runtimes.StopReplicas(shut); serr != nil {
			s.log.Warn("stopping apps", "err", serr)
		}
		s.stopResources(shut)
	}
	// Closing detaches: with KeepRunning the apps keep serving, and the
	// next start re-attaches.
	if cerr := s.runtimes.Close(); cerr != nil {
		s.log.Warn("closing runtimes", "err", cerr)
	}
	<-proxyDone
	<-tlsDone
	_ = s.http.Shutdown(shut)
	if s.proxy != nil {
		s.proxy.Close()
	}
	if s.accessLog != nil {
		s.accessLog.Close()
	}
	if s.proxySup != nil {
		if s.cfg.KeepRunning {
			// The apps keep running, and so does their proxy: the next
			// socle (an upgrade, say) adopts both.
			s.proxySup.Detach()
		} else if perr := s.proxySup.Stop(shut); perr != nil {
			s.log.Warn("stopping the proxy process", "err", perr)
		}
	}
	s.notifier.Close()
	if cerr := s.stores.Close(); err == nil {
		err = cerr
	}
	s.release() // last: nothing of this process writes the data directory any more
	return err
}

// runJobs runs the engine, the watcher, the notifier and the scheduled
// jobs while this process holds the platform lease (lease.Run), and stops
// them, each saying so, when it is lost. With SQLite, the lease is the
// data directory's, held for the process's life. With a shared store
// (PostgreSQL), it is the store's: one socle at a time runs the jobs;
// another takes over once the holder stopped renewing, and the engine's
// writes carry the lease's epoch (unitStore), refused once it is stale.
//
// The scope is the whole platform, not each environment: the engine runs
// every environment's units in one set of workers ordered by their
// dependencies (a stack's outputs feed resources and apps), the watcher
// and the pipeline record each revision's desired state of every
// environment in one transaction, and the notifier and the cost and gate
// jobs are the platform's.
func (s *Server) runJobs(ctx context.Context, errc chan<- error) {
	for {
		err := s.underLease(ctx, errc)
		if ctx.Err() != nil {
			return
		}
		// The store could not be asked for the lease (PostgreSQL down,
		// say): ask again, rather than serve without jobs for good.
		s.log.Error("taking the platform lease", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(leaseRetry):
		}
	}
}

// leaseRetry is how long runJobs waits before it asks for the lease again
// after the store failed to answer.
const leaseRetry = 2 * time.Second

// underLease runs the jobs each time this process takes the platform
// lease, until ctx ends or the lease cannot be asked for.
func (s *Server) underLease(ctx context.Context, errc chan<- error) error {
	taken := 0
	return lease.Run(ctx, s.leases, lease.Platform, s.holder, func(jctx context.Context, token uint64) error {
		s.log.Info("running the engine and the jobs under the platform lease", "epoch", token)
		s.units.hold(s.stores.Fenced(lease.Platform, token))
		s.leaseEpoch.Store(token)
		defer func() {
			s.units.drop()
			s.leaseEpoch.Store(0)
		}()
		if taken++; taken > 1 || s.stores.Shared() {
			// Another socle may have run the units since this one read
			// them: take up where it left them.
			if err := s.engine.Reload(jctx); err != nil {
				s.log.Warn("reading the units' states on taking the lease", "err", err)
			}
			s.pipeline.Apply(jctx)
		}
		var wg sync.WaitGroup
		job := func(name string, run func(context.Context) error) {
			wg.Go(func() {
				err := run(jctx)
				switch {
				case jctx.Err() != nil && ctx.Err() == nil:
					s.log.Error("the platform lease is lost: "+name+" stopped", "reason", "lease_lost", "job", name)
				case err != nil && name == "watcher":
					errc <- err
				case err != nil:
					s.log.Error(name+" stopped", "err", err)
				}
			})
		}
		job("engine", func(ctx context.Context) error { s.engine.Run(ctx); return nil })
		job("watcher", s.watcher.Run)
		job("cost-watcher", cost.NewWatcher(s.costs, s.cfg.Data).Run)
		job("notifier", s.notifier.Run)
		job("gate-recheck", func(ctx context.Context) error { s.pipeline.RecheckGates(ctx); return nil })
		wg.Wait()
		return nil
	})
}

// storeCheck is how often the server checks that its database file is the
// one it opened, besides every write and every readiness probe.
const storeCheck = 10 * time.Second

func (s *Server) watchStore(ctx context.Context) {
	tick := time.NewTicker(storeCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.ready()
		}
	}
}

// ready reports why socle cannot serve safely (nil: it can): its SQLite
// file was removed or replaced under it, so that what it writes would be
// lost at the next start; its PostgreSQL server does not answer, or lacks
// a migration this socle needs. It says so in the log, loudly, when it
// happens and when it is over.
func (s *Server) ready() error {
	err := s.stores.Check()
	if was := s.unready.Swap(err != nil); err != nil && !was {
		msg := "the database is unreachable: socle is unready until it answers again"
		switch wiring.UnreadyReason(err) {
		case "store_gone":
			msg = "the database is gone: socle is unready and refuses every write until it is restored and socle restarted"
		case "schema_behind":
			msg = "the database lacks a migration: socle is unready until it is restarted to apply it"
		}
		s.log.Error(msg, "reason", wiring.UnreadyReason(err), "err", err)
	} else if err == nil && was {
		s.log.Info("the database is back: socle is ready again")
	}
	return err
}

// engineApplier hands the pipeline's desired state to the engine, once
// the redactor knows its secrets: before the engine can log them.
type engineApplier struct{ s *Server }

func (a engineApplier) Apply(rows []store.Desired) {
	defer a.s.hub.poke()
	a.s.secretsChanged()
	a.s.rebuildRedactor()
	desired := apps.Desired(rows)
	if a.s.resources != nil {
		var res []units.Desired
		res, desired = a.s.resources.Units(a.s.pipeline.Repo(), desired)
		desired = append(desired, res...)
	}
	a.s.engine.Apply(append(desired, a.s.stackUnits()...))
}

func (a engineApplier) SetBlocked(b map[plan.Key]reconcile.Block) {
	a.s.engine.SetBlocked(apps.Blocks(b))
	a.s.hub.poke()
}

// Trigger fetches the repository now (the git webhook).
func (s *Server) Trigger() { s.watcher.Trigger() }

// repoInForce returns the loaded revision in force, nil before the first.
func (s *Server) repoInForce() *spec.Repo { return s.pipeline.Repo() }

// inForceSHA is the revision in force, "" before the first.
func (s *Server) inForceSHA() string {
	_, sha := s.pipeline.InForce()
	return sha
}
