// Package gitwrite makes every commit socle writes to the platform
// repository (promotions, rollbacks and deploys today; templates and
// secrets later), one at a time, each with its audit record, and mends the
// audit trail of a commit whose record a crash lost. It owns the order of
// a commit and its record, not what the commits say: callers edit the file
// and tell Recover which commits are theirs.
package gitwrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"sync"

	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// Repo is the repository socle writes: the mirror of the platform
// repository, which pushes each commit to its origin.
type Repo interface {
	Head() (source.Revision, error)
	Files(sha string) (fs.FS, error)
	Commit(ctx context.Context, c source.Change) (source.Revision, error)
}

// Audit is the audit trail.
type Audit interface {
	store.AuditReader
	AppendAudit(ctx context.Context, rec store.AuditRecord) (store.AuditRecord, error)
}

// Change is one commit socle makes: a file edited from its content at the
// head, and the record of it in the audit trail.
type Change struct {
	// Path is the file's slash-separated path in the repository.
	Path string
	// Edit returns the file's new content from its content at the head,
	// nil when it has none; a nil content removes the file.
	Edit func(old []byte) ([]byte, error)
	// Also are more files the same commit edits, each as Path and Edit.
	Also []FileEdit
	// Author and Email name who makes the change.
	Author, Email string
	// Message is the commit message.
	Message string
	// Audit is the change's audit record (actor, action, app, environment,
	// revision); Detail is its detail, to which Write adds "commit": the
	// new commit's SHA, by which Recover knows the commit is recorded.
	Audit  store.AuditRecord
	Detail map[string]any
}

// FileEdit is one more file a Change edits: Edit returns its new content
// from its content at the head, nil when it has none.
type FileEdit struct {
	Path string
	Edit func(old []byte) ([]byte, error)
}

// Recognizer tells whether a commit is one socle made, and if so the audit
// record that should go with it (its detail apart).
type Recognizer func(rev source.Revision) (rec store.AuditRecord, detail map[string]any, ok bool)

// Writer makes socle's commits one at a time. A commit and its audit
// record go together: Recover, which looks at each new revision, waits
// while a commit is between the two, so that it never takes a commit whose
// record is on its way for one a crash left without.
type Writer struct {
	Repo  Repo
	Audit Audit
	Log   *slog.Logger
	// Recognize knows socle's own commits, for Recover; nil knows none.
	Recognize Recognizer

	mu sync.Mutex
}

// Write commits c on the head, then records it in the audit trail. The
// commit fails with source.ErrConflict if the head moved while the file
// was edited. A failure to record is logged, not returned: the commit is
// made, and Recover mends its record at the next start.
func (w *Writer) Write(ctx context.Context, c Change) (source.Revision, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	head, err := w.Repo.Head()
	if err != nil {
		return source.Revision{}, err
	}
	fsys, err := w.Repo.Files(head.SHA)
	if err != nil {
		fsys = nil
	}
	files := map[string][]byte{}
	var removed []string
	for _, e := range append([]FileEdit{{Path: c.Path, Edit: c.Edit}}, c.Also...) {
		var old []byte
		if fsys != nil {
			// A file that is there but cannot be read (a symbolic link, too
			// large) is not overwritten unseen.
			if old, err = spec.ReadFile(fsys, e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return source.Revision{}, fmt.Errorf("reading %s: %w", e.Path, err)
			}
		}
		data, err := e.Edit(old)
		if err != nil {
			return source.Revision{}, fmt.Errorf("editing %s: %w", e.Path, err)
		}
		if data == nil {
			removed = append(removed, e.Path)
			continue
		}
		files[e.Path] = data
	}
	rev, err := w.Repo.Commit(ctx, source.Change{Files: files, Delete: removed, Author: c.Author, Email: c.Email, Message: c.Message, Parent: head.SHA})
	if err != nil {
		return source.Revision{}, fmt.Errorf("committing %s: %w", c.Path, err)
	}
	d := maps.Clone(c.Detail)
	if d == nil {
		d = map[string]any{}
	}
	d["commit"] = rev.SHA
	rec := c.Audit
	rec.Detail, _ = json.Marshal(d)
	if _, err := w.Audit.AppendAudit(ctx, rec); err != nil {
		w.Log.Error("recording the audit trail", "action", rec.Action, "commit", rev.Short(), "err", err)
	}
	return rev, nil
}

// Recover appends the audit record of rev when it is a commit socle made
// (Recognize) and the trail has no record of it: socle was killed between
// the commit and its record. The record says it was recovered, and names
// who made the commit.
func (w *Writer) Recover(ctx context.Context, rev source.Revision) {
	if w.Recognize == nil {
		return
	}
	rec, detail, ok := w.Recognize(rev)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for r, err := range store.AuditTrail(ctx, w.Audit, 0) {
		if err != nil {
			return
		}
		var d struct {
			Commit string `json:"commit"`
		}
		if json.Unmarshal(r.Detail, &d) == nil && d.Commit == rev.SHA {
			return
		}
	}
	d := maps.Clone(detail)
	if d == nil {
		d = map[string]any{}
	}
	d["commit"], d["recovered"] = rev.SHA, true
	rec.Detail, _ = json.Marshal(d)
	if _, err := w.Audit.AppendAudit(ctx, rec); err != nil {
		w.Log.Error("recovering an audit record", "commit", rev.Short(), "err", err)
		return
	}
	w.Log.Warn("recovered the audit record of a commit made before socle stopped", "commit", rev.Short(), "action", rec.Action, "app", rec.App, "env", rec.Env)
}
