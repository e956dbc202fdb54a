package clock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Offset is the system's time plus an offset that a file holds, in Go's
// duration syntax ("26h", "-90m"; an empty or missing file is no offset).
// A test that runs socle's binary moves it forward by rewriting the file
// (write a new file and rename it over the old one, so that a reader never
// sees half of it). The file is read at every Now: this clock is for tests,
// and a read of a small file costs microseconds.
type Offset struct {
	Path string
	// Poll is how often a waiter looks at the file again, so that a jump
	// ahead fires it; default 20ms.
	Poll time.Duration
}

// maxOffsetFile bounds what is read of the file.
const maxOffsetFile = 64

// Now is the system time plus the file's offset. An unreadable or invalid
// file counts as no offset: the clock of a test must never stop socle; the
// error is Check's to report.
func (o Offset) Now() time.Time {
	d, _ := o.Check()
	return time.Now().Add(d)
}

// Check reads the offset, and says what is wrong with the file if anything.
func (o Offset) Check() (time.Duration, error) {
	f, err := os.Open(o.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxOffsetFile+1))
	if err != nil {
		return 0, err
	}
	if len(b) > maxOffsetFile {
		return 0, fmt.Errorf("clock file %s: longer than %d bytes", o.Path, maxOffsetFile)
	}
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("clock file %s: %w", o.Path, err)
	}
	return d, nil
}

// After fires once Now has passed the deadline d from now, whether real
// time or a change of the offset got it there.
func (o Offset) After(d time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	deadline := o.Now().Add(d)
	poll := o.Poll
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	go func() {
		for {
			now := o.Now()
			left := deadline.Sub(now)
			if left <= 0 {
				c <- now
				return
			}
			time.Sleep(min(left, poll))
		}
	}()
	return c
}
