package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/stack"
)

// listStackLogs lists the run logs kept of a stack instance.
func (s *Server) listStackLogs(w http.ResponseWriter, r *http.Request) {
	_, _, t, ok := s.stackRequest(w, r, nil)
	if !ok {
		return
	}
	out := api.StackLogList{Stack: t.Stack.Name, Instance: t.Instance, Items: []api.StackRunLog{}}
	if s.stacks != nil {
		logs, err := s.stacks.Logs(t.Stack.Name, t.Instance)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "stacks", err.Error())
			return
		}
		for i, l := range logs {
			// The lock alone does not say it: a cached plan takes it for
			// an instant, and writes no log.
			out.Items = append(out.Items, api.StackRunLog{Name: l.Name, Kind: l.Kind, Started: l.Started, Size: l.Size,
				Running: i == 0 && !l.Ended && s.stackRunning(t)})
		}
	}
	s.reply(w, r, out)
}

// stackRunning reports whether a run of t goes on now.
func (s *Server) stackRunning(t stack.Target) bool {
	_, held, err := s.stacks.Holder(t.Stack.Name, t.Instance)
	return held && err == nil
}

// getStackLog sends one run log of a stack instance, secrets redacted;
// with follow=true, a log whose run goes on is streamed until it ends
// (the runner marks the log ended after its last line), its run's
// process died (no lock held: the log grows no more), or a newer run
// begins.
func (s *Server) getStackLog(w http.ResponseWriter, r *http.Request) {
	_, _, t, ok := s.stackRequest(w, r, nil)
	if !ok {
		return
	}
	if s.stacks == nil {
		writeError(w, http.StatusNotFound, "not_found", notRun)
		return
	}
	name := r.PathValue("log")
	newest := func() string {
		logs, _ := s.stacks.Logs(t.Stack.Name, t.Instance)
		if len(logs) == 0 {
			return ""
		}
		return logs[0].Name
	}
	if name == "latest" {
		if name = newest(); name == "" {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s @ %s has run no terraform yet", t.Stack.Name, t.Instance))
			return
		}
	}
	rc, err := s.stacks.OpenLog(t.Stack.Name, t.Instance, name)
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no log %q of %s @ %s", name, t.Stack.Name, t.Instance))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "stacks", err.Error())
		return
	}
	defer rc.Close()
	follow := r.URL.Query().Get("follow") == "true"
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if follow {
		go s.watchAccess(ctx, r, api.AccessMember, cancel)
	}
	red := s.redactor()
	out, stream := startLines(w, r)
	br := bufio.NewReaderSize(rc, 64<<10)
	var partial []byte
	// send sends the complete lines there are; at the end, the rest too.
	send := func(end bool) error {
		for {
			chunk, err := br.ReadSlice('\n')
			partial = append(partial, chunk...)
			switch {
			case err == nil:
				out(red.String(string(partial[:len(partial)-1])))
				partial = partial[:0]
			case errors.Is(err, bufio.ErrBufferFull):
				continue
			case errors.Is(err, io.EOF):
				if end && len(partial) > 0 {
					out(red.String(string(partial)))
					partial = partial[:0]
				}
				return nil
			default:
				return err
			}
		}
	}
	tick := time.NewTicker(stackLogPoll)
	defer tick.Stop()
	for {
		// Whether the run went on is read before what it wrote: a run
		// seen ended has written all there is to read.
		going := follow && !s.stacks.LogEnded(t.Stack.Name, t.Instance, name) && s.stackRunning(t) && newest() == name
		if err := send(!going); err != nil || !going {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	if stream != nil {
		stream.send("", "end", "{}")
	}
}

// stackLogPoll is how often a followed stack run's log file is read again.
const stackLogPoll = 300 * time.Millisecond
