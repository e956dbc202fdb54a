// Package pipeline takes each revision of the platform repository through
// validate → plan → judge → record, and keeps the revision in force: the
// last one that validated, whose recorded desired state the engine
// converges. It plans the revision in force again when something a gate or
// a policy reads changes (Replan), or when a closed gate's time comes (the
// recheck loop, on an injected clock). It owns the status of the
// repository (head, revision in force, failing revision, blocked units),
// not the API's words for it, nor the engine, nor the gates: those are
// given to it (Config).
package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/trace"
)

// Git reads the platform repository.
type Git interface {
	Files(sha string) (fs.FS, error)
	Revision(sha string) (source.Revision, error)
	Log(ctx context.Context, from, to string, paths ...string) ([]source.Revision, error)
}

// Store is what the pipeline reads and records.
type Store interface {
	DesiredReader
	ReleaseReader
	PutRevision(ctx context.Context, r store.Revision) error
	Revision(ctx context.Context, sha string) (store.Revision, error)
	LastGoodRevision(ctx context.Context) (store.Revision, error)
	ApplyDesired(ctx context.Context, revision string, set []store.Desired, remove []store.Unit, p store.Plan, events []store.Event) (int64, error)
	Plan(ctx context.Context, id int64) (store.Plan, error)
	Plans(ctx context.Context, revision string, limit int) ([]store.Plan, error)
	AppendEvent(ctx context.Context, e store.Event) (int64, error)
	AppendAudit(ctx context.Context, rec store.AuditRecord) (store.AuditRecord, error)
}

// Engine converges the recorded desired state.
type Engine interface {
	// Apply makes the desired state recorded for every unit (rows) the
	// engine's.
	Apply(rows []store.Desired)
	// SetBlocked says which units a gate or a policy holds, and why.
	SetBlocked(map[plan.Key]reconcile.Block)
}

// Commits mends the audit trail of the commits socle made (gitwrite).
type Commits interface {
	Recover(ctx context.Context, rev source.Revision)
}

// Config wires a Pipeline.
type Config struct {
	Store  Store
	Git    Git
	Engine Engine
	// Gates says which promotion gates hold a planned change; nil: none.
	Gates Gates
	// Commits recovers the audit records of socle's own commits; nil:
	// none are recovered.
	Commits Commits
	// OnInForce is told each revision put in force (the notifier's
	// targets come from it); it must not block.
	OnInForce func(*spec.Repo)
	// Load reads a revision as socle validate does: spec's loader with
	// the runtime types socle is built with (wiring.Load), which decode
	// each environment's runtime block; spec.Load (no runtime type
	// checked) when nil.
	Load func(fs.FS) (*spec.Repo, spec.Problems)
	// Secrets decrypts the apps' secret files; nil: socle holds no age
	// identity, and a unit with a secret file is Blocked.
	Secrets Decrypter
	// References resolves the references to secret managers that stand
	// for secrets' values; nil: a unit with one is Blocked.
	References Resolver
	// Clock is the time gates and policies judge at, and the recheck loop
	// waits on; the system's when nil.
	Clock clock.Clock
	Log   *slog.Logger
}

// State is where the repository stands, for the status.
type State struct {
	Head       *source.Revision
	LastGood   *source.Revision // the revision in force
	FetchError string
	Failing    *Failing
	LastPlan   *PlanRef
	// Blocked are the units a gate or a policy holds, by environment then
	// app.
	Blocked []Blocked
}

// Failing is a revision that does not validate, and why.
type Failing struct {
	Revision source.Revision
	Problems spec.Problems
}

// PlanRef names the last plan recorded.
type PlanRef struct {
	ID      int64
	Summary plan.Summary
}

// Blocked is a unit a gate or a policy holds.
type Blocked struct {
	App, Env string
	reconcile.Block
}

// Pipeline plans the revisions of the platform repository. Its methods are
// safe for concurrent use; revisions are planned one at a time.
type Pipeline struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock

	planMu sync.Mutex // serialises planning: new revisions and re-plans

	replanc  chan struct{}
	rewait   chan struct{} // nextOpen moved earlier
	opensMu  sync.Mutex
	nextOpen time.Time // the earliest time a closed gate opens

	pinnedMu sync.Mutex
	pinned   map[string]*spec.Repo // revisions pinned by releases, loaded

	mu      sync.Mutex
	current *spec.Repo // the revision in force, loaded
	state   State
	blocked map[plan.Key]reconcile.Block
}

// New returns a Pipeline; the watcher hands it revisions (OnRevision).
func New(cfg Config) *Pipeline {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Load == nil {
		cfg.Load = spec.Load
	}
	return &Pipeline{cfg: cfg, log: cfg.Log, clock: clock.Or(cfg.Clock), replanc: make(chan struct{}, 1), rewait: make(chan struct{}, 1),
		pinned: map[string]*spec.Repo{}, blocked: map[plan.Key]reconcile.Block{}}
}

// InForce returns the revision in force, loaded, and its SHA; nil and ""
// before the first.
func (p *Pipeline) InForce() (*spec.Repo, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.LastGood == nil {
		return p.current, ""
	}
	return p.current, p.state.LastGood.SHA
}

// Repo returns the revision in force, loaded; nil before the first.
func (p *Pipeline) Repo() *spec.Repo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// State returns where the repository stands.
func (p *Pipeline) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state
	st.Blocked = slices.Clone(st.Blocked)
	return st
}

// BlockedBy says why a gate or a policy holds app in env, if one does.
func (p *Pipeline) BlockedBy(app, env string) (reconcile.Block, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.blocked[plan.Key{App: app, Env: env}]
	return b, ok
}

// OnFetchError is the watcher's: fetching the repository failed.
func (p *Pipeline) OnFetchError(err error) {
	p.mu.Lock()
	p.state.FetchError = err.Error()
	p.mu.Unlock()
	p.log.Warn("fetching the platform repository", "err", err)
}

// OnRevision is the watcher's, called serially for every new head. Each
// is a trace (or goes on in the one of the request that made its commit,
// or of the webhook that announced it): its fetch, validation, plan and
// policies, then the builds and rollouts of the units it changed.
func (p *Pipeline) OnRevision(ctx context.Context, rev source.Revision) {
	p.planMu.Lock()
	defer p.planMu.Unlock()
	var handed bool
	if ctx, handed = trace.From(ctx, trace.CommitKey(rev.SHA), true); !handed {
		ctx, _ = trace.From(ctx, trace.HookKey, true)
	}
	start, end, fetched := source.Fetched(ctx)
	ctx, span := trace.StartAt(ctx, "revision", start, trace.Revision(rev.SHA), trace.String("subject", rev.Subject()))
	defer span.End()
	if fetched {
		trace.Record(ctx, "fetch", start, end, nil, trace.Revision(rev.SHA))
	}
	p.mu.Lock()
	prev := p.state.Head
	p.state.FetchError = ""
	p.state.Head = &rev
	p.mu.Unlock()
	if prev != nil {
		p.recordBetween(ctx, prev.SHA, rev.SHA)
	}
	p.recover(ctx, rev)
	p.plan(ctx, rev, false)
}

func (p *Pipeline) recover(ctx context.Context, rev source.Revision) {
	if p.cfg.Commits != nil {
		p.cfg.Commits.Recover(ctx, rev)
	}
}

// plan validates, plans and records a revision; again is true to plan the
// revision in force once more (a gate may have opened). planMu is held.
func (p *Pipeline) plan(ctx context.Context, rev source.Revision, again bool) {
	seen, err := p.cfg.Store.Revision(ctx, rev.SHA)
	if err == nil && seen.Valid && !again {
		// A valid revision recorded without its plan: socle stopped between
		// the two. Plan it now rather than take it as applied.
		if ps, perr := p.cfg.Store.Plans(ctx, rev.SHA, 1); perr == nil && len(ps) == 0 {
			again = true
		}
	}
	switch {
	case err == nil && !again:
		trace.Set(ctx, trace.Outcome("resumed"))
		p.resume(ctx, rev, seen) // recorded before a restart: record nothing twice
		return
	case err != nil && !errors.Is(err, store.ErrNotFound):
		trace.Failed(ctx, err)
		p.log.Error("reading the store", "revision", rev.Short(), "err", err)
		return
	}
	fsys, err := p.cfg.Git.Files(rev.SHA)
	if err != nil {
		trace.Failed(ctx, err)
		p.log.Error("reading revision", "revision", rev.Short(), "err", err)
		return
	}
	_, span := trace.Start(ctx, "validate", trace.Revision(rev.SHA))
	repo, problems := p.cfg.Load(fsys)
	span.SetAttributes(trace.Int("problems", problems.Errors()))
	if problems.Errors() > 0 {
		trace.Fail(span, fmt.Sprintf("%d problems", problems.Errors()))
	}
	span.End()
	out, err := Record(ctx, p.cfg.Store, p.log, rev, fsys, repo, problems, p.AppAt, p.cfg.Gates, p.cfg.Secrets, p.cfg.References, p.clock.Now())
	if err != nil {
		trace.Failed(ctx, err)
		p.log.Error("recording revision", "revision", rev.Short(), "err", err)
		return
	}
	if problems.Errors() > 0 {
		trace.Set(ctx, trace.Outcome("invalid"))
		trace.Failed(ctx, fmt.Errorf("revision %s does not validate: %d problems", rev.Short(), problems.Errors()))
		if p.Repo() == nil {
			// The first revision since socle started is invalid (pushed
			// while it was down): the last good one stays in force, and
			// is in the status before the failure is.
			if good, ok := p.lastGood(ctx); ok {
				p.putInForce(ctx, good, false)
			}
		}
		p.mu.Lock()
		p.state.Failing = &Failing{Revision: rev, Problems: problems}
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	p.current = repo
	// Planning the revision in force again says nothing of a newer head
	// that does not validate: it keeps failing.
	if p.state.Head == nil || p.state.Head.SHA == rev.SHA {
		p.state.Failing = nil
	}
	p.state.LastGood = &rev
	if out.Recorded {
		p.state.LastPlan = &PlanRef{ID: out.PlanID, Summary: out.Plan.Summary}
	}
	p.mu.Unlock()
	outcome := "unchanged" // planned again, decided the same
	if out.Recorded {
		outcome = "planned"
	}
	trace.Set(ctx, trace.Outcome(outcome), trace.Int("blocked", len(out.Blocked)))
	p.inForce(repo)
	if out.Clock {
		// A policy that reads the time denies: judge again in a minute,
		// which records something only if the verdict changed.
		p.OpenAt(p.clock.Now().Add(time.Minute))
	}
	p.OpenAt(out.Opens)
	p.setBlocked(out.Blocked)
	p.Apply(ctx)
}

func (p *Pipeline) inForce(repo *spec.Repo) {
	if p.cfg.OnInForce != nil {
		p.cfg.OnInForce(repo)
	}
}

// setBlocked tells the engine and the status which units are held.
func (p *Pipeline) setBlocked(b map[plan.Key]reconcile.Block) {
	list := make([]Blocked, 0, len(b))
	for k, why := range b {
		list = append(list, Blocked{App: k.App, Env: k.Env, Block: why})
	}
	slices.SortFunc(list, func(a, b Blocked) int { return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.App, b.App)) })
	p.mu.Lock()
	p.state.Blocked, p.blocked = list, maps.Clone(b)
	p.mu.Unlock()
	p.cfg.Engine.SetBlocked(b)
}

// Apply hands the recorded desired state to the engine.
func (p *Pipeline) Apply(ctx context.Context) {
	rows, err := p.cfg.Store.Desired(ctx)
	if err != nil {
		p.log.Error("reading the desired state", "err", err)
		return
	}
	p.cfg.Engine.Apply(rows)
}

// recordBetween records the commits that arrived together with a new head,
// oldest first, each validated, so that every commit is a revision with its
// verdict; only the head is planned, as only the head will run.
func (p *Pipeline) recordBetween(ctx context.Context, from, to string) {
	revs, err := p.cfg.Git.Log(ctx, from, to)
	if err != nil {
		p.log.Warn("listing new commits", "from", from, "to", to, "err", err)
		return
	}
	for i := len(revs) - 1; i >= 1; i-- { // revs[0] is the head itself
		rev := revs[i]
		p.recover(ctx, rev)
		if _, err := p.cfg.Store.Revision(ctx, rev.SHA); err == nil {
			continue
		}
		fsys, err := p.cfg.Git.Files(rev.SHA)
		if err != nil {
			p.log.Warn("reading revision", "revision", rev.Short(), "err", err)
			continue
		}
		_, problems := p.cfg.Load(fsys)
		if err := p.cfg.Store.PutRevision(ctx, revisionRecord(rev, problems)); err != nil {
			p.log.Error("recording revision", "revision", rev.Short(), "err", err)
		}
	}
}

// resume restores the status of a revision recorded by an earlier run.
func (p *Pipeline) resume(ctx context.Context, rev source.Revision, seen store.Revision) {
	good := rev
	if !seen.Valid {
		var problems spec.Problems
		_ = json.Unmarshal(seen.Problems, &problems)
		p.mu.Lock()
		p.state.Failing = &Failing{Revision: rev, Problems: problems}
		p.mu.Unlock()
		var ok bool
		if good, ok = p.lastGood(ctx); !ok {
			return
		}
	}
	p.putInForce(ctx, good, seen.Valid)
}

// lastGood returns the last valid revision recorded; false if there is
// none yet.
func (p *Pipeline) lastGood(ctx context.Context) (source.Revision, bool) {
	last, err := p.cfg.Store.LastGoodRevision(ctx)
	if err != nil {
		return source.Revision{}, false
	}
	good, err := p.cfg.Git.Revision(last.SHA)
	if err != nil {
		p.log.Error("reading the last good revision", "revision", last.SHA, "err", err)
		return source.Revision{}, false
	}
	return good, true
}

// putInForce restores a revision recorded and planned by an earlier run as
// the one in force; headValid says whether it is the head too (which then
// fails no more).
func (p *Pipeline) putInForce(ctx context.Context, good source.Revision, headValid bool) {
	fsys, err := p.cfg.Git.Files(good.SHA)
	if err != nil {
		p.log.Error("reading revision", "revision", good.Short(), "err", err)
		return
	}
	repo, _ := p.cfg.Load(fsys)
	var ref *PlanRef
	if ps, err := p.cfg.Store.Plans(ctx, good.SHA, 1); err == nil && len(ps) == 1 {
		ref = &PlanRef{ID: ps[0].ID, Summary: plan.Summary{Create: ps[0].Create, Update: ps[0].Update, Delete: ps[0].Delete, Unchanged: ps[0].Unchanged}}
		if full, err := p.cfg.Store.Plan(ctx, ps[0].ID); err == nil {
			var body PlanBody
			if json.Unmarshal(full.Body, &body) == nil {
				p.setBlocked(body.BlockedBy())
				// A gate may have opened while socle was stopped: judge
				// what waits again (recorded only if the outcome changed).
				p.Replan()
			}
		}
	}
	p.mu.Lock()
	p.current = repo
	p.state.LastGood = &good
	p.state.LastPlan = ref
	if headValid {
		p.state.Failing = nil
	}
	p.mu.Unlock()
	p.inForce(repo)
	p.Apply(ctx)
}

// AppAt loads an app as it was at a pinned revision. Only a few revisions
// are pinned at any time, so loaded revisions are kept (a handful at most).
func (p *Pipeline) AppAt(app, revision string) *spec.App {
	p.pinnedMu.Lock()
	defer p.pinnedMu.Unlock()
	r, ok := p.pinned[revision]
	if !ok {
		if len(p.pinned) >= 16 {
			clear(p.pinned)
		}
		if fsys, err := p.cfg.Git.Files(revision); err == nil {
			// Only the app is read: the runtime blocks of the pinned
			// revision, which runs its app with today's, are not checked.
			if loaded, problems := spec.Load(fsys); problems.Errors() == 0 {
				r = loaded
			}
		}
		p.pinned[revision] = r // nil too: an unreadable revision is not retried
	}
	if r == nil {
		return nil
	}
	return r.App(app)
}
