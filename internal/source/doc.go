// Package source reads the platform team's Git repository for socle and writes
// commits back to it. socle never reads a user's working copy: Open keeps a
// bare mirror of one branch under socle's data directory, fetched over HTTP(S),
// SSH or straight from a repository on the same machine, all in pure Go (go-git),
// so socle needs no git installed. Each commit of that branch is a Revision;
// Files and Export give the tree of a revision, Log the commits between two
// revisions, Commit adds a commit on top of the branch and pushes it (this is
// how promotions are recorded), Init turns a directory of files into a new
// repository, and Watcher polls the mirror and reacts to a webhook.
package source
