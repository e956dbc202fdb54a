package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/plan"
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
	Poll   time.Duration
	Logger *slog.Logger
}

// DBFile is the database's name inside the data directory.
const DBFile = "socle.db"

// Server is a running socle.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   store.Store
	repo    *source.Repo
	watcher *source.Watcher
	http    *http.Server
	ln      net.Listener

	pinned map[string]*spec.Repo // revisions pinned by releases, loaded; used by the watcher's goroutine only

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
	st, err := sqlite.Open(ctx, filepath.Join(cfg.Data, DBFile))
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	sum := sha256.Sum256([]byte(cfg.Repo))
	repo, err := source.Open(ctx, source.Options{URL: cfg.Repo, Branch: cfg.Branch, Dir: filepath.Join(cfg.Data, "git", hex.EncodeToString(sum[:8]))})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("opening the platform repository: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: st, repo: repo, ln: ln, pinned: map[string]*spec.Repo{}}
	s.status.Repository = cfg.Repo
	s.watcher = &source.Watcher{Repo: repo, Interval: cfg.Poll, Logger: cfg.Logger, OnRevision: s.onRevision, OnError: s.onFetchError}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Store exposes the store to the wiring of other features.
func (s *Server) Store() store.Store { return s.store }

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- s.watcher.Run(ctx) }()
	go func() {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	shut, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	_ = s.http.Shutdown(shut)
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
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
	s.mu.Lock()
	prev := s.status.Head
	s.status.FetchError = ""
	s.status.Head = &rev
	s.mu.Unlock()
	if prev != nil {
		s.recordBetween(ctx, prev.SHA, rev.SHA)
	}
	if seen, err := s.store.Revision(ctx, rev.SHA); err == nil {
		s.resume(ctx, rev, seen) // recorded before a restart: record nothing twice
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		s.log.Error("reading the store", "revision", rev.Short(), "err", err)
		return
	}
	fsys, err := s.repo.Files(rev.SHA)
	if err != nil {
		s.log.Error("reading revision", "revision", rev.Short(), "err", err)
		return
	}
	repo, problems := spec.Load(fsys)
	out, err := Record(ctx, s.store, s.log, rev, repo, problems, s.appAt)
	if err != nil {
		s.log.Error("recording revision", "revision", rev.Short(), "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if problems.Errors() > 0 {
		s.status.Failing = &Failing{Revision: rev, Problems: problems}
		return
	}
	s.current = repo
	s.status.Failing = nil
	s.status.LastGood = &rev
	s.status.LastPlan = &PlanRef{ID: out.PlanID, Summary: out.Plan.Summary}
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
		last, err := s.store.LastGoodRevision(ctx)
		if err != nil {
			return // no good revision yet
		}
		if good, err = s.repo.Revision(last.SHA); err != nil {
			s.log.Error("reading the last good revision", "revision", last.SHA, "err", err)
			return
		}
	}
	fsys, err := s.repo.Files(good.SHA)
	if err != nil {
		s.log.Error("reading revision", "revision", good.Short(), "err", err)
		return
	}
	repo, _ := spec.Load(fsys)
	var ref *PlanRef
	if ps, err := s.store.Plans(ctx, good.SHA, 1); err == nil && len(ps) == 1 {
		ref = &PlanRef{ID: ps[0].ID, Summary: plan.Summary{Create: ps[0].Create, Update: ps[0].Update, Delete: ps[0].Delete, Unchanged: ps[0].Unchanged}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = repo
	s.status.LastGood = &good
	s.status.LastPlan = ref
	if seen.Valid {
		s.status.Failing = nil
	}
}

// appAt loads an app as it was at a pinned revision. Only a few revisions
// are pinned at any time, so loaded revisions are kept (a handful at most).
func (s *Server) appAt(app, revision string) *spec.App {
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
