// Package auth authenticates API callers by bearer token: tokens are random,
// shown once, stored as a hash, revocable and optionally expiring; failed
// attempts are rate-limited per client address. What an authenticated user
// may do is decided by the rules of internal/spec (teams.yaml, socle.yaml).
package auth
