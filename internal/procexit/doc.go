// Package procexit watches for the end of a process that need not be a
// child of this one, on macOS: a kqueue with an EVFILT_PROC NOTE_EXIT
// filter on the process. On Linux socle's callers use a pidfd instead, so
// the package has no code there.
package procexit
