package supervise

import (
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
)

// Run is one run of a replica: a process from its start to its end, a
// container from podman start to its end, or a run that ended at once (it
// could not start, or it had ended when the driver found it).
type Run struct {
	// PID is its first process on the host; 0 if unknown or it never ran.
	PID int
	// StartedAt is when it started on the driver's clock, which socle
	// reads (the progress deadline); Began is the same instant on the
	// system's, by which the supervisor paces what it does itself (probes'
	// initial delay, the reset of the restart backoff) in the run's real
	// seconds.
	StartedAt time.Time
	Began     time.Time

	exited chan struct{}
	exit   runtime.Exit // set before exited is closed
	once   sync.Once
}

// NewRun returns a run that is under way; its driver calls Finish when it
// ends.
func NewRun(pid int, startedAt, began time.Time) *Run {
	return &Run{PID: pid, StartedAt: startedAt, Began: began, exited: make(chan struct{})}
}

// EndedRun returns a run that ended with exit, having begun then too.
func EndedRun(exit runtime.Exit, startedAt time.Time) *Run {
	p := NewRun(0, startedAt, exit.At)
	p.Finish(exit)
	return p
}

// Finish records that p ended, and how; later calls do nothing.
func (p *Run) Finish(exit runtime.Exit) {
	p.once.Do(func() {
		p.exit = exit
		close(p.exited)
	})
}

// Exited is closed once p has ended.
func (p *Run) Exited() <-chan struct{} { return p.exited }

// Ended reports whether p has ended.
func (p *Run) Ended() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Exit is how p ended; the zero Exit until then.
func (p *Run) Exit() runtime.Exit {
	if !p.Ended() {
		return runtime.Exit{}
	}
	return p.exit
}

func (p *Run) base() *Run { return p }

// RunOf is a driver's type of run: *Run, or a pointer to a struct of its
// own that embeds *Run with what else the driver keeps of a run.
type RunOf interface {
	comparable
	base() *Run
}
