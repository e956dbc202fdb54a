package procexit

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Watch watches one process for its end.
type Watch struct {
	kq      int
	mu      sync.Mutex
	waiting bool // Wait runs: it closes kq
	done    bool // kq is closed
}

// Open starts watching process pid. It fails (ESRCH) if there is no such
// process; a zombie is reported as ended at once or refused, so callers
// check the process they watch after Open, as with a pidfd.
func Open(pid int) (*Watch, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(kq)
	// The process's exit, and a user event by which Close wakes Wait.
	changes := []unix.Kevent_t{
		{Ident: uint64(pid), Filter: unix.EVFILT_PROC, Flags: unix.EV_ADD | unix.EV_ONESHOT, Fflags: unix.NOTE_EXIT},
		{Ident: 0, Filter: unix.EVFILT_USER, Flags: unix.EV_ADD | unix.EV_CLEAR},
	}
	if _, err := unix.Kevent(kq, changes, nil, nil); err != nil {
		unix.Close(kq)
		return nil, fmt.Errorf("watching process %d: %w", pid, err)
	}
	return &Watch{kq: kq}, nil
}

// Wait blocks until the process ends (true) or Close is called (false).
// It is called once at most.
func (w *Watch) Wait() bool {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return false
	}
	w.waiting = true
	w.mu.Unlock()
	events := make([]unix.Kevent_t, 2)
	exited := false
	for {
		n, err := unix.Kevent(w.kq, nil, events, nil)
		if err == unix.EINTR {
			continue
		}
		for _, e := range events[:max(n, 0)] {
			if e.Filter == unix.EVFILT_PROC {
				exited = true
			}
		}
		break
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	unix.Close(w.kq)
	return exited
}

// Close stops watching: a Wait in progress returns false. It may be
// called more than once, and concurrently with Wait.
func (w *Watch) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.done:
	case w.waiting:
		trigger := []unix.Kevent_t{{Ident: 0, Filter: unix.EVFILT_USER, Fflags: unix.NOTE_TRIGGER}}
		_, _ = unix.Kevent(w.kq, trigger, nil, nil)
	default:
		w.done = true
		unix.Close(w.kq)
	}
}
