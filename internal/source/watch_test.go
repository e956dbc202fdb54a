package source

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// watch runs a Watcher on r until the test ends and returns what it reports.
func watch(t *testing.T, r *Repo, interval time.Duration) (*Watcher, <-chan Revision, <-chan error) {
	t.Helper()
	revs, errs := make(chan Revision, 100), make(chan error, 100)
	var running sync.Mutex // OnRevision must never run twice at once
	w := &Watcher{
		Repo:     r,
		Interval: interval,
		OnRevision: func(_ context.Context, rev Revision) {
			if !running.TryLock() {
				t.Error("OnRevision called while another call runs")
				return
			}
			defer running.Unlock()
			revs <- rev
		},
		OnError: func(err error) { errs <- err },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	return w, revs, errs
}

func next[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

// none fails if ch delivers something during d.
func none[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(d):
	}
}

func TestWatcherTrigger(t *testing.T) {
	t.Parallel()
	up := newGoGitUpstream(t, "main")
	first := up.Commit(t, "one", map[string]string{"a": "1"})
	r := open(t, up.Dir())
	// An hour between polls: only Trigger can make the watcher fetch.
	w, revs, errs := watch(t, r, time.Hour)
	if got := next(t, revs, "first revision"); got.SHA != first {
		t.Fatalf("first report = %s, want the head %s", got.SHA, first)
	}
	second := up.Commit(t, "two", map[string]string{"a": "2"})
	w.Trigger()
	if got := next(t, revs, "revision after Trigger"); got.SHA != second {
		t.Fatalf("after Trigger: %s, want %s", got.SHA, second)
	}
	// A burst of triggers with nothing new reports nothing.
	for range 10 {
		w.Trigger()
	}
	third := up.Commit(t, "three", map[string]string{"a": "3"})
	w.Trigger()
	if got := next(t, revs, "revision after a burst"); got.SHA != third {
		t.Fatalf("after a burst of triggers: %s, want %s", got.SHA, third)
	}
	none(t, errs, 0, "error")
}

func TestWatcherPollsAndRecovers(t *testing.T) {
	t.Parallel()
	up := newGoGitUpstream(t, "main")
	first := up.Commit(t, "one", map[string]string{"a": "1"})
	r := open(t, up.Dir())
	_, revs, errs := watch(t, r, 5*time.Millisecond)
	if got := next(t, revs, "first revision"); got.SHA != first {
		t.Fatalf("first report = %s, want %s", got.SHA, first)
	}
	// Dozens of polls find nothing new and report nothing.
	none(t, revs, 200*time.Millisecond, "report with nothing new")

	second := up.Commit(t, "two", map[string]string{"a": "2"})
	if got := next(t, revs, "polled revision"); got.SHA != second {
		t.Fatalf("poll: %s, want %s", got.SHA, second)
	}

	// The origin goes away: errors; it comes back with a new commit: found.
	gone := up.Dir() + ".gone"
	if err := os.Rename(up.Dir(), gone); err != nil {
		t.Fatal(err)
	}
	next(t, errs, "fetch error")
	next(t, errs, "retried fetch error")
	if err := os.Rename(gone, up.Dir()); err != nil {
		t.Fatal(err)
	}
	third := up.Commit(t, "three", map[string]string{"a": "3"})
	if got := next(t, revs, "revision after recovery"); got.SHA != third {
		t.Fatalf("after recovery: %s, want %s", got.SHA, third)
	}
	// Drain the errors from before the recovery; none come after.
	for len(errs) > 0 {
		<-errs
	}
	none(t, errs, 100*time.Millisecond, "error after recovery")
}

// TestWatcherStartOffline starts while the origin is unreachable: it reports
// the mirror's head and the error.
func TestWatcherStartOffline(t *testing.T) {
	t.Parallel()
	up := newGoGitUpstream(t, "main")
	first := up.Commit(t, "one", map[string]string{"a": "1"})
	r := open(t, up.Dir())
	if err := os.Rename(up.Dir(), up.Dir()+".gone"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	revs := make(chan Revision, 10)
	w := &Watcher{Repo: r, Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(&lockedWriter{&mu, &logs}, nil)),
		OnRevision: func(_ context.Context, rev Revision) { revs <- rev }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	if got := next(t, revs, "mirror's head"); got.SHA != first {
		t.Fatalf("report = %s, want %s", got.SHA, first)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Contains(logs.Bytes(), []byte("fetching the platform repository failed")) {
		t.Errorf("with no OnError the failure is logged; log:\n%s", logs.String())
	}

	if err := (&Watcher{}).Run(context.Background()); err == nil {
		t.Error("Run without a Repo succeeded")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		interval time.Duration
		failures int
		want     time.Duration
	}{
		{time.Minute, 1, time.Second},
		{time.Minute, 2, 2 * time.Second},
		{time.Minute, 6, 32 * time.Second},
		{time.Minute, 7, time.Minute},
		{time.Minute, 1000, time.Minute},
		{100 * time.Millisecond, 1, 100 * time.Millisecond},
	} {
		if got := retryDelay(tc.interval, tc.failures); got != tc.want {
			t.Errorf("retryDelay(%v, %d) = %v, want %v", tc.interval, tc.failures, got, tc.want)
		}
	}
}
