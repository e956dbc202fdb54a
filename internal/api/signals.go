package api

import "time"

// AppSignals is the answer of GET /api/v1/apps/{app}/signals: an app's
// golden signals in each environment (or the one asked for), per bucket of
// time, oldest first, with the releases that changed what ran.
type AppSignals struct {
	App string `json:"app"`
	// Period is the stretch of time the points cover, ending now; Step the
	// width of one point. Both are Go durations ("1h0m0s").
	Period string       `json:"period"`
	Step   string       `json:"step"`
	Envs   []EnvSignals `json:"envs"`
}

// EnvSignals are an app's signals in one environment.
type EnvSignals struct {
	Env string `json:"env"`
	// Release is the release that runs (its latest that succeeded, as
	// r<id>), "" if none did.
	Release string `json:"release"`
	// Now are the figures of the last minute.
	Now     SignalFigures `json:"now"`
	Points  []SignalPoint `json:"points"`
	Markers []SignalMark  `json:"markers"`
}

// SignalFigures are the golden signals of an app over a stretch of time, as
// its proxy counted them: requests sent to its backends (a request retried
// on another backend counts once per attempt), errors (answers of 5xx, and
// attempts that got no answer, Unanswered) and latency quantiles of the
// answered requests (upper bounds, within 12.5%).
type SignalFigures struct {
	Requests   uint64 `json:"requests"`
	Errors     uint64 `json:"errors"`
	Unanswered uint64 `json:"unanswered"`
	// Rate is requests per second.
	Rate float64 `json:"rate"`
	// ErrorRatio is Errors/Requests, 0 without requests.
	ErrorRatio float64 `json:"errorRatio"`
	// P50Ms, P95Ms and P99Ms are latency quantiles in milliseconds, 0
	// without answered requests.
	P50Ms float64 `json:"p50Ms"`
	P95Ms float64 `json:"p95Ms"`
	P99Ms float64 `json:"p99Ms"`
}

// SignalPoint is one bucket of time of EnvSignals.
type SignalPoint struct {
	Start time.Time `json:"start"`
	SignalFigures
}

// SignalMark is a release that began (or was rolled back) in the period:
// a marker on the charts.
type SignalMark struct {
	Time time.Time `json:"time"`
	// Kind is deploy (a sync or a deploy by hand), promotion or rollback
	// (asked for, or a canary's analysis that failed).
	Kind    string `json:"kind"`
	Release string `json:"release"`
	Status  string `json:"status"`
	Author  string `json:"author,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// SignalList is the answer of GET /api/v1/signals: the figures of the last
// minute of each app and environment the proxy serves, by app then
// environment (what socle top shows).
type SignalList struct {
	Items []UnitSignals `json:"items"`
}

// UnitSignals are the last minute's figures of an app in an environment.
type UnitSignals struct {
	App     string        `json:"app"`
	Env     string        `json:"env"`
	Release string        `json:"release"`
	Now     SignalFigures `json:"now"`
}
