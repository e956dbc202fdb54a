package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

// wakes returns a wake function and the channel it signals on.
func wakes() (func(), <-chan struct{}) {
	c := make(chan struct{}, 1)
	return func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}, c
}

func waitWake(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Minute):
		t.Fatalf("not woken: %s", what)
	}
}

// drain empties c of a wake already signalled.
func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// TestWatchEventsAcrossReplicasAndReconnects: a watcher on one replica is
// woken by the events another appends (AppendEvent and ApplyDesired's
// batch); when its listening session is killed, it connects again and wakes its reader,
// so an event appended while it was away is read all the same.
func TestWatchEventsAcrossReplicasAndReconnects(t *testing.T) {
	t.Parallel()
	dbs := replicas(t, 2)
	watcher, writer := dbs[0], dbs[1]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wake, woken := wakes()
	done := make(chan error, 1)
	go func() { done <- watcher.WatchEvents(ctx, wake) }()
	waitWake(t, woken, "once listening")

	if _, err := writer.AppendEvent(ctx, store.Event{Kind: "test", Message: "one"}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, woken, "after AppendEvent on the other replica")

	rev := store.Revision{SHA: "1111111111111111111111111111111111111111", Author: "a", Email: "a@example.com", Time: time.Now(), Message: "m", Valid: true}
	if err := writer.PutRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.ApplyDesired(ctx, rev.SHA, nil, nil, store.Plan{}, []store.Event{{Kind: "test", Message: "two"}}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, woken, "after ApplyDesired with an event")

	// The session that listens is killed: the watcher connects again and
	// wakes its reader, who reads what was appended meanwhile.
	var killed int
	err := writer.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+eventsChannel+`'`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminating the listening session: %d terminated, %v", killed, err)
	}
	drain(woken)
	if _, err := writer.AppendEvent(ctx, store.Event{Kind: "test", Message: "three"}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, woken, "after the listening session was killed")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("WatchEvents returned %v", err)
	}
}
