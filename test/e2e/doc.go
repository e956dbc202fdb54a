// Package e2e runs socle as a user does: the real binary on a real git
// repository, apps built from it and run as processes, traffic through
// socle's proxy on loopback, and socle killed with SIGKILL mid-rollout.
package e2e
