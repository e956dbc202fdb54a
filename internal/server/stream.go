package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
)

// sse writes server-sent events; safe for concurrent use.
type sse struct {
	mu sync.Mutex
	w  http.ResponseWriter
	f  http.Flusher
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	s := &sse{w: w, f: f}
	s.flush()
	return s
}

// sseBreaks are what would end a data line early: a log line holding a
// carriage return would otherwise start a field of its own (an event: end
// of its own making).
var sseBreaks = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

// send writes one event; a line break in data (JSON has none) is sent as
// a space.
func (s *sse) send(id, event, data string) error {
	data = sseBreaks.Replace(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	b.WriteString("data: " + data + "\n\n")
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	s.flush()
	return nil
}

func (s *sse) comment(text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return err
	}
	s.flush()
	return nil
}

func (s *sse) flush() {
	if s.f != nil {
		s.f.Flush()
	}
}

// wantsSSE reports whether the client asked for server-sent events rather
// than plain text.
func wantsSSE(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// getLogs streams the output of a unit's replicas, each line prefixed with
// its replica and its secrets redacted: as server-sent events (one data line
// per log line) when asked, else as plain text. With follow=true it goes on
// until the client leaves.
func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) {
	app, env := r.PathValue("app"), r.PathValue("env")
	follow := r.URL.Query().Get("follow") == "true"
	// The replicas of env's runtime; the local runtime's for an
	// environment no longer in force, whose replicas ran here if anywhere.
	drv := s.driver
	if d, err := s.runtimes.ReplicasOf(env); err == nil && d != nil {
		drv = d
	}
	all, err := drv.List(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "runtime", err.Error())
		return
	}
	var found []runtime.Status
	for _, st := range all {
		if st.Ref.App == app && st.Ref.Env == env {
			found = append(found, st)
		}
	}
	if len(found) == 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no replica of %s runs in %s", app, env))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go s.watchAccess(ctx, r, api.AccessTeam, cancel)
	red := s.redactor()
	out, _ := startLines(w, r)
	var wg sync.WaitGroup
	for _, st := range found {
		rc, err := drv.Logs(ctx, st.Handle, follow)
		if err != nil {
			continue
		}
		wg.Go(func() {
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				out(fmt.Sprintf("[%s] %s", st.Ref, red.String(sc.Text())))
			}
		})
	}
	wg.Wait()
}

// startLines starts an answer of lines: server-sent events (a data line
// per line) when the client asked for them, else plain text. out writes
// one line, safe for concurrent use; stream is nil for plain text.
func startLines(w http.ResponseWriter, r *http.Request) (out func(line string), stream *sse) {
	if wantsSSE(r) {
		stream = startSSE(w)
		return func(line string) { stream.send("", "", line) }, stream
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	return func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, line)
		if flusher != nil {
			flusher.Flush()
		}
	}, nil
}

// keepAlive is how long an event stream stays silent before it sends a
// comment, so that proxies between it and its client keep it open.
const keepAlive = 15 * time.Second

// streamEvents sends the event log live, a "cell" event whenever a cell
// of the environment matrix changes, and a "stack" event whenever the
// engine's status of a stack instance does. It reads the store only to
// catch up (from Last-Event-ID, or when it fell behind); new events come
// from the process's hub, which reads them once for every stream.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	fromNow := false
	if err != nil {
		after, err = intParam(r, "after")
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		fromNow = q.Get("after") == ""
	}
	// Subscribed before the catch-up reads the store: an event appended
	// between the two is seen twice (and sent once), never missed.
	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)
	if fromNow {
		if after, err = s.store.LastEventID(r.Context()); err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
	}
	filter := store.EventFilter{AfterID: after, Kind: q.Get("kind"), App: q.Get("app"), Env: q.Get("env"), Limit: store.MaxLimit}
	// other: a cell (an app's, or a stack instance's) the filter leaves out.
	other := func(app, env string) bool {
		return (filter.App != "" && app != filter.App) || (filter.Env != "" && env != filter.Env)
	}
	user := callerOf(r).User
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go s.watchAccess(ctx, r, api.AccessMember, cancel)
	stream := startSSE(w)
	lastWrite := time.Now()
	send := func(e store.Event) bool {
		if e.ID <= filter.AfterID || !filter.Matches(e) {
			return true
		}
		b, _ := json.Marshal(wireEvent(e, s.redactor()))
		if stream.send(strconv.FormatInt(e.ID, 10), e.Kind, string(b)) != nil {
			return false
		}
		filter.AfterID, lastWrite = e.ID, time.Now()
		return true
	}
	// catchUp sends what the store holds after the last event sent.
	catchUp := func() bool {
		for {
			evs, err := s.store.Events(ctx, filter)
			s.hub.catchUps.Add(1)
			if err != nil {
				return false
			}
			for _, e := range evs {
				if !send(e) {
					return false
				}
			}
			if len(evs) < store.MaxLimit {
				return true
			}
		}
	}
	cells := map[plan.Key]cellState{}
	first := true
	stacks := map[plan.Key]stackCellState{}
	firstStacks := true
	// redraw sends the cells and stack instances that changed since it
	// last looked (the first time, it only looks).
	redraw := func() bool {
		red := s.redactor()
		if m, err := s.matrixFor(user); err == nil {
			for k, st := range s.cellStates(m) {
				if cells[k] == st {
					continue
				}
				cells[k] = st
				if first || other(k.App, k.Env) {
					continue
				}
				a, e := m.repo.App(k.App), m.repo.Environment(k.Env)
				if a == nil || e == nil {
					continue
				}
				b, _ := json.Marshal(map[string]any{"app": k.App, "cell": s.cell(r, m, a, e)})
				if stream.send("", "cell", red.String(string(b))) != nil {
					return false
				}
				lastWrite = time.Now()
			}
			first = false
		}
		for _, item := range s.changedStacks(stacks, firstStacks) {
			if other(item.Stack, item.Instance) {
				continue
			}
			b, _ := json.Marshal(map[string]any{"stack": item})
			if stream.send("", "stack", red.String(string(b))) != nil {
				return false
			}
			lastWrite = time.Now()
		}
		firstStacks = false
		return true
	}
	if !catchUp() || !redraw() {
		return
	}
	quiet := time.NewTicker(keepAlive)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.hub.done:
			return
		case <-quiet.C:
			if time.Since(lastWrite) >= keepAlive {
				if stream.comment("keep-alive") != nil {
					return
				}
				lastWrite = time.Now()
			}
			continue
		case <-sub.ready:
		}
		evs, behind, changed := sub.take()
		if behind {
			if !catchUp() {
				return
			}
		}
		for _, e := range evs {
			if !send(e) {
				return
			}
		}
		if changed && !redraw() {
			return
		}
	}
}

// cellState is what makes a cell look different.
type cellState struct {
	phase, reason, revision, artifact string
	logTail                           string // a build's progress
	ready, desired                    int
	release                           int64
}

func (s *Server) cellStates(m *matrix) map[plan.Key]cellState {
	out := make(map[plan.Key]cellState, len(m.units))
	for _, a := range m.repo.Apps {
		for _, e := range m.envs {
			k := plan.Key{App: a.Name, Env: e.Name}
			u, ok := m.units[k]
			st := cellState{phase: "Absent"}
			if ok {
				st = cellState{phase: string(u.Phase), reason: u.Message, revision: u.Revision, artifact: u.Artifact, ready: u.Ready, desired: u.Desired, release: u.Release, logTail: u.LogTail}
			}
			if b, ok := m.blocked[k]; ok {
				st.phase, st.reason, st.logTail = string(reconcile.Blocked), b.Reason, ""
			}
			if e.Promotion != nil {
				if from, ok := m.units[plan.Key{App: a.Name, Env: e.Promotion.From}]; ok {
					st.reason += "\x00" + from.Artifact // what is incoming changes the cell too
				}
			}
			out[k] = st
		}
	}
	return out
}

// stackCellState is what makes a stack instance's cell look different:
// the engine's status of it, whose message carries the plan's summary.
type stackCellState struct {
	phase, reason, message, revision string
}

// changedStacks are the stack instances whose engine status changed since
// seen was last updated (none the first time, which only fills it), each
// as GET /api/v1/stacks shows it: the matrix redraws their cells.
func (s *Server) changedStacks(seen map[plan.Key]stackCellState, first bool) []api.StackInstance {
	if s.stacks == nil {
		return nil
	}
	repo, _ := s.pipeline.InForce()
	if repo == nil {
		return nil
	}
	var out []api.StackInstance
	var view *stackView
	for _, u := range s.engine.Status() {
		if u.Kind != stack.KindID {
			continue
		}
		k := plan.Key{App: u.App, Env: u.Env}
		st := stackCellState{phase: string(u.Phase), reason: string(u.Reason), message: u.Message, revision: u.Revision}
		if seen[k] == st {
			continue
		}
		seen[k] = st
		if first {
			continue
		}
		t := stack.Target{Stack: repo.Stack(u.App), Instance: u.Env}
		if t.Stack == nil || !slices.Contains(t.Stack.Instances(), u.Env) {
			continue // gone from the revision in force
		}
		if view == nil {
			view = newStackView(repo, s.stacks)
		}
		// The status as the engine has it now, which the store may not
		// hold yet, read by the list's own code.
		status, _ := json.Marshal(u)
		item, _ := view.instance(t, store.UnitState{Kind: stack.KindID, Name: u.App, Env: u.Env, Status: status, UpdatedAt: u.UpdatedAt}, true)
		out = append(out, item)
	}
	return out
}

// recheckAccess is how often a stream checks that its caller may still
// see it: a revoked token or a user taken out of teams.yaml loses it.
const recheckAccess = 30 * time.Second

// watchAccess cancels a stream once r's token or role no longer allows
// access, checked every recheckAccess until ctx ends.
func (s *Server) watchAccess(ctx context.Context, r *http.Request, access api.Access, cancel func()) {
	t := time.NewTicker(recheckAccess)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rr, err := s.verify(r)
		if err != nil || !s.authorize(discard{}, rr, access) {
			s.log.Info("ending a stream: its caller lost access", "user", callerOf(r).User, "path", r.URL.Path)
			cancel()
			return
		}
	}
}

// discard is a ResponseWriter for checks whose answer is not sent.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
