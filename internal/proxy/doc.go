// Package proxy is socle's built-in reverse proxy: one HTTP listener that
// routes each request by its Host header to the healthy backends (replicas) of
// a route, picks among them by weight, retries a request that could not reach
// a backend on another one, health-gates new backends before they get traffic,
// drains removed ones, and measures every backend (Prometheus metrics and
// in-process [Snapshot]s for canary analysis and autoscaling). Hosts are named
// "<app>.<env>.localhost" for an app's primary service port and
// "<port>.<app>.<env>.localhost" for each of its other named ports (see
// [RouteName] and [PrimaryPort]); the port in the Host header is ignored. The
// route table is saved to a file after each change and restored at start, so
// routing survives a restart of socle.
package proxy
