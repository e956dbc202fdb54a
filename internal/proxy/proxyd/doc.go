// Package proxyd runs socle's proxy ([proxy.Proxy]) as a process of its
// own, `socle proxy`, so that the data plane outlives socle: a crash, a
// kill -9 or an upgrade of socle closes no listener and fails no request.
// kamal-proxy runs apart from kamal for the same reason.
//
// # The pieces
//
//   - [Main] is `socle proxy`: it serves the proxy on a listening socket
//     it inherits (or opens), restores the route table from the state
//     file (<data>/proxy.json, as the in-process proxy does), and answers
//     socle on a control socket.
//   - [Supervisor] is socle's side: it starts the proxy, or re-adopts the
//     one that runs (its pid and start time are recorded in
//     <data>/proxy/process.json, as the local runtime records replicas),
//     restarts it at once when it dies (with backoff if it keeps dying),
//     replaces it by a hand-off when it is another build, and hands socle
//     a [Client].
//   - [Client] drives the proxy over the control socket: it implements
//     what the replica runtime asks of a router (SetRoute, DeleteRoute,
//     Route, Routes, Stats) and relays the proxy's Prometheus metrics
//     into socle's /metrics.
//
// # The listening socket is shared, never reopened
//
// The proxy's TCP listening socket is made once, by socle (net.Listen),
// and handed to each proxy process as an inherited file descriptor. socle
// keeps a descriptor of it too, without accepting on it. So:
//
//   - socle killed or stopped: the proxy holds the socket and serves on.
//   - socle started again: it finds the proxy by its record, checks it is
//     the same process (pid and start time: clock ticks after boot on
//     Linux, microseconds since the epoch on macOS; then the pid the
//     control socket answers with), and takes back a descriptor of the
//     socket over the control socket (SCM_RIGHTS).
//   - the proxy killed: socle still holds the socket, so the kernel keeps
//     queueing new connections while socle starts a new proxy on the same
//     descriptor; only the requests the dead process held fail.
//   - an upgrade: the new socle finds a proxy of another build, starts a
//     proxy of its own build on the same socket, waits until it is ready,
//     then asks the old one to stop: it stops accepting, finishes its
//     requests in flight and closes its idle connections. Both accept from
//     the one socket meanwhile, so no connection is refused and none is
//     lost: 0 failed requests (a client's idle keep-alive connection that
//     the old proxy closes is retried by the client, as HTTP/1.1 allows for
//     idempotent requests).
//
// The HTTPS socket (socle up --proxy-tls-addr) is made, handed over, kept
// and taken back in the same way, beside the plain one; a proxy process
// is adopted only if it serves HTTPS where socle is asked to (or neither
// does), else it is replaced. Like the edge flags, the certificate flags
// of an adopted process are those it was started with.
//
// # The control protocol
//
// HTTP/1.1 over a Unix socket, <data>/proxy/proxy-<pid>.sock, mode 0600 in
// a directory of mode 0700; the proxy also checks each connection's peer
// credentials (SO_PEERCRED; LOCAL_PEERCRED on macOS) and refuses any other
// uid. HTTP because both ends have it in the standard library, a request's
// context carries socle's deadline (a health gate or a drain is waited for
// as long as socle's caller wants, and a cancelled call cancels the
// change), errors have statuses, /metrics is Prometheus' own text format,
// and an operator can look with curl --unix-socket. The paths carry the
// protocol version (/v1/...); GET /v1/info says which versions the process
// speaks and which build it is, so a socle that does not speak the proxy's
// version replaces it (by the hand-off above) rather than misread it.
//
//	GET    /v1/info                 Info
//	GET    /v1/routes               []proxy.RouteStatus
//	GET    /v1/routes/{name}        proxy.Route (404: none)
//	PUT    /v1/routes/{name}        proxy.Route → 204; 409 unhealthy, 504 not drained, 400 invalid
//	DELETE /v1/routes/{name}        → 204; 504 not drained
//	GET    /v1/stats?route=&version= Stats
//	GET    /v1/listener             the listening socket, as SCM_RIGHTS on a hijacked connection
//	GET    /v1/tls-listener         the HTTPS listening socket, the same way (404: none)
//	POST   /v1/stop                 drain and exit
//	GET    /metrics                 the proxy's Prometheus metrics
package proxyd
