package source

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is how often a Watcher polls when its Interval is not set.
const DefaultInterval = time.Minute

// Watcher polls a Repo at an interval, and at once when Trigger is called (by
// the git webhook), and calls OnRevision for each new head of the branch.
type Watcher struct {
	// Repo to fetch.
	Repo *Repo
	// Interval between two fetches; DefaultInterval if zero.
	Interval time.Duration
	// OnRevision is called with the head at start, then with each new head,
	// one call at a time from Run's goroutine. Heads that come and go while
	// it runs are not reported, only the latest.
	OnRevision func(context.Context, Revision)
	// OnError is called when a fetch fails. The fetch is tried again sooner
	// than the interval, waiting twice as long after each failure, up to the
	// interval. If OnError is nil, failures are logged.
	OnError func(error)
	// Logger, optional.
	Logger *slog.Logger

	once    sync.Once
	trigger chan struct{}
}

// Run fetches at once and reports the head (the mirror's head if that fetch
// fails), then fetches at every interval and on Trigger until ctx is done, when
// it returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Repo == nil {
		return errors.New("watcher: no repository")
	}
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("branch", w.Repo.Branch())
	trigger := w.triggers()

	var reported string
	report := func(ctx context.Context, rev Revision) {
		if rev.SHA == reported {
			return
		}
		reported = rev.SHA
		log.Info("new revision of the platform repository", "revision", rev.Short(), "subject", rev.Subject())
		if w.OnRevision != nil {
			w.OnRevision(ctx, rev)
		}
	}
	failures := 0
	poll := func() time.Duration {
		start := time.Now()
		rev, _, err := w.Repo.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return interval
			}
			failures++
			if w.OnError != nil {
				w.OnError(err)
			} else {
				log.Warn("fetching the platform repository failed", "err", err, "failures", failures)
			}
			return retryDelay(interval, failures)
		}
		failures = 0
		report(context.WithValue(ctx, fetchKey{}, fetched{start, time.Now()}), rev)
		return interval
	}

	wait := poll()
	if reported == "" && ctx.Err() == nil {
		if rev, err := w.Repo.Head(); err == nil {
			report(ctx, rev)
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-trigger:
		}
		timer.Reset(poll())
	}
}

type fetchKey struct{}

type fetched struct{ start, end time.Time }

// Fetched says when the fetch that found the revision OnRevision is told
// of ran (its trace's fetch span); false for the mirror's head reported
// when the first fetch failed.
func Fetched(ctx context.Context) (start, end time.Time, ok bool) {
	f, ok := ctx.Value(fetchKey{}).(fetched)
	return f.start, f.end, ok
}

// Trigger makes Run fetch now. It does not block; triggers that arrive while
// a fetch is pending or running make one more fetch, not one each.
func (w *Watcher) Trigger() {
	select {
	case w.triggers() <- struct{}{}:
	default:
	}
}

func (w *Watcher) triggers() chan struct{} {
	w.once.Do(func() { w.trigger = make(chan struct{}, 1) })
	return w.trigger
}

// retryDelay is the wait after the n-th failure in a row: a second (or the
// interval, if shorter), doubled at each failure, at most the interval.
func retryDelay(interval time.Duration, n int) time.Duration {
	d := min(time.Second, interval)
	for i := 1; i < n && d < interval; i++ {
		d *= 2
	}
	return min(d, interval)
}
