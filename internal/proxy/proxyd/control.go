package proxyd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/proxy"
)

// maxRouteBody bounds a route's JSON: 1024 backends of a few hundred bytes.
const maxRouteBody = 1 << 20

// Stats is what GET /v1/stats answers: a proxy.Snapshot's counts (its
// JSON form) with the instant's requests in flight and backends.
type Stats struct {
	Counts   proxy.Snapshot `json:"counts"`
	InFlight int64          `json:"inFlight"`
	Backends int            `json:"backends"`
}

func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.info) })
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, r *http.Request) {
		routes := d.p.Routes()
		if routes == nil {
			routes = []proxy.RouteStatus{}
		}
		writeJSON(w, http.StatusOK, routes)
	})
	mux.HandleFunc("GET /v1/routes/{name}", func(w http.ResponseWriter, r *http.Request) {
		rt, ok := d.p.Route(r.PathValue("name"))
		if !ok {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "no route " + r.PathValue("name"), Code: "not_found"})
			return
		}
		writeJSON(w, http.StatusOK, rt)
	})
	mux.HandleFunc("PUT /v1/routes/{name}", func(w http.ResponseWriter, r *http.Request) {
		var rt proxy.Route
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRouteBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rt); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "route " + r.PathValue("name") + ": " + err.Error(), Code: "invalid"})
			return
		}
		if rt.Name != r.PathValue("name") {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("route %q sent to /v1/routes/%s", rt.Name, r.PathValue("name")), Code: "invalid"})
			return
		}
		if err := rt.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Code: "invalid"})
			return
		}
		ctx, cancel := changeContext(r)
		defer cancel()
		d.answerChange(w, d.p.SetRoute(ctx, rt))
	})
	mux.HandleFunc("DELETE /v1/routes/{name}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := changeContext(r)
		defer cancel()
		d.answerChange(w, d.p.DeleteRoute(ctx, r.PathValue("name")))
	})
	mux.HandleFunc("GET /v1/pauses", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.p.Pauses()) })
	mux.HandleFunc("PUT /v1/pauses", func(w http.ResponseWriter, r *http.Request) {
		var pauses []proxy.Pause
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRouteBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pauses); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "pauses: " + err.Error(), Code: "invalid"})
			return
		}
		for _, pa := range pauses {
			if err := pa.Validate(); err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Code: "invalid"})
				return
			}
		}
		d.answerChange(w, d.p.SetPauses(r.Context(), pauses))
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		s := d.p.Stats(r.URL.Query().Get("route"), r.URL.Query().Get("version"))
		writeJSON(w, http.StatusOK, Stats{Counts: s, InFlight: s.InFlight, Backends: s.Backends})
	})
	mux.HandleFunc("GET /v1/listener", func(w http.ResponseWriter, r *http.Request) { d.sendListener(w, r, d.ln) })
	mux.HandleFunc("GET /v1/tls-listener", func(w http.ResponseWriter, r *http.Request) {
		if d.tlsLn == nil {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "no HTTPS listener", Code: "not_found"})
			return
		}
		d.sendListener(w, r, d.tlsLn)
	})
	mux.HandleFunc("POST /v1/stop", func(w http.ResponseWriter, r *http.Request) {
		d.stopOnce.Do(func() { d.log.Info("asked to stop: draining") })
		d.stop()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	return mux
}

// changeContext is the context of a change: the request's, bounded by the
// time socle gives it (the Socle-Timeout header).
func changeContext(r *http.Request) (context.Context, context.CancelFunc) {
	if d, err := time.ParseDuration(r.Header.Get(timeoutHeader)); err == nil {
		return context.WithTimeout(r.Context(), d)
	}
	return context.WithCancel(r.Context())
}

// answerChange answers a SetRoute or DeleteRoute by its error.
func (d *daemon) answerChange(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, proxy.ErrUnhealthy):
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error(), Code: "unhealthy"})
	case errors.Is(err, proxy.ErrNotDrained):
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: err.Error(), Code: "not_drained"})
	default:
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error(), Code: "internal"})
	}
}

// sendListener hands the listening socket to the caller: the connection
// is taken from the HTTP server and the descriptor sent on it as
// SCM_RIGHTS, with one line of JSON (the Info) as the message's bytes.
func (d *daemon) sendListener(w http.ResponseWriter, r *http.Request, ln net.Listener) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "the listener has no descriptor", Code: "internal"})
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error(), Code: "internal"})
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "cannot take the connection", Code: "internal"})
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return
	}
	msg, _ := json.Marshal(d.info)
	msg = append(msg, '\n')
	var sendErr error
	if err := raw.Control(func(fd uintptr) {
		_, _, sendErr = uc.WriteMsgUnix(msg, unix.UnixRights(int(fd)), nil)
	}); err != nil {
		sendErr = err
	}
	if sendErr != nil {
		d.log.Warn("sending the listener", "err", sendErr)
	}
}

// listenControl listens on the control socket, mode 0600, and lets only
// this process's uid in (peerUID).
func listenControl(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket %s: %d bytes, a Unix socket's path has at most %d: use a data directory of a shorter path, or socle up --proxy inprocess", path, len(path), maxSocketPath)
	}
	_ = os.Remove(path) // a socket left by a process of this pid that died
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return sameUID{l.(*net.UnixListener)}, nil
}

// sameUID accepts only the connections of processes of this process's
// effective uid.
type sameUID struct{ *net.UnixListener }

func (l sameUID) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if uid, err := peerUID(c); err == nil && uid == os.Geteuid() {
			return c, nil
		}
		c.Close()
	}
}
