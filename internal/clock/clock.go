// Package clock is socle's sense of time: the system's in production, one a
// test moves in tests. Everything that decides by the time of day (gates,
// soaks, freezes, canary pauses, backoffs) reads a Clock instead of calling
// time.Now, so that a test can move a day ahead in a millisecond instead of
// sleeping, and so that what it asserts cannot depend on how fast the
// machine is.
//
// Three clocks exist: System; Fake, which moves only when told (for tests
// inside one process); and Offset, the system's time plus an offset read
// from a file, which a test running socle's binary moves by writing the
// file (socle up --clock-file, a hidden flag for tests).
package clock

import (
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// After returns a channel that receives the clock's time once d has
	// passed on this clock (at once when d ≤ 0). Unlike time.After, a
	// clock that jumps ahead fires it when the jump passes its deadline.
	After(d time.Duration) <-chan time.Time
}

// System is the machine's clock.
var System Clock = system{}

type system struct{}

func (system) Now() time.Time                         { return time.Now() }
func (system) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Since is the time elapsed on c since t.
func Since(c Clock, t time.Time) time.Duration { return c.Now().Sub(t) }

// Until is the time left on c until t.
func Until(c Clock, t time.Time) time.Duration { return t.Sub(c.Now()) }

// Or returns c, or System when c is nil: for configurations whose zero
// value must keep working.
func Or(c Clock) Clock {
	if c == nil {
		return System
	}
	return c
}
