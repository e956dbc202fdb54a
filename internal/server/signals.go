package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/store"
)

// The golden signals' history: what the proxy counted of each app's
// requests, sampled every signalEvery and kept signalKeep, in memory.
const (
	signalEvery  = 10 * time.Second
	signalKeep   = 6 * time.Hour
	signalNow    = time.Minute // the window of the "now" figures
	signalPoints = 60
)

// signalRouter is what the sampler reads of the proxy, in-process or the
// proxy process's client.
type signalRouter interface {
	Routes() []proxy.RouteStatus
	Stats(route, version string) proxy.Snapshot
}

// signals samples the proxy's counts per route and version into a history
// per app and environment: each sample holds what a release's backends
// counted since the one before.
type signals struct {
	router signalRouter
	clock  clock.Clock

	mu      sync.Mutex
	started time.Time
	last    map[routeVersion]proxy.Snapshot // the counts at the last sample
	history map[store.Unit][]signalSample   // oldest first, only samples with requests
}

type routeVersion struct{ route, version string }

type signalSample struct {
	at      time.Time
	release string
	counts  proxy.Snapshot
}

func newSignals(router signalRouter, c clock.Clock) *signals {
	g := &signals{router: router, clock: c, last: map[routeVersion]proxy.Snapshot{}, history: map[store.Unit][]signalSample{}}
	g.sample() // the baseline: what the proxy counted before socle started
	return g
}

// run samples every signalEvery until ctx ends. The cadence is the
// machine's (the samples are stamped by the clock): a sampler is not work
// an injected clock should have to drive.
func (g *signals) run(ctx context.Context) {
	t := time.NewTicker(signalEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.sample()
		}
	}
}

// sample takes what the proxy counted since the last sample. The first
// sample of a version only sets its baseline when it is the sampler's
// first (the proxy process may have counted for hours before socle
// started); a version seen later, a new release, counts from zero.
func (g *signals) sample() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	first := g.started.IsZero()
	if first {
		g.started = now
	}
	seen := map[routeVersion]bool{}
	for _, rt := range g.router.Routes() {
		app, env, ok := proxy.AppOfRoute(rt.Name)
		if !ok {
			continue
		}
		for _, b := range rt.Backends {
			k := routeVersion{rt.Name, b.Version}
			if seen[k] {
				continue
			}
			seen[k] = true
			cur := g.router.Stats(rt.Name, b.Version)
			d := cur.Since(g.last[k])
			g.last[k] = cur
			if first || d.Requests == 0 {
				continue
			}
			u := store.Unit{App: app, Env: env}
			g.history[u] = append(g.history[u], signalSample{at: now, release: b.Version, counts: d})
		}
	}
	for k := range g.last {
		if !seen[k] {
			delete(g.last, k)
		}
	}
	for u, h := range g.history {
		i := 0
		for i < len(h) && now.Sub(h[i].at) > signalKeep {
			i++
		}
		if i == len(h) {
			delete(g.history, u)
		} else if i > 0 {
			g.history[u] = slices.Clone(h[i:])
		}
	}
	return now
}

// series returns the unit's counts in n buckets of step ending at until,
// and those of the last signalNow.
func (g *signals) series(u store.Unit, until time.Time, step time.Duration, n int) ([]api.SignalPoint, api.SignalFigures) {
	g.mu.Lock()
	defer g.mu.Unlock()
	since := until.Add(-time.Duration(n) * step)
	sums := make([]proxy.Snapshot, n)
	var now proxy.Snapshot
	for _, s := range g.history[u] {
		if s.at.After(until.Add(-signalNow)) {
			now = now.Plus(s.counts)
		}
		if !s.at.After(since) || s.at.After(until) {
			continue
		}
		i := min(int((s.at.Sub(since)-1)/step), n-1)
		sums[i] = sums[i].Plus(s.counts)
	}
	points := make([]api.SignalPoint, n)
	for i := range points {
		start := since.Add(time.Duration(i) * step)
		points[i] = api.SignalPoint{Start: start, SignalFigures: g.figures(sums[i], start, start.Add(step))}
	}
	return points, g.figures(now, until.Add(-signalNow), until)
}

// figures are the signals of counts taken from..to; the rate counts only
// the time the sampler ran.
func (g *signals) figures(s proxy.Snapshot, from, to time.Time) api.SignalFigures {
	from = maxTime(from, g.started)
	f := api.SignalFigures{Requests: s.Requests, Errors: s.Errors, Unanswered: s.Unanswered, ErrorRatio: s.ErrorRate(),
		P50Ms: ms(s.Quantile(0.5)), P95Ms: ms(s.Quantile(0.95)), P99Ms: ms(s.Quantile(0.99))}
	if secs := to.Sub(from).Seconds(); s.Requests > 0 {
		f.Rate = float64(s.Requests) / max(secs, 1)
	}
	return f
}

// units are the units with a history, sorted.
func (g *signals) units() []store.Unit {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []store.Unit
	for u := range g.history {
		out = append(out, u)
	}
	for k := range g.last {
		if app, env, ok := proxy.AppOfRoute(k.route); ok {
			out = append(out, store.Unit{App: app, Env: env})
		}
	}
	slices.SortFunc(out, func(a, b store.Unit) int { return strings.Compare(a.App+"\x00"+a.Env, b.App+"\x00"+b.Env) })
	return slices.Compact(out)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// getAppSignals answers GET /api/v1/apps/{app}/signals.
func (s *Server) getAppSignals(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	repo := s.repoInForce()
	if repo == nil || repo.App(app) == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no app %q", app))
		return
	}
	period := time.Hour
	if p := r.URL.Query().Get("period"); p != "" {
		d, err := time.ParseDuration(p)
		if err != nil || d < signalPoints*signalEvery || d > signalKeep {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("period %q: want a duration from %s to %s, such as 1h", p, signalPoints*signalEvery, signalKeep))
			return
		}
		period = d
	}
	step := period / signalPoints
	env := r.URL.Query().Get("env")
	var envs []string
	for _, e := range repo.Platform.Environments {
		if env == "" || e.Name == env {
			envs = append(envs, e.Name)
		}
	}
	if len(envs) == 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no environment %q", env))
		return
	}
	until := s.signals.sample()
	out := api.AppSignals{App: app, Period: period.String(), Step: step.String(), Envs: []api.EnvSignals{}}
	for _, e := range envs {
		u := store.Unit{App: app, Env: e}
		es := api.EnvSignals{Env: e}
		es.Points, es.Now = s.signals.series(u, until, step, signalPoints)
		var err error
		if es.Release, err = s.runningRelease(r.Context(), u); err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		if es.Markers, err = s.signalMarks(r.Context(), u, until.Add(-period)); err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		out.Envs = append(out.Envs, es)
	}
	s.reply(w, r, out)
}

// getSignals answers GET /api/v1/signals.
func (s *Server) getSignals(w http.ResponseWriter, r *http.Request) {
	env := r.URL.Query().Get("env")
	until := s.signals.sample()
	out := api.SignalList{Items: []api.UnitSignals{}}
	for _, u := range s.signals.units() {
		if env != "" && u.Env != env {
			continue
		}
		_, now := s.signals.series(u, until, signalNow, 1)
		rel, err := s.runningRelease(r.Context(), u)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		out.Items = append(out.Items, api.UnitSignals{App: u.App, Env: u.Env, Release: rel, Now: now})
	}
	s.reply(w, r, out)
}

// runningRelease names the unit's release that runs, r<id>, "" if none.
func (s *Server) runningRelease(ctx context.Context, u store.Unit) (string, error) {
	rel, err := s.store.CurrentRelease(ctx, u.App, u.Env)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	return "r" + strconv.FormatInt(rel.ID, 10), nil
}

// signalMarks are the unit's releases that began since, and the rollbacks
// of those that were rolled back since, oldest first.
func (s *Server) signalMarks(ctx context.Context, u store.Unit, since time.Time) ([]api.SignalMark, error) {
	out := []api.SignalMark{}
	f := store.ReleaseFilter{App: u.App, Env: u.Env, Limit: store.MaxLimit}
	for {
		rels, err := s.store.Releases(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, rel := range rels {
			name := "r" + strconv.FormatInt(rel.ID, 10)
			if rel.Status == store.RolledBack && rel.FinishedAt.After(since) {
				out = append(out, api.SignalMark{Time: rel.FinishedAt, Kind: "rollback", Release: name, Status: string(rel.Status), Reason: rel.Reason})
			}
			if rel.StartedAt.After(since) {
				kind := "deploy"
				switch rel.Trigger {
				case store.TriggerPromote:
					kind = "promotion"
				case store.TriggerRollback:
					kind = "rollback"
				}
				out = append(out, api.SignalMark{Time: rel.StartedAt, Kind: kind, Release: name, Status: string(rel.Status), Author: rel.Author, Reason: rel.Reason})
			}
		}
		// Releases come newest first: one that began before the period
		// ends the search (its rollback, if any, came after it).
		if len(rels) < f.Limit || !rels[len(rels)-1].StartedAt.After(since.Add(-24*time.Hour)) {
			break
		}
		f.Before = rels[len(rels)-1].ID
	}
	slices.SortStableFunc(out, func(a, b api.SignalMark) int { return a.Time.Compare(b.Time) })
	return out, nil
}
