// Package sandboxtest holds what the sandbox tests of the local runtime and
// of builds share: the attacker app, and the secrets of a data directory
// for it to steal.
package sandboxtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildAttacker builds the attacker (package attacker) as dir/attacker, a
// static executable, and returns its path.
func BuildAttacker(dir string) (string, error) {
	out := filepath.Join(dir, "attacker")
	cmd := exec.Command("go", "build", "-o", out, "github.com/socle-dev/socle/internal/sandbox/sandboxtest/attacker")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the attacker: %w\n%s", err, b)
	}
	return out, nil
}

// Secrets are the files of socle's data directory that the attacker goes
// for, and what Plant writes in them.
var Secrets = map[string]string{
	"admin.token": "socle_admin_planted-token",
	"secret.key":  "planted-secret-key",
	"socle.db":    "SQLite format 3 planted",
}

// Plant writes Secrets in data, readable by socle's user only, as socle
// does, and returns their paths.
func Plant(data string) ([]string, error) {
	var paths []string
	for name, content := range Secrets {
		p := filepath.Join(data, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Report is what the attacker read: content by the argument naming it.
type Report map[string]string

// Parse reads the report in b: the attacker's JSON, or the line after
// "REPORT " in a log.
func Parse(b []byte) (Report, error) {
	if i := bytes.Index(b, []byte("REPORT ")); i >= 0 {
		b = b[i+len("REPORT "):]
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			b = b[:j]
		}
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the attacker's report %q: %w", b, err)
	}
	return r, nil
}

// Stole returns what of want the report shows read, as "<arg>" for each, and
// whether every read held the expected secret (for environ: marker).
func (r Report) Stole(args []string, marker string) []string {
	var got []string
	for _, a := range args {
		content, ok := r[a]
		if !ok {
			continue
		}
		if strings.HasPrefix(a, "environ:") && !strings.Contains(content, marker) {
			continue
		}
		got = append(got, a)
	}
	return got
}
