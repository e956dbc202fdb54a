// Package proxy is socle's built-in reverse proxy: one HTTP/1.x listener
// that routes each request by its Host header to the healthy backends
// (replicas) of a route, picks among them by weight, retries a request that
// could not reach a backend on another one, health-gates new backends before
// they get traffic, drains removed ones, and counts every backend's requests,
// errors, latency and requests in flight (Prometheus metrics, and in-process
// [Snapshot]s for canary analysis and autoscaling). An app's primary service
// port is served on "<app>.<env>.localhost" and each of its other named ports
// on "<port>.<app>.<env>.localhost" (see [RouteName] and spec.PrimaryPort); the
// port in the Host header is ignored. The route table is saved to a file
// after each change and restored at start, so that routing survives a
// restart of socle.
//
// Beside it, an HTTPS listener ([Proxy.ServeTLS], Options.TLS) picks each
// connection's certificate by SNI, from files per host or over ACME for the
// hosts of public environments (whose plain requests it then redirects),
// serves HTTP/1.1 over TLS through the same loop and HTTP/2 through
// net/http's server, to the same routes and backends.
package proxy
