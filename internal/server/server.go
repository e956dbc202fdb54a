package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/artifact"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/notify"
	"github.com/socle-dev/socle/internal/replicas"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime/local"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// Config is what `socle up` starts with.
type Config struct {
	// Repo is the platform repository: a path or a file://, https:// or ssh:// URL.
	Repo string
	// Branch to follow; empty means the repository's default.
	Branch string
	// Data is the data directory: the database, socle's git mirror.
	Data string
	// Addr is the API's listen address.
	Addr string
	// Poll is the interval between fetches; the git webhook fetches at once.
	Poll time.Duration
	// ProxyAddr is where the built-in proxy listens for app traffic.
	ProxyAddr string
	// KeepRunning leaves the apps running when socle stops.
	KeepRunning bool
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
	// Scale tunes the autoscaler.
	Scale  replicas.ScalePolicy
	Logger *slog.Logger
	// Clock is the server's time; the real one when nil.
	Clock Clock
}

// DBFile is the database's name inside the data directory.
const DBFile = "socle.db"

// Server is a running socle.
type Server struct {
	cfg     Config
	log     *slog.Logger
	lease   lease.Lease // the platform's: this process alone serves the data directory
	store   store.Store
	db      *sqlite.DB // under store: its file is checked for readiness
	unready atomic.Bool
	repo    *source.Repo
	watcher *source.Watcher
	http    *http.Server
	ln      net.Listener

	proxy    *proxy.Proxy
	proxyLn  net.Listener
	registry *registry.Handler
	driver   *local.Driver
	replicas *replicas.Runtime
	engine   *reconcile.Engine
	metrics  *prometheus.Registry
	notifier *notify.Notifier
	costs    *cost.Service
	auth     *auth.Authenticator
	images   *images
	secret   []byte // the data directory's secret: resource credentials derive from it
	secrets  secrets
	patterns patterns

	clock    Clock
	planMu   sync.Mutex // serialises planning: new revisions and re-plans
	replanc  chan struct{}
	rewait   chan struct{} // nextOpen moved earlier
	opensMu  sync.Mutex
	nextOpen time.Time // the earliest time a closed gate opens

	pinnedMu sync.Mutex
	pinned   map[string]*spec.Repo // revisions pinned by releases, loaded

	mu      sync.Mutex
	current *spec.Repo // the last good revision, loaded
	status  Status
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
	// twice and write the same store. The lease is the kernel's lock, which
	// a crash releases.
	le, err := platformLease(ctx, cfg)
	if err != nil {
		return nil, err
	}
	db, st, secret, err := openStore(ctx, cfg.Data)
	if err != nil {
		le.Release()
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	sum := sha256.Sum256([]byte(cfg.Repo))
	repo, err := source.Open(ctx, source.Options{URL: cfg.Repo, Branch: cfg.Branch, Dir: filepath.Join(cfg.Data, "git", hex.EncodeToString(sum[:8]))})
	if err != nil {
		st.Close()
		le.Release()
		return nil, fmt.Errorf("opening the platform repository: %w", err)
	}
	s := &Server{cfg: cfg, lease: le, store: st, db: db, repo: repo, pinned: map[string]*spec.Repo{}, metrics: prometheus.NewRegistry(),
		replanc: make(chan struct{}, 1), rewait: make(chan struct{}, 1), clock: cfg.Clock}
	if s.clock == nil {
		s.clock = realClock{}
	}
	s.auth = &auth.Authenticator{Store: st}
	// Everything socle logs goes through the redactor of secrets.
	cfg.Logger = slog.New(redactHandler{cfg.Logger.Handler(), s})
	s.cfg.Logger, s.log = cfg.Logger, cfg.Logger
	s.secret = secret
	if err := s.openRuntime(cfg); err != nil {
		s.closeAll()
		return nil, err
	}
	if s.notifier, err = notify.New(notify.Options{Dir: filepath.Join(cfg.Data, "notify"), Logger: cfg.Logger, Registry: s.metrics, Events: st}); err != nil {
		s.closeAll()
		return nil, err
	}
	s.costs = &cost.Service{Store: sqlite.NewCostStore(db), Repo: s.repoInForce, Notifier: budgetAlerts{s.notifier}, Log: cfg.Logger}
	s.status.Repository = cfg.Repo
	s.watcher = &source.Watcher{Repo: repo, Interval: cfg.Poll, Logger: cfg.Logger, OnRevision: s.onRevision, OnError: s.onFetchError}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// openRuntime opens what runs the apps: the listeners, socle's registry and
// image builder, the local runtime, the proxy and the reconciler, which
// opens a Kubernetes driver per kubeconfig context as environments need
// them (runtimes.go).
func (s *Server) openRuntime(cfg Config) error {
	var err error
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return err
	}
	if cfg.ProxyAddr == "" {
		cfg.ProxyAddr = "127.0.0.1:0"
	}
	if s.proxyLn, err = net.Listen("tcp", cfg.ProxyAddr); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	reg, err := registry.Open(filepath.Join(cfg.Data, "registry"))
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	s.registry = registry.NewHandler(reg, cfg.Logger)
	builder, err := artifact.NewBuilder(artifact.Config{Dir: filepath.Join(cfg.Data, "artifacts"), Registry: reg, Host: s.ln.Addr().String(), Logger: cfg.Logger})
	if err != nil {
		return err
	}
	unpacker, err := artifact.NewUnpacker(filepath.Join(cfg.Data, "rootfs"), reg)
	if err != nil {
		return err
	}
	if s.driver, err = local.New(local.Options{StateDir: filepath.Join(cfg.Data, "runtime"), Logger: cfg.Logger}); err != nil {
		return err
	}
	if s.proxy, err = proxy.New(proxy.Options{StateFile: filepath.Join(cfg.Data, "proxy.json"), Registry: s.metrics, Logger: cfg.Logger}); err != nil {
		return err
	}
	secret, err := dataSecret(cfg.Data)
	if err != nil {
		return err
	}
	s.images = &images{builder: builder, unpacker: unpacker, repo: s.repo, appAt: s.appAt}
	// Kubernetes' own progress deadline and the engine's are one: the
	// cluster says a rollout is stuck, with the pods' reason, before socle
	// would give up waiting.
	progressDeadline := cmp.Or(cfg.ProgressDeadline, 2*time.Minute)
	// The app kind drives every environment's runtime as a unit runtime:
	// Kubernetes' drivers, and the local runtime behind the proxy through
	// socle's replica runtime.
	s.replicas = replicas.New(replicas.Config{Driver: s.driver, Router: s.proxy, Images: s.images, Secret: secret, Scale: cfg.Scale,
		ProgressDeadline: progressDeadline, Clock: s.clock, Logger: cfg.Logger})
	kind := apps.New(apps.Config{
		Store: s.store, Runtimes: &unitRuntimes{kube: s.newKubeRuntimes(secret, progressDeadline), local: s.replicas, env: s.inForce},
		Images: s.images, Clock: s.clock, Logger: cfg.Logger, ProgressDeadline: progressDeadline,
		Notes: s.releaseNotes, Author: s.releaseAuthor, OnRelease: s.onRelease, SelfHeal: s.selfHeals, OnDrift: s.onDrift,
	})
	s.engine, err = reconcile.New(reconcile.Config{
		Store: s.store, Kinds: []reconcile.Kind{kind}, Logger: cfg.Logger, Clock: s.clock, Resync: cfg.Resync,
		Keep: s.keepsOrphans, OnPhase: s.onPhase, Redact: func(b []byte) []byte { return s.redactor().JSON(b) },
	})
	return err
}

// keepsOrphans reports whether an environment keeps apps removed from Git.
func (s *Server) keepsOrphans(env string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return true // nothing is known yet: never stop what runs
	}
	e := s.current.Environment(env)
	return e != nil && e.Prune != nil && !*e.Prune
}

// selfHeals reports whether an environment corrects drift (the default).
func (s *Server) selfHeals(env string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return true
	}
	e := s.current.Environment(env)
	return e == nil || e.SelfHeal == nil || *e.SelfHeal
}

// onDrift records and notifies drift.
func (s *Server) onDrift(app, env, what string, corrected bool) {
	verb := "reported"
	if corrected {
		verb = "corrected"
	}
	msg := fmt.Sprintf("%s @ %s drifted from Git (%s): %s", app, env, verb, what)
	s.emitEvent(context.Background(), store.Event{Kind: "drift", App: app, Env: env, Message: msg})
	s.notifyEvent(context.Background(), notify.Event{Kind: notify.Drift, App: app, Env: env, Title: "Drift in " + env, Message: msg})
}

// ProxyAddr is the address the proxy listens on.
func (s *Server) ProxyAddr() string { return s.proxyLn.Addr().String() }

func (s *Server) closeAll() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.proxyLn != nil {
		s.proxyLn.Close()
	}
	if s.proxy != nil {
		s.proxy.Close()
	}
	if s.driver != nil {
		s.driver.Close()
	}
	s.store.Close()
	s.lease.Release()
}

// platformLease takes the platform's lease of the data directory, or says
// which process holds it.
func platformLease(ctx context.Context, cfg Config) (lease.Lease, error) {
	host, _ := os.Hostname()
	le, err := (&lease.File{Dir: cfg.Data}).TryAcquire(ctx, lease.Platform, lease.Holder{PID: os.Getpid(), Host: host, Addr: cfg.Addr})
	var held *lease.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("the data directory %s is in use by another socle (%s): stop it, or give this one a data directory of its own (--data)", cfg.Data, held.Holder)
	}
	if err != nil {
		return nil, fmt.Errorf("taking the data directory's lease: %w", err)
	}
	return le, nil
}

// dataSecret returns the data directory's secret, created on first use; it
// derives credentials socle hands to apps, and never leaves the machine.
func dataSecret(data string) ([]byte, error) {
	p := filepath.Join(data, "secret.key")
	if b, err := os.ReadFile(p); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// OpenStore opens the store of a data directory as the server does, its
// secrets sealed with the directory's key: for commands that read it
// without a server (socle plan --data).
func OpenStore(ctx context.Context, data string) (store.Store, error) {
	_, st, _, err := openStore(ctx, data)
	return st, err
}

// openStore opens the database of a data directory, and the store over it
// that seals secrets with the directory's secret, which it returns too.
func openStore(ctx context.Context, data string) (*sqlite.DB, store.Store, []byte, error) {
	db, err := sqlite.Open(ctx, filepath.Join(data, DBFile))
	if err != nil {
		return nil, nil, nil, err
	}
	secret, err := dataSecret(data)
	if err == nil {
		var st store.Store
		if st, err = Sealed(db, secret); err == nil {
			return db, st, secret, nil
		}
	}
	db.Close()
	return nil, nil, nil, err
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
	s.apply(ctx)
	errc := make(chan error, 3)
	engineDone := make(chan struct{})
	go func() { s.engine.Run(ctx); close(engineDone) }()
	go func() { errc <- s.watcher.Run(ctx) }()
	go func() {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go func() {
		if err := cost.NewWatcher(s.costs, s.cfg.Data).Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("cost drop directory", "err", err)
		}
	}()
	go s.recheckGates(ctx)
	go s.watchStore(ctx)
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- s.proxy.Serve(ctx, s.proxyLn) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	<-engineDone
	shut, done := context.WithTimeout(context.Background(), 30*time.Second)
	defer done()
	if s.cfg.KeepRunning {
		s.driver.Close() // the apps keep serving; the next start re-attaches
	} else {
		if serr := s.driver.StopAll(shut); serr != nil {
			s.log.Warn("stopping apps", "err", serr)
		}
		s.driver.Close()
	}
	<-proxyDone
	_ = s.http.Shutdown(shut)
	s.proxy.Close()
	s.notifier.Close()
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	s.lease.Release() // last: nothing of this process writes the data directory any more
	return err
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

// ready reports why socle cannot serve safely (nil: it can): its database
// file was removed or replaced under it, so that what it writes would be
// lost at the next start. It says so in the log, loudly, when it happens
// and when it is over (the file moved back).
func (s *Server) ready() error {
	err := s.db.CheckFile()
	if was := s.unready.Swap(err != nil); err != nil && !was {
		s.log.Error("the database is gone: socle is unready and refuses every write until it is restored and socle restarted",
			"reason", "store_gone", "err", err)
	} else if err == nil && was {
		s.log.Info("the database file is back: socle is ready again")
	}
	return err
}

// apply hands the recorded desired state to the reconciler.
func (s *Server) apply(ctx context.Context) {
	rows, err := s.store.Desired(ctx)
	if err != nil {
		s.log.Error("reading the desired state", "err", err)
		return
	}
	// The redactor learns the new secrets before the engine can log them.
	s.secretsChanged()
	s.rebuildRedactor()
	s.engine.Apply(apps.Desired(rows))
}

// Trigger fetches the repository now (the git webhook).
func (s *Server) Trigger() { s.watcher.Trigger() }

func (s *Server) onFetchError(err error) {
	s.mu.Lock()
	s.status.FetchError = err.Error()
	s.mu.Unlock()
	s.log.Warn("fetching the platform repository", "err", err)
}

// onRevision is called serially by the watcher for every new head.
func (s *Server) onRevision(ctx context.Context, rev source.Revision) {
	// planMu first: a promotion holds it from its commit to its audit
	// record, so a revision is never looked at in between.
	s.planMu.Lock()
	defer s.planMu.Unlock()
	s.mu.Lock()
	prev := s.status.Head
	s.status.FetchError = ""
	s.status.Head = &rev
	s.mu.Unlock()
	if prev != nil {
		s.recordBetween(ctx, prev.SHA, rev.SHA)
	}
	s.recoverAudit(ctx, rev)
	s.planRevision(ctx, rev, false)
}

// planRevision validates, plans and records a revision; again is true to
// plan the revision in force once more (a gate may have opened).
func (s *Server) planRevision(ctx context.Context, rev source.Revision, again bool) {
	seen, err := s.store.Revision(ctx, rev.SHA)
	if err == nil && seen.Valid && !again {
		// A valid revision recorded without its plan: socle stopped between
		// the two. Plan it now rather than take it as applied.
		if ps, perr := s.store.Plans(ctx, rev.SHA, 1); perr == nil && len(ps) == 0 {
			again = true
		}
	}
	switch {
	case err == nil && !again:
		s.resume(ctx, rev, seen) // recorded before a restart: record nothing twice
		return
	case err != nil && !errors.Is(err, store.ErrNotFound):
		s.log.Error("reading the store", "revision", rev.Short(), "err", err)
		return
	}
	fsys, err := s.repo.Files(rev.SHA)
	if err != nil {
		s.log.Error("reading revision", "revision", rev.Short(), "err", err)
		return
	}
	repo, problems := spec.Load(fsys)
	out, err := Record(ctx, s.store, s.log, rev, fsys, repo, problems, s.appAt, s.gatesFor(ctx))
	if err != nil {
		s.log.Error("recording revision", "revision", rev.Short(), "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if problems.Errors() > 0 {
		if s.current == nil {
			// The first revision since socle started is invalid (pushed
			// while it was down): the last good one stays in force, and
			// is in the status before the failure is.
			s.mu.Unlock()
			if good, ok := s.lastGood(ctx); ok {
				s.putInForce(ctx, good, false)
			}
			s.mu.Lock()
		}
		s.status.Failing = &Failing{Revision: rev, Problems: problems}
		return
	}
	s.current = repo
	s.notifier.SetPlatform(&repo.Platform)
	s.status.Failing = nil
	s.status.LastGood = &rev
	if out.Recorded {
		s.status.LastPlan = &PlanRef{ID: out.PlanID, Summary: out.Plan.Summary}
	}
	s.mu.Unlock()
	if out.Clock {
		// A policy that reads the time denies: judge again in a minute,
		// which records something only if the verdict changed.
		s.openAt(s.clock.Now().Add(time.Minute))
	}
	s.setBlocked(out.Blocked)
	s.apply(ctx)
	s.mu.Lock()
}

// setBlocked tells the reconciler and the status which units policies block.
func (s *Server) setBlocked(b map[plan.Key]reconcile.Block) {
	s.mu.Lock()
	s.status.Blocked = s.status.Blocked[:0]
	for k, why := range b {
		s.status.Blocked = append(s.status.Blocked, BlockedUnit{App: k.App, Env: k.Env, Reason: why.Message, ReasonCode: string(why.Reason)})
	}
	slices.SortFunc(s.status.Blocked, func(a, b BlockedUnit) int { return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.App, b.App)) })
	s.mu.Unlock()
	s.engine.SetBlocked(apps.Blocks(b))
}

// recordBetween records the commits that arrived together with a new head,
// oldest first, each validated, so that every commit is a revision with its
// verdict; only the head is planned, as only the head will run.
func (s *Server) recordBetween(ctx context.Context, from, to string) {
	revs, err := s.repo.Log(ctx, from, to)
	if err != nil {
		s.log.Warn("listing new commits", "from", from, "to", to, "err", err)
		return
	}
	for i := len(revs) - 1; i >= 1; i-- { // revs[0] is the head itself
		rev := revs[i]
		s.recoverAudit(ctx, rev)
		if _, err := s.store.Revision(ctx, rev.SHA); err == nil {
			continue
		}
		fsys, err := s.repo.Files(rev.SHA)
		if err != nil {
			s.log.Warn("reading revision", "revision", rev.Short(), "err", err)
			continue
		}
		_, problems := spec.Load(fsys)
		if err := s.store.PutRevision(ctx, revisionRecord(rev, problems)); err != nil {
			s.log.Error("recording revision", "revision", rev.Short(), "err", err)
		}
	}
}

// resume restores the status of a revision recorded by an earlier run.
func (s *Server) resume(ctx context.Context, rev source.Revision, seen store.Revision) {
	good := rev
	if !seen.Valid {
		var problems spec.Problems
		_ = json.Unmarshal(seen.Problems, &problems)
		s.mu.Lock()
		s.status.Failing = &Failing{Revision: rev, Problems: problems}
		s.mu.Unlock()
		var ok bool
		if good, ok = s.lastGood(ctx); !ok {
			return
		}
	}
	s.putInForce(ctx, good, seen.Valid)
}

// lastGood returns the last valid revision recorded; false if there is
// none yet.
func (s *Server) lastGood(ctx context.Context) (source.Revision, bool) {
	last, err := s.store.LastGoodRevision(ctx)
	if err != nil {
		return source.Revision{}, false
	}
	good, err := s.repo.Revision(last.SHA)
	if err != nil {
		s.log.Error("reading the last good revision", "revision", last.SHA, "err", err)
		return source.Revision{}, false
	}
	return good, true
}

// putInForce restores a revision recorded and planned by an earlier run as
// the one in force; headValid says whether it is the head too (which then
// fails no more).
func (s *Server) putInForce(ctx context.Context, good source.Revision, headValid bool) {
	fsys, err := s.repo.Files(good.SHA)
	if err != nil {
		s.log.Error("reading revision", "revision", good.Short(), "err", err)
		return
	}
	repo, _ := spec.Load(fsys)
	var ref *PlanRef
	if ps, err := s.store.Plans(ctx, good.SHA, 1); err == nil && len(ps) == 1 {
		ref = &PlanRef{ID: ps[0].ID, Summary: plan.Summary{Create: ps[0].Create, Update: ps[0].Update, Delete: ps[0].Delete, Unchanged: ps[0].Unchanged}}
		if full, err := s.store.Plan(ctx, ps[0].ID); err == nil {
			var body PlanBody
			if json.Unmarshal(full.Body, &body) == nil {
				s.setBlocked(body.BlockedBy())
				// A gate may have opened while socle was stopped: judge
				// what waits again (recorded only if the outcome changed).
				s.Replan()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = repo
	s.notifier.SetPlatform(&repo.Platform)
	s.status.LastGood = &good
	s.status.LastPlan = ref
	if headValid {
		s.status.Failing = nil
	}
	s.mu.Unlock()
	s.apply(ctx)
	s.mu.Lock()
}

// appAt loads an app as it was at a pinned revision. Only a few revisions
// are pinned at any time, so loaded revisions are kept (a handful at most).
func (s *Server) appAt(app, revision string) *spec.App {
	s.pinnedMu.Lock()
	defer s.pinnedMu.Unlock()
	r, ok := s.pinned[revision]
	if !ok {
		if len(s.pinned) >= 16 {
			clear(s.pinned)
		}
		if fsys, err := s.repo.Files(revision); err == nil {
			if loaded, problems := spec.Load(fsys); problems.Errors() == 0 {
				r = loaded
			}
		}
		s.pinned[revision] = r // nil too: an unreadable revision is not retried
	}
	if r == nil {
		return nil
	}
	return r.App(app)
}
