package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/store"
)

// eventsChannel is the channel of the NOTIFY sent by every transaction
// that appends events.
const eventsChannel = "socle_events"

var _ store.EventWatcher = (*DB)(nil)

// lockEvents takes the events lock for the rest of tx (see lock) and
// queues a notification on eventsChannel, which PostgreSQL delivers to
// the listeners when tx commits, and never if it rolls back. The
// notification carries nothing: a listener reads the events after the
// last one it delivered, so that a notification lost or folded into
// another (PostgreSQL sends one per channel and payload per transaction)
// costs latency, never an event.
func lockEvents(ctx context.Context, tx pgx.Tx) error {
	if err := lock(ctx, tx, eventsLock); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT pg_notify('`+eventsChannel+`', '')`)
	return err
}

// listenRetry is how long WatchEvents waits before it connects again
// after its connection failed.
const listenRetry = time.Second

// WatchEvents implements store.EventWatcher with LISTEN on a connection
// of its own (outside the pool: a listening session must stay the same
// session). It calls wake once listening, at each notification, and after
// each reconnection, since notifications sent while it was away are lost.
func (db *DB) WatchEvents(ctx context.Context, wake func()) error {
	for ctx.Err() == nil {
		db.listen(ctx, wake)
		select {
		case <-ctx.Done():
		case <-time.After(listenRetry):
		}
	}
	return nil
}

// listen listens on one connection until it fails or ctx ends.
func (db *DB) listen(ctx context.Context, wake func()) {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return
	}
	defer func() {
		closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(closing)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+eventsChannel); err != nil {
		return
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return
		}
		wake()
	}
}
