package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/proxy/proxyd"
	"github.com/socle-dev/socle/internal/store"
)

// Maintenance mode: a pause is recorded in the store (the truth, shared by
// the socle processes of a PostgreSQL store) and applied to the proxy, in
// process or in the proxy process, which saves it with its route table. The
// store's pauses are applied again at start and every pauseResync, so that
// a proxy that missed a change (away while it was made, or changed by
// another socle) catches up.

// pauseResync is how often the proxy's pauses are set from the store.
const pauseResync = 5 * time.Second

// pauser is the part of the proxy (proxy.Proxy, proxyd.Client) that serves
// pauses.
type pauser interface {
	SetPauses(ctx context.Context, pauses []proxy.Pause) error
	Pauses() []proxy.Pause
}

var (
	_ pauser = (*proxy.Proxy)(nil)
	_ pauser = (*proxyd.Client)(nil)
)

// applyPauses sets the proxy's pauses to the store's.
func (s *Server) applyPauses(ctx context.Context) error {
	pr, ok := s.router.(pauser)
	if !ok {
		return nil
	}
	ps, err := s.store.Pauses(ctx)
	if err != nil {
		return err
	}
	out := make([]proxy.Pause, len(ps))
	for i, p := range ps {
		out[i] = proxyPause(p)
	}
	return pr.SetPauses(ctx, out)
}

// proxyPause is p as the proxy serves it.
func proxyPause(p store.Pause) proxy.Pause {
	scope := p.Env
	if p.App != "" {
		scope = p.App + "." + p.Env
	}
	return proxy.Pause{Scope: scope, Message: p.Message, RetryAfter: int(p.RetryAfter / time.Second)}
}

// syncPauses applies the store's pauses now and every pauseResync until
// ctx ends.
func (s *Server) syncPauses(ctx context.Context) {
	t := time.NewTicker(pauseResync)
	defer t.Stop()
	failing := false
	for {
		err := s.applyPauses(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.log.Warn("applying pauses to the proxy", "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("pauses applied to the proxy again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func wirePause(p store.Pause) api.Pause {
	return api.Pause{App: p.App, Env: p.Env, Message: p.Message, RetryAfterSeconds: int(p.RetryAfter / time.Second), By: p.By, At: p.At}
}

func (s *Server) listPauses(w http.ResponseWriter, r *http.Request) {
	ps, err := s.store.Pauses(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	out := api.PauseList{Items: []api.Pause{}}
	for _, p := range ps {
		out.Items = append(out.Items, wirePause(p))
	}
	s.reply(w, r, out)
}

// pausesOf returns the pauses that hold app ("": every pause).
func (s *Server) pausesOf(ctx context.Context, app string) ([]api.Pause, error) {
	ps, err := s.store.Pauses(ctx)
	if err != nil {
		return nil, err
	}
	ps = slices.DeleteFunc(ps, func(p store.Pause) bool { return app != "" && p.App != "" && p.App != app })
	if len(ps) == 0 {
		return nil, nil
	}
	return each(ps, wirePause), nil
}

func (s *Server) pauseApp(w http.ResponseWriter, r *http.Request) {
	s.pause(w, r, r.PathValue("app"), r.PathValue("env"))
}

func (s *Server) pauseEnv(w http.ResponseWriter, r *http.Request) {
	env := r.PathValue("env")
	if repo := s.repoInForce(); repo == nil || repo.Environment(env) == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no environment %q", env))
		return
	}
	s.pause(w, r, "", env)
}

func (s *Server) resumeApp(w http.ResponseWriter, r *http.Request) {
	s.resume(w, r, r.PathValue("app"), r.PathValue("env"))
}

func (s *Server) resumeEnv(w http.ResponseWriter, r *http.Request) {
	s.resume(w, r, "", r.PathValue("env"))
}

// maxPauseWait bounds a pause's Retry-After.
const maxPauseWait = 7 * 24 * time.Hour

func (s *Server) pause(w http.ResponseWriter, r *http.Request, app, env string) {
	var req api.PauseRequest
	if !readBody(w, r, &req) {
		return
	}
	p := store.Pause{App: app, Env: env, Message: strings.TrimSpace(req.Message), By: callerOf(r).User}
	if req.RetryAfter != "" {
		d, err := time.ParseDuration(req.RetryAfter)
		if err != nil || d < 0 || d > maxPauseWait {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("retryAfter %q: want a duration from 0s to %s, such as 10m", req.RetryAfter, maxPauseWait))
			return
		}
		p.RetryAfter = (d + time.Second - 1).Truncate(time.Second)
	}
	if err := proxyPause(p).Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	action := "app.paused"
	if app == "" {
		action = "env.paused"
	}
	detail, _ := json.Marshal(map[string]any{"message": p.Message, "retryAfterSeconds": int(p.RetryAfter / time.Second)})
	out, err := s.store.SetPause(r.Context(), p, &store.AuditRecord{Actor: p.By, Action: action, App: app, Env: env, Detail: detail})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	if err := s.applyPauses(context.WithoutCancel(r.Context())); err != nil {
		writeError(w, http.StatusBadGateway, "proxy", fmt.Sprintf("the pause is recorded but the proxy did not take it yet (socle applies it again within %s): %v", pauseResync, err))
		return
	}
	s.log.Info("paused", "app", app, "env", env, "by", p.By)
	writeJSON(w, http.StatusOK, wirePause(out))
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request, app, env string) {
	ps, err := s.store.Pauses(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	i := slices.IndexFunc(ps, func(p store.Pause) bool { return p.App == app && p.Env == env })
	what := fmt.Sprintf("environment %s", env)
	if app != "" {
		what = fmt.Sprintf("%s in %s", app, env)
	}
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", what+" is not paused")
		return
	}
	action := "app.resumed"
	if app == "" {
		action = "env.resumed"
	}
	user := callerOf(r).User
	err = s.store.DeletePause(r.Context(), app, env, &store.AuditRecord{Actor: user, Action: action, App: app, Env: env})
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", what+" is not paused")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	if err := s.applyPauses(context.WithoutCancel(r.Context())); err != nil {
		writeError(w, http.StatusBadGateway, "proxy", fmt.Sprintf("the resume is recorded but the proxy did not take it yet (socle applies it again within %s): %v", pauseResync, err))
		return
	}
	s.log.Info("resumed", "app", app, "env", env, "by", user)
	writeJSON(w, http.StatusOK, wirePause(ps[i]))
}
