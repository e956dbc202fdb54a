// Package readme runs the README's first command as a newcomer types it: in
// a fresh copy of the repository, with the default data directory, and
// waits until the demo's web app answers through socle's proxy. Nothing of
// socle is imported: the command, the files and the answer are the user's.
package readme
