// Package notify sends socle's events (deploys, rollbacks, approvals needed,
// blocked promotions, drift, budget alerts) to the outgoing webhooks that
// socle.yaml declares under notifications, as generic JSON, Slack incoming
// webhook or Microsoft Teams (Workflows) messages; see [Event] and [Render]
// for the bodies.
//
// Delivery is asynchronous and at least once. [Notifier.Notify] routes an
// event to the targets its environment names (and [Notifier.NotifyTargets] to
// an explicit list, a budget's), keeps those whose events filter accepts it,
// and queues one delivery per target. Each target has its own bounded queue,
// drained in order by one goroutine: a delivery is retried with exponential
// backoff and jitter after a network error, a timeout, a 408, a 429 or a 5xx
// (waiting as long as Retry-After says), and dropped as a permanent failure
// after any other answer that is not a 2xx, after Retry.Attempts attempts or
// once it is older than Retry.MaxAge.
//
// Pending deliveries live in a spool directory, one JSON file per delivery
// written atomically (temporary file, fsync, rename, fsync of the directory)
// before Notify returns, rewritten after each failed attempt (attempt count and
// time of the next one) and removed when the delivery ends. A new Notifier on
// the same directory resumes them in their original order. A delivery whose
// success was not yet recorded when socle stopped is sent again: every request
// carries the delivery's ID in the X-Socle-Delivery header so that receivers
// can drop duplicates. One Notifier at a time may use a directory.
//
// A spooled delivery records the target's name, never its URL: the URL is
// looked up in the platform in force when each attempt starts (so a fixed URL
// in a new revision applies to deliveries already queued), and a URL given by
// urlFromEnv is read from the environment at that moment. Logs, errors,
// metrics and the event log name targets, never their URLs.
package notify
