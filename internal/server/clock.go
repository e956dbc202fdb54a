package server

import "time"

// Clock is the server's time: when gates open, when the reconciler's
// backoffs end. Tests pass one they move, to see hours pass at once.
type Clock interface {
	Now() time.Time
	// After sends the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
