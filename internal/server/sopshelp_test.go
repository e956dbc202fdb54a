package server

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/sopsfile"
)

// ageKey makes an age identity in <data>/age/<name>.txt, where socle reads
// it at start, and returns its recipient.
func ageKey(t *testing.T, data, name string) string {
	t.Helper()
	text, r, err := sopsfile.NewIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, AgeDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), text, 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// writeSecrets writes a SOPS file of values encrypted for recipient into
// the working tree of repo (not committed).
func writeSecrets(t *testing.T, repo, file string, values map[string]string, recipient string) {
	t.Helper()
	b, err := sopsfile.Encrypt(values, []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, file), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// gitHistoryHolds returns which of needles some blob of the repository's
// history holds: every object of every commit, read with git itself.
func gitHistoryHolds(t *testing.T, repo string, needles ...string) []string {
	t.Helper()
	git := func(args ...string) []byte {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	var found []string
	objects := strings.Fields(string(git("rev-list", "--all", "--objects", "--no-object-names")))
	blobs := 0
	for _, o := range objects {
		if strings.TrimSpace(string(git("cat-file", "-t", o))) != "blob" {
			continue
		}
		blobs++
		b := git("cat-file", "blob", o)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = append(found, n+" in blob "+o)
			}
		}
	}
	if blobs < 10 {
		t.Fatalf("only %d blobs in the history of %s", blobs, repo)
	}
	return found
}
