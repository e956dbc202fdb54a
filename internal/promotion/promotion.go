// Package promotion moves releases between environments: promote what runs
// in the environment before, deploy a revision, roll back to an earlier
// release, approve, preview, and the emergency change that passes the
// gates that only cost time. Every action is judged by the promotion gates
// (package gate, a pure function, read at the injected clock) and the
// policies, and done as a commit pinning the release in
// releases/<env>.yaml (through the git writer), never by building: the
// artifact promoted is the one that ran. It also says, for the pipeline,
// which gates hold a pinned release before it is deployed, and, for the
// environment matrix, what a promotion would meet now. It owns neither the
// revision in force (the pipeline's) nor the API's words.
package promotion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/gitwrite"
	"github.com/socle-dev/socle/internal/notify"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/trace"
)

// Store is what promotions read and record.
type Store interface {
	pipeline.ReleaseReader
	CurrentRelease(ctx context.Context, app, env string) (store.Release, error)
	Release(ctx context.Context, id int64) (store.Release, error)
	Revision(ctx context.Context, sha string) (store.Revision, error)
	Revisions(ctx context.Context, limit int, before string) ([]store.Revision, error)
	DesiredUnit(ctx context.Context, u store.Unit) (store.Desired, error)
	Approvals(ctx context.Context, app, env, artifact string) ([]store.Approval, error)
	AddApproval(ctx context.Context, a store.Approval, rec *store.AuditRecord) (store.Approval, error)
	AppendAudit(ctx context.Context, rec store.AuditRecord) (store.AuditRecord, error)
	AppendEvent(ctx context.Context, e store.Event) (int64, error)
}

// Git reads the platform repository.
type Git interface {
	Revision(sha string) (source.Revision, error)
	Files(sha string) (fs.FS, error)
}

// Commits makes socle's commits, each with its audit record (gitwrite).
type Commits interface {
	Write(ctx context.Context, c gitwrite.Change) (source.Revision, error)
}

// InForce is the revision pipeline, as promotions see it.
type InForce interface {
	// InForce returns the revision in force, loaded, and its SHA.
	InForce() (*spec.Repo, string)
	// AppAt loads an app as it was at a revision, nil if it is not there.
	AppAt(app, revision string) *spec.App
	// BlockedBy says why a gate or a policy holds a unit, if one does.
	BlockedBy(app, env string) (reconcile.Block, bool)
	// Replan plans the revision in force again: an input of a gate
	// changed.
	Replan()
}

// Units tells how the units run.
type Units interface {
	Status() []reconcile.UnitStatus
}

// Notifier tells people.
type Notifier interface {
	Notify(ctx context.Context, ev notify.Event) error
}

// Config wires a Service.
type Config struct {
	Store    Store
	Git      Git
	Commits  Commits
	Pipeline InForce
	Units    Units
	Notifier Notifier
	// Fetch fetches the platform repository now, so that a commit made
	// is planned at once.
	Fetch func()
	// Clock is the time gates and policies judge at, and pins say; the
	// system's when nil.
	Clock clock.Clock
	Log   *slog.Logger
}

// Service promotes, deploys, rolls back and approves. Its methods are safe
// for concurrent use.
type Service struct {
	store    Store
	git      Git
	commits  Commits
	pipeline InForce
	units    Units
	announce notify.Announcer
	fetch    func()
	clock    clock.Clock
	log      *slog.Logger
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Fetch == nil {
		cfg.Fetch = func() {}
	}
	return &Service{store: cfg.Store, git: cfg.Git, commits: cfg.Commits, pipeline: cfg.Pipeline, units: cfg.Units,
		announce: notify.Announcer{Events: cfg.Store, Notifier: cfg.Notifier, Log: cfg.Log}, fetch: cfg.Fetch, clock: clock.Or(cfg.Clock), log: cfg.Log}
}

func (s *Service) repoInForce() *spec.Repo {
	repo, _ := s.pipeline.InForce()
	return repo
}

func (s *Service) inForceSHA() string {
	_, sha := s.pipeline.InForce()
	return sha
}

// Errors of promotions, approvals and rollbacks that the API maps to codes.
var (
	ErrUnknown   = errors.New("not found")    // no such app, environment or release
	ErrRefused   = errors.New("not possible") // the request does not apply here
	ErrForbidden = errors.New("forbidden")    // this user may not do that
	ErrInvalid   = errors.New("invalid")      // the request is malformed
)

// BlockedError is a promotion or rollback that a gate or a policy stops.
type BlockedError struct {
	Gates    gate.Result     `json:"gates"`
	Verdicts policy.Verdicts `json:"verdicts,omitempty"`
	Target   Target          `json:"target"`
}

func (e *BlockedError) Error() string {
	var parts []string
	if !e.Gates.Open() {
		parts = append(parts, e.Gates.Reason())
	}
	for _, v := range e.Verdicts.Denials() {
		parts = append(parts, "policy "+v.Policy+": "+v.Message)
	}
	return fmt.Sprintf("%s to %s is blocked: %s", e.Target.App, e.Target.Env, strings.Join(parts, "; "))
}

// Target is what a promotion or rollback pins.
type Target struct {
	App      string `json:"app"`
	Env      string `json:"env"`
	From     string `json:"from,omitempty"`
	Revision string `json:"revision"`
	Artifact string `json:"artifact"`
	Release  int64  `json:"release,omitempty"` // the release whose target it pins
	Rollback bool   `json:"rollback,omitempty"`
	// Emergency is the reason of an emergency change, "" for none.
	Emergency string `json:"emergency,omitempty"`
}

// Result is a promotion or rollback done: the commit that pins it.
type Result struct {
	Target
	Commit source.Revision `json:"commit"`
	// Passed are the closed gates an emergency change passed.
	Passed []gate.Block `json:"passed,omitempty"`
	// Sync is what a deploy in an environment that follows Git does.
	Sync *SyncOutcome `json:"sync,omitempty"`
}

// Promote pins in env the revision and artifact that run in the environment
// env promotes from, as a commit to releases/<env>.yaml, once every gate
// and policy allows it. It never builds: the artifact is the one that ran.
// A non-empty emergency is the reason of an emergency change (see
// gate.Declare).
func (s *Service) Promote(ctx context.Context, app, env, user, message, emergency string) (out Result, err error) {
	ctx, span := startAction(ctx, "promote", app, env, user)
	defer func() { endAction(span, out, err) }()
	repo, e, t, err := s.promoteTarget(ctx, app, env)
	if err != nil {
		return Result{}, err
	}
	t.Emergency = emergency
	res, err := s.checkTarget(ctx, repo, e, t, user, policy.Promote)
	if err != nil {
		return Result{}, err
	}
	msg := fmt.Sprintf("promote %s to %s: %s (%s) from %s", app, env, Short(t.Revision), Short(t.Artifact), t.From)
	return s.pin(ctx, repo, t, res, user, msg, message, "promote")
}

func (s *Service) promoteTarget(ctx context.Context, app, env string) (*spec.Repo, *spec.Environment, Target, error) {
	repo, e, err := s.manualEnv(app, env)
	if err != nil {
		return nil, nil, Target{}, err
	}
	if e.Promotion == nil || e.Promotion.From == "" {
		return nil, nil, Target{}, fmt.Errorf("%w: %s has no promotion.from in socle.yaml; deploy a revision or roll back instead", ErrRefused, env)
	}
	from := e.Promotion.From
	src, err := s.store.CurrentRelease(ctx, app, from)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, Target{}, fmt.Errorf("%w: %s does not run in %s yet, so there is nothing to promote", ErrRefused, app, from)
	} else if err != nil {
		return nil, nil, Target{}, err
	}
	return repo, e, Target{App: app, Env: env, From: from, Revision: src.Revision, Artifact: src.Artifact, Release: src.ID}, nil
}

// Rollback pins in env an earlier release of app: the one given, or the
// newest that succeeded with another target than what runs now.
func (s *Service) Rollback(ctx context.Context, app, env string, to int64, user, message, emergency string) (out Result, err error) {
	ctx, span := startAction(ctx, "rollback", app, env, user)
	defer func() { endAction(span, out, err) }()
	repo, e, t, err := s.rollbackTarget(ctx, app, env, to)
	if err != nil {
		return Result{}, err
	}
	t.Emergency = emergency
	res, err := s.checkTarget(ctx, repo, e, t, user, policy.Rollback)
	if err != nil {
		return Result{}, err
	}
	msg := fmt.Sprintf("roll back %s in %s to release %d: %s (%s)", app, env, t.Release, Short(t.Revision), Short(t.Artifact))
	return s.pin(ctx, repo, t, res, user, msg, message, "rollback")
}

func (s *Service) rollbackTarget(ctx context.Context, app, env string, to int64) (*spec.Repo, *spec.Environment, Target, error) {
	repo, e, err := s.manualEnv(app, env)
	if err != nil {
		return nil, nil, Target{}, err
	}
	cur, err := s.store.CurrentRelease(ctx, app, env)
	if err != nil {
		return nil, nil, Target{}, fmt.Errorf("%w: %s does not run in %s", ErrRefused, app, env)
	}
	var target store.Release
	if to != 0 {
		if target, err = s.store.Release(ctx, to); err != nil || target.App != app || target.Env != env {
			return nil, nil, Target{}, fmt.Errorf("%w: no release %d of %s in %s", ErrUnknown, to, app, env)
		}
		if target.Status != store.Succeeded {
			return nil, nil, Target{}, fmt.Errorf("%w: release %d ended %s; only a release that succeeded can be restored", ErrRefused, to, target.Status)
		}
	} else {
		rels, err := s.store.Releases(ctx, store.ReleaseFilter{App: app, Env: env, Status: store.Succeeded, Before: cur.ID, Limit: store.MaxLimit})
		if err != nil {
			return nil, nil, Target{}, err
		}
		i := slices.IndexFunc(rels, func(r store.Release) bool { return r.Artifact != cur.Artifact || r.Revision != cur.Revision })
		if i < 0 {
			return nil, nil, Target{}, fmt.Errorf("%w: %s has no earlier release in %s to roll back to", ErrRefused, app, env)
		}
		target = rels[i]
	}
	return repo, e, Target{App: app, Env: env, Revision: target.Revision, Artifact: target.Artifact, Release: target.ID, Rollback: true}, nil
}

// Deploy runs a revision of app in env. An environment that follows Git
// runs the newest valid revision: deploying there syncs now. An environment
// with promotion gates takes releases by promotion only. Any other
// environment gets the revision pinned in releases/<env>.yaml (default: the
// revision in force), built once and run by digest.
func (s *Service) Deploy(ctx context.Context, app, env, revision, user, message, emergency string) (out Result, err error) {
	ctx, span := startAction(ctx, "deploy", app, env, user)
	defer func() { endAction(span, out, err) }()
	repo, e, t, err := s.deployTarget(ctx, app, env, revision)
	if err != nil {
		return Result{}, err
	}
	if e.Sync == spec.SyncAuto {
		if emergency != "" {
			return Result{}, fmt.Errorf("%w: %s follows Git (sync: auto) and has no gates to pass: deploy without --emergency", ErrRefused, env)
		}
		sync := s.syncOutcome(ctx, app, env, t.Revision)
		t.Revision = sync.Revision
		detail, _ := json.Marshal(map[string]string{"sync": sync.Revision, "head": sync.Head, "outcome": sync.Outcome})
		if _, err := s.store.AppendAudit(ctx, store.AuditRecord{Actor: user, Action: "deploy", App: app, Env: env, Revision: sync.Revision, Detail: detail}); err != nil {
			return Result{}, err
		}
		s.announce.Record(ctx, store.Event{Kind: "deploy", App: app, Env: env, Revision: sync.Revision, Message: fmt.Sprintf("%s synced %s in %s: %s", user, app, env, sync.Words(app, env))})
		s.fetch()
		s.pipeline.Replan()
		return Result{Target: t, Sync: &sync}, nil
	}
	t.Emergency = emergency
	res, err := s.checkTarget(ctx, repo, e, t, user, policy.Deploy)
	if err != nil {
		return Result{}, err
	}
	msg := fmt.Sprintf("deploy %s to %s: %s", app, env, Short(t.Revision))
	return s.pin(ctx, repo, t, res, user, msg, message, "deploy")
}

func (s *Service) deployTarget(ctx context.Context, app, env, revision string) (*spec.Repo, *spec.Environment, Target, error) {
	repo := s.repoInForce()
	if repo == nil {
		return nil, nil, Target{}, fmt.Errorf("%w: no valid revision of the platform repository yet", ErrRefused)
	}
	e := repo.Environment(env)
	if e == nil {
		return nil, nil, Target{}, fmt.Errorf("%w: no environment %q", ErrUnknown, env)
	}
	if repo.App(app) == nil {
		return nil, nil, Target{}, fmt.Errorf("%w: no app %q", ErrUnknown, app)
	}
	inForce := s.inForceSHA()
	if e.Sync == spec.SyncAuto {
		if revision != "" && !strings.HasPrefix(inForce, revision) {
			return nil, nil, Target{}, fmt.Errorf("%w: %s follows Git (sync: auto) and runs the newest valid revision %s; commit or revert to change it", ErrRefused, env, Short(inForce))
		}
		return repo, e, Target{App: app, Env: env, Revision: inForce}, nil
	}
	if e.Promotion != nil && e.Promotion.From != "" {
		return nil, nil, Target{}, fmt.Errorf("%w: %s takes releases by promotion from %s, behind its gates: socle promote %s --to %s", ErrRefused, env, e.Promotion.From, app, env)
	}
	if revision == "" {
		revision = inForce
	}
	rev, err := s.store.Revision(ctx, revision)
	if err != nil {
		revs, lerr := s.store.Revisions(ctx, store.MaxLimit, "")
		i := slices.IndexFunc(revs, func(r store.Revision) bool { return len(revision) >= 7 && strings.HasPrefix(r.SHA, revision) })
		if lerr != nil || i < 0 {
			return nil, nil, Target{}, fmt.Errorf("%w: no revision %s of the platform repository", ErrUnknown, revision)
		}
		rev = revs[i]
	}
	if !rev.Valid {
		return nil, nil, Target{}, fmt.Errorf("%w: revision %s does not validate", ErrRefused, Short(rev.SHA))
	}
	if s.pipeline.AppAt(app, rev.SHA) == nil {
		return nil, nil, Target{}, fmt.Errorf("%w: %s does not exist at %s", ErrRefused, app, Short(rev.SHA))
	}
	return repo, e, Target{App: app, Env: env, Revision: rev.SHA}, nil
}

// Preview is what an action would do, asked before doing it: the target,
// the change to the unit (its secrets redacted), the verdicts of the gates
// and the policies now, and whether the caller may do it.
type Preview struct {
	Action   string
	Target   Target
	Change   *plan.Change
	Gates    gate.Result
	Verdicts policy.Verdicts
	// Allowed says whether the caller's role may do it; Blocked whether a
	// gate or a policy stops it; Reason says why it cannot be done now.
	Allowed, Blocked bool
	Reason           string
}

// Preview is what action (deploy, promote or rollback) would pin in env
// and what the gates and the policies say of it now, without doing it.
func (s *Service) Preview(ctx context.Context, action, app, env, revision string, release int64, user string) (Preview, error) {
	var (
		repo *spec.Repo
		e    *spec.Environment
		t    Target
		err  error
		op   policy.Operation
	)
	switch action {
	case "promote":
		repo, e, t, err = s.promoteTarget(ctx, app, env)
		op = policy.Promote
	case "rollback":
		repo, e, t, err = s.rollbackTarget(ctx, app, env, release)
		op = policy.Rollback
	case "deploy", "":
		repo, e, t, err = s.deployTarget(ctx, app, env, revision)
		op = policy.Deploy
	default:
		return Preview{}, fmt.Errorf("%w: action must be deploy, promote or rollback", ErrInvalid)
	}
	if err != nil {
		return Preview{}, err
	}
	res, verdicts, change := s.evaluate(ctx, repo, e, t, user, op)
	if e.Sync == spec.SyncAuto {
		res = gate.Result{} // a sync runs what Git says; the plan's gates already applied
	}
	p := Preview{Action: action, Target: t, Gates: res, Verdicts: verdicts, Allowed: repo.MayDeploy(user, app, env)}
	if change != nil {
		var old []plan.Unit
		if d, err := s.store.DesiredUnit(ctx, store.Unit{App: app, Env: env}); err == nil {
			var u plan.Unit
			if json.Unmarshal(d.Spec, &u) == nil {
				old = append(old, u)
			}
		}
		red := plan.RedactPlan(plan.Plan{Changes: []plan.Change{*change}}, old)
		p.Change = &red.Changes[0]
	}
	be := &BlockedError{Gates: res, Verdicts: verdicts, Target: t}
	if p.Blocked = !res.Open() || verdicts.Blocked(); p.Blocked {
		p.Reason = be.Error()
	} else if !p.Allowed {
		p.Reason = fmt.Sprintf("%s may not %s %s in %s", user, action, app, env)
	}
	return p, nil
}

// Approve records user's approval of the artifact that a promotion to env
// would pin. Only an approver of the app's team, or an admin, approves, and
// never a change they wrote.
func (s *Service) Approve(ctx context.Context, app, env, user, comment string) (store.Approval, error) {
	repo, e, err := s.manualEnv(app, env)
	if err != nil {
		return store.Approval{}, err
	}
	if e.Promotion == nil || e.Promotion.Approvals == 0 {
		return store.Approval{}, fmt.Errorf("%w: promotions to %s need no approval", ErrRefused, env)
	}
	if !repo.MayApprove(user, app) {
		return store.Approval{}, fmt.Errorf("%w: %s is not an approver of %s's team %s, nor an admin", ErrForbidden, user, app, repo.App(app).Config.Owner)
	}
	src, err := s.store.CurrentRelease(ctx, app, e.Promotion.From)
	if err != nil {
		return store.Approval{}, fmt.Errorf("%w: %s does not run in %s yet, so there is nothing to approve", ErrRefused, app, e.Promotion.From)
	}
	if author := s.AuthorOf(repo, src.Revision); author == user {
		return store.Approval{}, fmt.Errorf("%w: %s wrote %s and cannot approve it", ErrForbidden, user, Short(src.Revision))
	}
	detail, _ := json.Marshal(map[string]string{"artifact": src.Artifact, "comment": comment})
	a, err := s.store.AddApproval(ctx, store.Approval{App: app, Env: env, Revision: src.Revision, Artifact: src.Artifact, User: user, Comment: comment},
		&store.AuditRecord{Actor: user, Action: "approve", Detail: detail})
	if err != nil {
		return a, err
	}
	s.announce.Record(ctx, store.Event{Kind: "approval", App: app, Env: env, Revision: src.Revision, Message: fmt.Sprintf("%s approved %s (%s) for %s", user, Short(src.Revision), Short(src.Artifact), env)})
	s.pipeline.Replan() // a pinned release waiting for this approval may go out now
	return a, nil
}

func (s *Service) manualEnv(app, env string) (*spec.Repo, *spec.Environment, error) {
	repo := s.repoInForce()
	if repo == nil {
		return nil, nil, fmt.Errorf("%w: no valid revision of the platform repository yet", ErrRefused)
	}
	e := repo.Environment(env)
	if e == nil {
		return nil, nil, fmt.Errorf("%w: no environment %q", ErrUnknown, env)
	}
	if repo.App(app) == nil {
		return nil, nil, fmt.Errorf("%w: no app %q", ErrUnknown, app)
	}
	if e.Sync == spec.SyncAuto {
		return nil, nil, fmt.Errorf("%w: %s follows Git (sync: auto): commit or revert there instead", ErrRefused, env)
	}
	return repo, e, nil
}

// evaluate runs the gates and the policies on pinning t in env; an
// emergency target is judged as one (its declarer is checked by
// checkTarget).
func (s *Service) evaluate(ctx context.Context, repo *spec.Repo, e *spec.Environment, t Target, user string, op policy.Operation) (gate.Result, policy.Verdicts, *plan.Change) {
	in := gate.Input{Env: e, Freezes: repo.Platform.Freezes, Now: s.clock.Now(), Rollback: t.Rollback, Author: s.AuthorOf(repo, t.Revision), Emergency: t.Emergency != ""}
	if t.From != "" {
		in.Source, in.HealthySince = s.runsHealthy(ctx, t.App, t.From, t.Artifact)
	}
	if apps, err := s.store.Approvals(ctx, t.App, t.Env, t.Artifact); err == nil && t.Artifact != "" {
		for _, a := range apps {
			in.Approvers = append(in.Approvers, a.User)
		}
	}
	res := gate.Check(in)
	verdicts, change := s.judgePin(ctx, repo, t, user, in.Approvers, op)
	return res, verdicts, change
}

// checkTarget runs the gates and the policies on pinning t in env, and
// says who should know when they block it. An emergency target is
// declared by user first: a reason, and a role that may.
func (s *Service) checkTarget(ctx context.Context, repo *spec.Repo, e *spec.Environment, t Target, user string, op policy.Operation) (gate.Result, error) {
	if t.Emergency != "" {
		if err := s.declare(repo, t, user); err != nil {
			return gate.Result{}, err
		}
	}
	_, span := trace.Start(ctx, "gates", trace.App(t.App), trace.Env(t.Env), trace.Revision(t.Revision), trace.Artifact(t.Artifact))
	res, verdicts, _ := s.evaluate(ctx, repo, e, t, user, op)
	if res.Open() && !verdicts.Blocked() {
		span.SetAttributes(trace.Outcome("open"))
		span.End()
		return res, nil
	}
	span.SetAttributes(trace.Outcome("blocked"))
	span.End()
	be := &BlockedError{Gates: res, Verdicts: verdicts, Target: t}
	s.announce.Record(ctx, store.Event{Kind: "promotion.blocked", App: t.App, Env: t.Env, Revision: t.Revision, Message: be.Error()})
	s.announce.Notify(ctx, notify.Event{Kind: notify.PromotionBlocked, App: t.App, Env: t.Env, Revision: t.Revision, Actor: user, Title: "Promotion blocked", Message: be.Error()})
	if slices.ContainsFunc(res.Blocks, func(b gate.Block) bool { return b.Gate == "approvals" }) {
		s.announce.Notify(ctx, notify.Event{Kind: notify.ApprovalNeeded, App: t.App, Env: t.Env, Revision: t.Revision, Actor: user,
			Title: "Approval needed", Message: fmt.Sprintf("%s (%s) waits for approval to enter %s: socle approve %s --env %s", Short(t.Revision), Short(t.Artifact), t.Env, t.App, t.Env)})
	}
	return res, be
}

// declare checks the emergency change user declares with t, and maps the
// refusal to the API's errors.
func (s *Service) declare(repo *spec.Repo, t Target, user string) error {
	err := gate.Declare(repo, t.App, t.Env, user, t.Emergency)
	switch {
	case errors.Is(err, gate.ErrReason):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case err != nil:
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	return nil
}

// runsHealthy reports whether artifact runs, synced and healthy, in env,
// and since when.
func (s *Service) runsHealthy(ctx context.Context, app, env, artifact string) (bool, time.Time) {
	cur, err := s.store.CurrentRelease(ctx, app, env)
	if err != nil || cur.Artifact != artifact {
		return false, time.Time{}
	}
	for _, u := range s.units.Status() {
		if u.App == app && u.Env == env && u.Phase != reconcile.Pending {
			return u.Phase == reconcile.Synced && u.Release == cur.ID, cur.FinishedAt
		}
	}
	// Not observed yet (socle is starting): the release that succeeded is
	// taken as what runs until the reconciler says otherwise.
	return true, cur.FinishedAt
}

// judgePin evaluates the policies on the unit the pin would run.
func (s *Service) judgePin(ctx context.Context, repo *spec.Repo, t Target, user string, approvers []string, op policy.Operation) (policy.Verdicts, *plan.Change) {
	r := *repo
	r.Releases = map[string]*spec.Releases{}
	for k, v := range repo.Releases {
		r.Releases[k] = v
	}
	rel := &spec.Releases{Environment: t.Env, Apps: map[string]spec.Pin{}}
	if old := repo.Releases[t.Env]; old != nil {
		for k, v := range old.Apps {
			rel.Apps[k] = v
		}
	}
	rel.Apps[t.App] = spec.Pin{Revision: t.Revision, Artifact: t.Artifact, From: t.From, Rollback: t.Rollback, PromotedBy: user}
	if t.Emergency != "" {
		p := rel.Apps[t.App]
		p.Emergency = &spec.PinEmergency{Reason: t.Emergency}
		rel.Apps[t.App] = p
	}
	r.Releases[t.Env] = rel
	var unit *plan.Unit
	for _, u := range plan.Desired(&r, t.Revision, s.pipeline.AppAt) {
		if u.App == t.App && u.Env == t.Env {
			unit = &u
			break
		}
	}
	if unit == nil {
		return nil, nil
	}
	change := plan.Change{Action: plan.Create, App: t.App, Env: t.Env, Desired: unit}
	var old *plan.Unit
	if d, err := s.store.DesiredUnit(ctx, store.Unit{App: t.App, Env: t.Env}); err == nil {
		var u plan.Unit
		if json.Unmarshal(d.Spec, &u) == nil {
			old, change.Action = &u, plan.Update
		}
	}
	fsys, err := s.git.Files(s.inForceSHA())
	if err != nil {
		fsys = nil
	}
	set, _ := policy.Compile(repo, fsys)
	verdicts := set.Evaluate(policy.Input{Change: change, Old: old, Artifact: t.Artifact,
		Context: policy.Context{Operation: op, Now: s.clock.Now(), Author: user, Approvers: approvers, History: pipeline.History(ctx, s.store)}})
	if old != nil {
		if d := plan.Diff(t.Revision, []plan.Unit{*unit}, []plan.Unit{*old}); len(d.Changes) > 0 {
			change = d.Changes[0]
		} else {
			change.Action = plan.NoOp
		}
	}
	return verdicts, &change
}

// pin commits the target to releases/<env>.yaml, keeping the file's
// comments and other pins, and fetches it at once so the reconciler deploys.
// An emergency change is recorded as one: its own audit action with the
// reason and the gates it passed, an event and a notification.
func (s *Service) pin(ctx context.Context, repo *spec.Repo, t Target, gates gate.Result, user, subject, body, action string) (Result, error) {
	msg := subject
	if body != "" {
		msg += "\n\n" + body
	}
	d := map[string]any{"artifact": t.Artifact, "from": t.From, "release": t.Release}
	if t.Emergency != "" {
		// A trailer, so that Recognize can tell the exception apart.
		msg += "\n\n" + emergencyTrailer + strings.TrimSpace(t.Emergency)
		action += ".emergency"
		d["reason"], d["passed"] = strings.TrimSpace(t.Emergency), gates.Skipped
	}
	at := s.clock.Now().UTC()
	wctx, span := trace.Start(ctx, "commit", trace.String("path", path.Join(spec.ReleasesDir, t.Env+".yaml")))
	rev, err := s.commits.Write(wctx, gitwrite.Change{
		Path:   path.Join(spec.ReleasesDir, t.Env+".yaml"),
		Edit:   func(old []byte) ([]byte, error) { return setPin(old, t, user, at) },
		Author: user, Email: EmailOf(repo, user), Message: msg,
		Audit: store.AuditRecord{Actor: user, Action: action, App: t.App, Env: t.Env, Revision: t.Revision}, Detail: d,
	})
	span.SetAttributes(trace.String("commit", rev.SHA))
	trace.End(span, err)
	if err != nil {
		return Result{}, err
	}
	trace.Hand(ctx, trace.CommitKey(rev.SHA)) // the revision of the commit goes on in the action's trace
	words := subject + " by " + user
	if t.Emergency != "" {
		words = "emergency change: " + words + ": " + strings.TrimSpace(t.Emergency)
		if p := gates.Passed(); p != "" {
			words += " (passed " + p + ")"
		}
		s.announce.Notify(ctx, notify.Event{Kind: notify.EmergencyChange, App: t.App, Env: t.Env, Revision: t.Revision, Actor: user, Release: t.Release,
			Message: words, Fields: map[string]string{"reason": strings.TrimSpace(t.Emergency), "artifact": t.Artifact, "commit": rev.SHA, "action": action}})
	}
	s.announce.Record(ctx, store.Event{Kind: action, App: t.App, Env: t.Env, Revision: t.Revision, Message: words})
	s.fetch()
	return Result{Target: t, Commit: rev, Passed: gates.Skipped}, nil
}

// startAction starts the span of a promotion, rollback or deploy: a
// child of the request's (its traceparent).
func startAction(ctx context.Context, action, app, env, user string) (context.Context, trace.Span) {
	return trace.Start(ctx, action, trace.App(app), trace.Env(env), trace.String("user", user))
}

// endAction ends an action's span with what it pinned and how it ended.
func endAction(span trace.Span, res Result, err error) {
	var blocked *BlockedError
	outcome := "committed"
	switch {
	case errors.As(err, &blocked):
		outcome = "blocked"
	case err != nil:
		outcome = "refused"
	case res.Sync != nil:
		outcome = "synced"
	}
	span.SetAttributes(trace.Outcome(outcome), trace.Revision(res.Revision), trace.Artifact(res.Artifact), trace.Release(res.Release), trace.String("commit", res.Commit.SHA))
	trace.End(span, err)
}

// emergencyTrailer starts the line of a pin's commit message that gives
// the reason of an emergency change.
const emergencyTrailer = "Emergency: "

// pinSubject reads back the subject of a commit pin writes: the action,
// the app and the environment.
var pinSubject = regexp.MustCompile(`^(promote|deploy) (\S+) to (\S+): |^(roll back) (\S+) in (\S+) to release `)

// Recognize knows the commits pin makes, for the writer's recovery of
// an audit record lost in a crash: by their subject, and their emergency
// trailer.
func Recognize(rev source.Revision) (store.AuditRecord, map[string]any, bool) {
	m := pinSubject.FindStringSubmatch(rev.Subject())
	if m == nil {
		return store.AuditRecord{}, nil, false
	}
	action, app, env := m[1], m[2], m[3]
	if m[4] != "" {
		action, app, env = "rollback", m[5], m[6]
	}
	d := map[string]any{}
	for line := range strings.Lines(rev.Message) {
		if reason, ok := strings.CutPrefix(strings.TrimSpace(line), emergencyTrailer); ok {
			action, d["reason"] = action+".emergency", reason
		}
	}
	return store.AuditRecord{Actor: rev.Author, Action: action, App: app, Env: env}, d, true
}

// setPin edits a releases file as YAML nodes, so that its comments stay.
func setPin(old []byte, t Target, user string, at time.Time) ([]byte, error) {
	var doc yaml.Node
	if len(bytes.TrimSpace(old)) > 0 {
		// The head's file, which may not have validated: read within the
		// limits of one file (its aliases stay aliases when re-encoded).
		d, p := spec.ReadYAML(path.Join(spec.ReleasesDir, t.Env+".yaml"), old, nil)
		if p != nil {
			return nil, errors.New(p.String())
		}
		if d != nil {
			doc = *d
		}
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	set := func(m *yaml.Node, key string, v *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				m.Content[i+1] = v
				return
			}
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
	}
	str := func(s string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: s, Style: yaml.DoubleQuotedStyle}
	}
	set(root, "apiVersion", &yaml.Node{Kind: yaml.ScalarNode, Value: spec.APIVersion})
	set(root, "kind", &yaml.Node{Kind: yaml.ScalarNode, Value: "Releases"})
	set(root, "environment", &yaml.Node{Kind: yaml.ScalarNode, Value: t.Env})
	var apps *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "apps" {
			apps = root.Content[i+1]
		}
	}
	if apps == nil || apps.Kind != yaml.MappingNode {
		apps = &yaml.Node{Kind: yaml.MappingNode}
		set(root, "apps", apps)
	}
	apps.Style = 0 // block style, even if the file said apps: {}
	pin := &yaml.Node{Kind: yaml.MappingNode}
	set(pin, "revision", str(t.Revision))
	set(pin, "artifact", str(t.Artifact))
	set(pin, "promotedBy", str(user))
	set(pin, "promotedAt", str(at.Format(time.RFC3339)))
	if t.From != "" {
		set(pin, "from", str(t.From))
	}
	if t.Rollback {
		set(pin, "rollback", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	if t.Emergency != "" {
		em := &yaml.Node{Kind: yaml.MappingNode}
		set(em, "reason", str(strings.TrimSpace(t.Emergency)))
		set(pin, "emergency", em)
	}
	set(apps, t.App, pin)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// AuthorOf names the user (from teams.yaml, by email) who wrote a revision.
func (s *Service) AuthorOf(repo *spec.Repo, sha string) string {
	rev, err := s.git.Revision(sha)
	if err != nil {
		return ""
	}
	for _, t := range repo.Teams.Teams {
		for _, m := range t.Members {
			if m.Email != "" && strings.EqualFold(m.Email, rev.Email) {
				return m.User
			}
		}
	}
	return rev.Author
}

// EmailOf is the address of user for a commit socle makes on their
// behalf: their teams.yaml email, else one made of their name.
func EmailOf(repo *spec.Repo, user string) string {
	for _, t := range repo.Teams.Teams {
		for _, m := range t.Members {
			if m.User == user && m.Email != "" {
				return m.Email
			}
		}
	}
	return user + "@socle.local"
}

// Short abbreviates a revision or a digest for the words of promotions
// and releases.
func Short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
