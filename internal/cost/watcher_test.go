package cost_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
)

func TestWatcher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := t.TempDir()
	repo := testRepo()
	repo.Platform.Costs.Drop = "inbox"
	s := newService(t, repo, mustTime("2024-10-05T00:00:00Z"))
	var logs bytes.Buffer
	s.Log = slog.New(slog.NewTextHandler(&logs, nil))
	inbox := filepath.Join(data, "inbox")
	drop := func(rel, from string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(inbox, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	imports := func() int {
		t.Helper()
		imps, err := s.Store.Imports(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(imps)
	}
	w := cost.NewWatcher(s, data)
	if w.Dir() != inbox {
		t.Fatalf("drop directory %s", w.Dir())
	}
	w.Poll(ctx) // no directory yet: nothing to do, no error
	drop("2024-09/part-1.csv", filepath.Join("testdata", "formats", "focus_1.3.csv"))
	drop("2024-09/manifest.json", filepath.Join("testdata", "formats", "gcp.jsonl"))
	w.Poll(ctx)
	if imports() != 0 {
		t.Fatal("imported a file seen for the first time: it may still be being written")
	}
	w.Poll(ctx)
	if imports() != 1 {
		t.Fatalf("%d imports after the directory was quiet; logs:\n%s", imports(), logs.String())
	}
	w.Poll(ctx)
	if imports() != 1 {
		t.Fatal("imported the same file twice")
	}

	// a restart: the file's content was imported before, it is not again
	w = cost.NewWatcher(s, data)
	w.Poll(ctx)
	w.Poll(ctx)
	if imports() != 1 {
		t.Fatal("a restart imported the same content again")
	}

	// a bad file is logged and does not stop the others
	os.WriteFile(filepath.Join(inbox, "bad", "x.csv"), nil, 0o644)
	drop("bad/x.csv", filepath.Join("testdata", "bad", "focus_bad.csv"))
	drop("aws/cur.csv", filepath.Join("testdata", "formats", "cur2.csv"))
	w.Poll(ctx)
	w.Poll(ctx)
	if imports() != 2 || !strings.Contains(logs.String(), "focus_bad.csv") && !strings.Contains(logs.String(), "bad rows") {
		t.Errorf("%d imports; logs:\n%s", imports(), logs.String())
	}
}
