package source

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, mk := range makers {
		t.Run(mk.name, func(t *testing.T) {
			t.Parallel()
			up := mk.new(t, "main")
			c1 := up.Commit(t, "c1", map[string]string{"apps/web/a": "1", "apps/web/run": "x", "apps/api/b": "1", "socle.yaml": "1"})
			c2 := up.Commit(t, "c2 web", map[string]string{"apps/web/a": "2"})
			c3 := up.Commit(t, "c3 api", map[string]string{"apps/api/b": "2"})
			if err := os.Chmod(filepath.Join(up.Dir(), "apps/web/run"), 0o755); err != nil {
				t.Fatal(err)
			}
			c4 := up.Commit(t, "c4 web mode", nil)
			c5 := up.Commit(t, "c5 no web", nil, "apps/web")
			c6 := up.Commit(t, "c6 platform", map[string]string{"socle.yaml": "2", "apps/webby": "x"})
			r := open(t, up.Dir())

			for _, tc := range []struct {
				from, to string
				paths    []string
				want     []string
			}{
				{"", c6, nil, []string{c6, c5, c4, c3, c2, c1}},
				{"", "", nil, []string{c6, c5, c4, c3, c2, c1}},
				{c2, c6, nil, []string{c6, c5, c4, c3}},
				{c2[:7], c4[:7], nil, []string{c4, c3}},
				{c6, c6, nil, nil},
				{c6, c2, nil, nil},
				{"", c6, []string{"apps/web/"}, []string{c5, c4, c2, c1}},
				{"", c6, []string{"apps/web"}, []string{c5, c4, c2, c1}},
				{"", c6, []string{"./apps/api"}, []string{c3, c1}},
				{"", c6, []string{"apps/web/a", "apps/api/"}, []string{c5, c3, c2, c1}},
				{"", c6, []string{"apps/web/run"}, []string{c5, c4, c1}},
				{"", c6, []string{"socle.yaml/"}, nil},
				{"", c6, []string{"apps/webby"}, []string{c6}},
				{"", c6, []string{"nothing/here"}, nil},
				{c1, c6, []string{""}, []string{c6, c5, c4, c3, c2}},
			} {
				got, err := r.Log(ctx, tc.from, tc.to, tc.paths...)
				if err != nil {
					t.Errorf("Log(%.7s, %.7s, %q): %v", tc.from, tc.to, tc.paths, err)
					continue
				}
				if !slices.Equal(shas(got), tc.want) {
					t.Errorf("Log(%.7s, %.7s, %q) = %s, want %s", tc.from, tc.to, tc.paths, subjects(got), tc.want)
				}
			}
			if _, err := r.Log(ctx, "", c6, "../etc"); err == nil {
				t.Error("Log accepted a path outside the repository")
			}
			_, err := r.Log(ctx, "beef", c6)
			mustErr(t, err, ErrUnknownRevision)
		})
	}
}

// TestLogMerge checks the order around a merge made by git and that a merge
// which only brings in a branch's changes is left to those changes.
func TestLogMerge(t *testing.T) {
	t.Parallel()
	up := newGitUpstream(t, "main").(*gitUpstream)
	m1 := up.Commit(t, "m1", map[string]string{"apps/web/a": "1", "apps/api/b": "1"})
	runGit(t, up.dir, "checkout", "-q", "-b", "feature")
	f1 := up.Commit(t, "f1 web", map[string]string{"apps/web/a": "2"})
	runGit(t, up.dir, "checkout", "-q", "main")
	m2 := up.Commit(t, "m2 api", map[string]string{"apps/api/b": "2"})
	date := up.next().Format("2006-01-02T15:04:05Z")
	runGitEnv(t, up.dir, []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
	merge := up.Head(t)
	// A commit dated before its parent (a skewed clock) still comes after it.
	skewed := "2025-03-01T11:00:00Z"
	writeWorkTree(t, up.dir, map[string]string{"apps/web/a": "3"}, nil)
	runGit(t, up.dir, "add", "-A")
	runGitEnv(t, up.dir, []string{"GIT_AUTHOR_DATE=" + skewed, "GIT_COMMITTER_DATE=" + skewed}, "commit", "-q", "-m", "skewed")
	last := up.Head(t)

	r := open(t, up.dir)
	ctx := context.Background()
	for _, tc := range []struct {
		from  string
		paths []string
		want  []string
	}{
		{"", nil, []string{last, merge, m2, f1, m1}},
		{m1, []string{"apps/web/"}, []string{last, f1}},
		{m1, []string{"apps/api/"}, []string{m2}},
		{m2, nil, []string{last, merge, f1}},
		{f1, nil, []string{last, merge, m2}},
	} {
		got, err := r.Log(ctx, tc.from, last, tc.paths...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(shas(got), tc.want) {
			t.Errorf("Log(%.7s, last, %q) = %s, want %s", tc.from, tc.paths, subjects(got), tc.want)
		}
	}
	if out := runGit(t, up.dir, "log", "--format=%H", "--date-order", m1+".."+last); out != strings.Join([]string{last, merge, m2, f1}, "\n") {
		t.Errorf("git log disagrees with the expected order:\n%s", out)
	}
}

func subjects(revs []Revision) string {
	var s []string
	for _, r := range revs {
		s = append(s, r.Subject())
	}
	return "[" + strings.Join(s, ", ") + "]"
}
