package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// work delivers q's items one after the other, in order, until Close.
func (n *Notifier) work(q *queue) {
	defer n.wg.Done()
	for {
		d := n.head(q)
		if d == nil || !n.deliver(d) {
			return
		}
		// The queue and its gauge first, the spool file last: whoever sees
		// the spool empty sees the counts settled, and a crash in between
		// only sends the notification again at the next start.
		n.mu.Lock()
		q.items = q.items[1:]
		n.metrics.pending.WithLabelValues(q.target).Set(float64(len(q.items)))
		n.mu.Unlock()
		if err := n.spool.remove(d); err != nil {
			n.log.Error("removing a finished notification from the spool; it will be sent again at the next start",
				"target", d.Target, "delivery", d.ID, "err", err)
		}
	}
}

// head waits for q's first item; nil means Close.
func (n *Notifier) head(q *queue) *delivery {
	for {
		n.mu.Lock()
		if len(q.items) > 0 {
			d := q.items[0]
			n.mu.Unlock()
			return d
		}
		n.mu.Unlock()
		select {
		case <-q.wake:
		case <-n.ctx.Done():
			return nil
		}
	}
}

// outcome is the result of one attempt.
type outcome struct {
	err        error // nil: delivered
	retry      bool  // the error is worth another attempt
	retryAfter time.Duration
	hasAfter   bool // the receiver said when to retry
}

// deliver makes attempts until d is delivered or given up, and reports
// whether it ended (false: Close interrupted it, it stays spooled).
func (n *Notifier) deliver(d *delivery) bool {
	select {
	case <-n.ready:
	case <-n.ctx.Done():
		return false
	}
	log := n.log.With("target", d.Target, "kind", d.Event.Kind, "app", d.Event.App, "env", d.Event.Env, "delivery", d.ID)
	deadline := d.Queued.Add(n.retry.MaxAge)
	for {
		if !n.sleepUntil(d.Next) {
			return false
		}
		if time.Now().After(deadline) {
			n.giveUp(log, d, fmt.Errorf("expired after %s", n.retry.MaxAge))
			return true
		}
		t, ok := n.routes.Load().targets[d.Target]
		if !ok {
			n.giveUp(log, d, errors.New("the target is no longer in socle.yaml"))
			return true
		}
		if !wants(t, d.Event.Kind) {
			log.Info("notification dropped: the target no longer wants this kind of event")
			return true
		}
		out := n.attempt(t, d)
		if out.err != nil && n.ctx.Err() != nil {
			return false // interrupted by Close: not an attempt
		}
		d.Attempts++
		if out.err == nil {
			n.metrics.sent.WithLabelValues(d.Target).Inc()
			log.Debug("notification sent", "attempts", d.Attempts)
			return true
		}
		if !out.retry {
			n.giveUp(log, d, out.err)
			return true
		}
		if d.Attempts >= n.retry.Attempts {
			n.giveUp(log, d, fmt.Errorf("out of attempts: %w", out.err))
			return true
		}
		wait := out.retryAfter
		if !out.hasAfter {
			wait = n.backoff(d.Attempts)
		}
		next := time.Now().Add(wait)
		if next.After(deadline) {
			n.giveUp(log, d, fmt.Errorf("no attempt left before expiry: %w", out.err))
			return true
		}
		d.Next = next.UTC()
		if err := n.spool.write(d); err != nil {
			log.Error("recording a notification's attempts in the spool", "err", err)
		}
		n.metrics.retried.WithLabelValues(d.Target).Inc()
		log.Warn("notification not delivered, retrying", "attempt", d.Attempts, "retry_in", wait.Round(time.Millisecond), "err", out.err)
	}
}

// sleepUntil waits until t, and reports false if Close came first.
func (n *Notifier) sleepUntil(t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return n.ctx.Err() == nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// backoff is the wait after the given number of failed attempts: Base
// doubled for each attempt after the first, at most Max, with "equal jitter"
// (between half and all of it) so that targets recovering from an outage are
// not hit by every socle at the same instant.
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.retry.Base
	for i := 1; i < attempts && d < n.retry.Max; i++ {
		d *= 2
	}
	d = min(d, n.retry.Max)
	return d/2 + rand.N(d/2+1)
}

// giveUp ends d as a failure: logged, counted and recorded in the event log.
func (n *Notifier) giveUp(log *slog.Logger, d *delivery, err error) {
	n.metrics.failed.WithLabelValues(d.Target).Inc()
	log.Error("notification failed for good", "attempts", d.Attempts, "err", err)
	if n.events == nil {
		return
	}
	data, _ := json.Marshal(map[string]any{"target": d.Target, "event": d.Event.Kind, "delivery": d.ID, "attempts": d.Attempts})
	_, lerr := n.events.AppendEvent(n.ctx, store.Event{
		Kind:     "notify.failed",
		App:      d.Event.App,
		Env:      d.Event.Env,
		Revision: d.Event.Revision,
		Message:  fmt.Sprintf("notification %s to %q failed after %d attempt%s: %v", d.Event.Kind, d.Target, d.Attempts, plural(d.Attempts), err),
		Data:     data,
	})
	if lerr != nil && n.ctx.Err() == nil {
		log.Error("recording a failed notification in the event log", "err", lerr)
	}
}

// attempt POSTs d to t once. Its errors never hold t's URL.
func (n *Notifier) attempt(t spec.Notification, d *delivery) outcome {
	raw, source := t.URL, "url"
	if t.URLFromEnv != "" {
		raw, source = os.Getenv(t.URLFromEnv), "environment variable "+t.URLFromEnv
		if raw == "" {
			return outcome{err: fmt.Errorf("%s is not set", source)}
		}
	}
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return outcome{err: fmt.Errorf("%s is not an http or https URL", source)}
	}
	body, err := Render(t.Type, d.Event)
	if err != nil {
		return outcome{err: err}
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.retry.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, bytes.NewReader(body))
	if err != nil {
		return outcome{err: errors.New(redact(err.Error(), raw))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "socle")
	req.Header.Set("X-Socle-Event", string(d.Event.Kind))
	req.Header.Set("X-Socle-Delivery", d.ID)
	resp, err := n.client.Do(req)
	if err != nil {
		// *url.Error holds the URL: keep what it wraps, and redact that
		// too in case a layer below quotes it.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return outcome{err: fmt.Errorf("no answer within %s", n.retry.Timeout), retry: true}
		}
		return outcome{err: errors.New(redact(err.Error(), raw)), retry: true}
	}
	defer resp.Body.Close()
	// Read more of the answer than is shown, so that a URL it quotes is
	// redacted whole before the cut.
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return outcome{}
	}
	msg := "HTTP " + resp.Status
	if s := strings.TrimSpace(redact(strings.ToValidUTF8(string(answer), "?"), raw)); s != "" {
		msg += ": " + cut(s, 200)
	}
	out := outcome{
		err:   errors.New(msg),
		retry: resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500,
	}
	if out.retry {
		out.retryAfter, out.hasAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return out
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int64(365*24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// redact removes the URL raw, and the parts of it that carry secrets (user
// information, path, query), from s.
func redact(s, raw string) string {
	const mask = "[redacted]"
	s = strings.ReplaceAll(s, raw, mask)
	u, err := url.Parse(raw)
	if err != nil {
		return s
	}
	for _, part := range []string{u.User.String(), u.EscapedPath(), u.Path, u.RawQuery, u.Fragment} {
		if len(part) > 1 {
			s = strings.ReplaceAll(s, part, mask)
		}
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
