package gitwrite

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// fixture is a real platform repository on this machine, socle's mirror
// of it and a real store.
type fixture struct {
	work string
	repo *source.Repo
	st   *sqlite.DB
	w    *Writer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "socle.yaml"), []byte("# the platform\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "platform")
	if _, err := source.Init(t.Context(), src, work, "Ann", "ann@example.com", "initial"); err != nil {
		t.Fatal(err)
	}
	repo, err := source.Open(t.Context(), source.Options{URL: work, Dir: filepath.Join(t.TempDir(), "mirror")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{work: work, repo: repo, st: st, w: &Writer{Repo: repo, Audit: st, Log: slog.New(slog.DiscardHandler),
		Recognize: func(rev source.Revision) (store.AuditRecord, map[string]any, bool) {
			app, ok := strings.CutPrefix(rev.Subject(), "pin ")
			return store.AuditRecord{Actor: rev.Author, Action: "pin", App: app}, map[string]any{"seen": "by subject"}, ok
		}}}
}

// records returns the audit trail's records, as "action app detail".
func (f *fixture) records(t *testing.T) []string {
	t.Helper()
	var out []string
	for r, err := range store.AuditTrail(t.Context(), f.st, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Actor+" "+r.Action+" "+r.App+" "+string(r.Detail))
	}
	return out
}

// TestWriteCommitsThenRecords: a change is committed on the head, edited
// from the file's content there, pushed to the repository, and recorded
// with its commit; a file that is there but cannot be read is not
// overwritten unseen.
func TestWriteCommitsThenRecords(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	var saw string
	rev, err := f.w.Write(ctx, Change{Path: "releases/prod.yaml", Author: "sofia", Email: "sofia@example.com", Message: "pin web",
		Edit:  func(old []byte) ([]byte, error) { saw = string(old); return []byte("apps: {web: {}}\n"), nil },
		Audit: store.AuditRecord{Actor: "sofia", Action: "pin", App: "web"}, Detail: map[string]any{"why": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	if saw != "" {
		t.Errorf("a new file was edited from %q", saw)
	}
	if b, err := os.ReadFile(filepath.Join(f.work, "releases/prod.yaml")); err != nil || string(b) != "apps: {web: {}}\n" {
		t.Errorf("the repository's working tree has %q (%v)", b, err)
	}
	recs := f.records(t)
	if len(recs) != 1 || !strings.Contains(recs[0], `"commit":"`+rev.SHA+`"`) || !strings.Contains(recs[0], `"why":"test"`) {
		t.Fatalf("audit trail %q, want the change with its commit", recs)
	}

	// Edited again: from what the head has.
	if _, err := f.w.Write(ctx, Change{Path: "releases/prod.yaml", Author: "sofia", Message: "pin web",
		Edit: func(old []byte) ([]byte, error) { saw = string(old); return append(old, "# more\n"...), nil }}); err != nil {
		t.Fatal(err)
	}
	if saw != "apps: {web: {}}\n" {
		t.Errorf("edited from %q, want the head's content", saw)
	}

	if err := os.Symlink("/etc/passwd", filepath.Join(f.work, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	gitCommit(t, f.work, "a link")
	if _, _, err := f.repo.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = f.w.Write(ctx, Change{Path: "link.yaml", Author: "sofia", Message: "pin web", Edit: func([]byte) ([]byte, error) { return []byte("x"), nil }})
	if err == nil || !strings.Contains(err.Error(), "reading link.yaml") {
		t.Errorf("a link was overwritten: %v", err)
	}
}

// TestRecoverMendsACommitWithoutItsRecord: a commit of socle's whose
// record is there is left alone; one whose record a crash lost gets one,
// once, saying it was recovered; other commits are not socle's.
func TestRecoverMendsACommitWithoutItsRecord(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	written, err := f.w.Write(ctx, Change{Path: "a.yaml", Author: "sofia", Message: "pin web",
		Edit: func([]byte) ([]byte, error) { return []byte("a: 1\n"), nil }, Audit: store.AuditRecord{Actor: "sofia", Action: "pin", App: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	// A commit made as Write makes it, its record lost with the process.
	lost, err := f.repo.Commit(ctx, source.Change{Files: map[string][]byte{"b.yaml": []byte("b: 1\n")}, Author: "lena", Email: "lena@example.com", Message: "pin api"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.repo.Commit(ctx, source.Change{Files: map[string][]byte{"c.yaml": []byte("c: 1\n")}, Author: "bob", Message: "not socle's"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, rev := range []source.Revision{written, lost, other} {
			f.w.Recover(ctx, rev)
		}
	}
	recs := f.records(t)
	if len(recs) != 2 {
		t.Fatalf("audit trail %q, want the written commit's record and one recovered", recs)
	}
	var d map[string]any
	json.Unmarshal([]byte(recs[1][strings.Index(recs[1], "{"):]), &d)
	if !strings.HasPrefix(recs[1], "lena pin api ") || d["commit"] != lost.SHA || d["recovered"] != true || d["seen"] != "by subject" {
		t.Errorf("recovered record %q", recs[1])
	}
}

// gitCommit commits every change of the working repository with the real
// git binary, as a person would.
func gitCommit(t *testing.T, dir, msg string) {
	t.Helper()
	for _, args := range [][]string{{"add", "-A"}, {"-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-qm", msg}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// TestWriteSeveralFiles: a change's Also files are in the same commit,
// each edited from its content at the head, with one audit record; a
// failed edit of one of them commits nothing.
func TestWriteSeveralFiles(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	var saw string
	rev, err := f.w.Write(ctx, Change{Path: "a.yaml", Author: "tom", Message: "two files",
		Edit:  func([]byte) ([]byte, error) { return []byte("a\n"), nil },
		Also:  []FileEdit{{Path: "socle.yaml", Edit: func(old []byte) ([]byte, error) { saw = string(old); return []byte("# edited\n"), nil }}},
		Audit: store.AuditRecord{Actor: "tom", Action: "both"}})
	if err != nil {
		t.Fatal(err)
	}
	if saw != "# the platform\n" {
		t.Errorf("socle.yaml was edited from %q", saw)
	}
	out, err := exec.Command("git", "-C", f.work, "show", "--name-only", "--format=%an %s", rev.SHA).Output()
	if err != nil || string(out) != "tom two files\n\na.yaml\nsocle.yaml\n" {
		t.Errorf("the commit: %q %v", out, err)
	}
	if rs := f.records(t); len(rs) != 1 || !strings.HasPrefix(rs[0], "tom both ") {
		t.Errorf("audit records %q", rs)
	}
	_, err = f.w.Write(ctx, Change{Path: "b.yaml", Author: "tom", Message: "fails",
		Edit:  func([]byte) ([]byte, error) { return []byte("b\n"), nil },
		Also:  []FileEdit{{Path: "c.yaml", Edit: func([]byte) ([]byte, error) { return nil, os.ErrInvalid }}},
		Audit: store.AuditRecord{Actor: "tom", Action: "fails"}})
	if head, _ := f.repo.Head(); err == nil || head.SHA != rev.SHA || len(f.records(t)) != 1 {
		t.Errorf("a failed edit: %v, head %s", err, head.SHA)
	}
}
