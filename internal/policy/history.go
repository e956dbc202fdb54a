package policy

import "time"

// Run is one healthy run of an app's artifact in an environment.
type Run struct {
	App      string    `json:"app"`
	Artifact string    `json:"artifact"`
	Env      string    `json:"env"`
	Since    time.Time `json:"since"`
}

// Runs is a History held in memory, for callers that read the release
// history before evaluating, for test cases and for benchmarks.
type Runs []Run

var _ History = Runs(nil)

// RanHealthy returns the earliest healthy run of the artifact in env.
func (rs Runs) RanHealthy(app, artifact, env string) (time.Time, bool) {
	var since time.Time
	found := false
	for _, r := range rs {
		if r.App == app && r.Artifact == artifact && r.Env == env && (!found || r.Since.Before(since)) {
			since, found = r.Since, true
		}
	}
	return since, found
}
