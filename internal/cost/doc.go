// Package cost is socle's FinOps: it imports cloud billing exports (FOCUS
// 1.0–1.3, AWS CUR 2.0, Azure cost details, Google Cloud billing export) as
// CSV, gzip, Parquet or JSON lines, allocates every charge to a team, app,
// environment and zone from the platform repository's rules and what socle
// already knows (an app's owner, an environment's zone), and keeps daily
// aggregates per (source, billing period, view) so that a restated month
// replaces the old one, and says so, while the parts of a multi-part export
// can be appended one by one. Azure's actual and amortized cost exports,
// told apart by their rows, are two views of one period that are never
// added: billed cost comes from the first, effective cost from the second.
// On top of them it answers reports, checks monthly budgets with
// a month-end forecast and alerts, finds anomalies against a weekly baseline,
// and exports allocated costs as FOCUS again.
//
// Money is exact (package money): amounts are parsed from the exports'
// decimal text, a double (Parquet, JSON) through its shortest decimal,
// digits past the 12th decimal rounded half to even; sums, the shares of a
// split and comparisons with budgets are exact; a forecast is rounded once,
// to 10⁻¹². Ratios (a budget's percentage, coverage shares) are floats, for
// display only.
//
// Import streams: a file is read once, row by row, into daily buckets, so
// memory grows with the number of distinct (day, owner, service, …) keys and
// not with the size of the file. A file is imported whole or not at all.
package cost
