package cli

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/examples"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/sopsfile"
	"github.com/socle-dev/socle/internal/spec"
)

// demoKeys are the demo's age keys, by file in <data>/age: production's
// zone has its own, so that the key of the other zones cannot decrypt it.
var demoKeys = []struct{ file, comment string }{
	{"demo-nonprod.txt", "socle demo: the zones apps-nonprod and sandbox"},
	{"demo-prod.txt", "socle demo: the zone apps-prod"},
}

// sealDemoSecrets gives the demo platform copied into dir its secrets:
// it creates the demo's age keys in <data>/age (kept if there), writes
// the .sops.yaml that names them, and encrypts examples.DemoSecrets into
// apps/<app>/secrets.<zone>.yaml. Nothing of it is in clear in dir.
func sealDemoSecrets(dir, data string) error {
	ageDir := filepath.Join(data, server.AgeDir)
	if err := os.MkdirAll(ageDir, 0o700); err != nil {
		return err
	}
	recipients := make([]string, len(demoKeys))
	for i, k := range demoKeys {
		var err error
		if recipients[i], err = demoKey(filepath.Join(ageDir, k.file), k.comment); err != nil {
			return err
		}
	}
	rules := fmt.Sprintf(`# Which age keys sops and socle encrypt each secret file for: the first
# rule whose path_regex matches wins. socle up created both keys for the
# demo in its data directory (age/demo-*.txt); a real platform lists its
# own recipients here (age-keygen -y key.txt prints one).
creation_rules:
  - path_regex: apps/[^/]+/secrets\.(apps-prod|prod)\.yaml$
    age: %s
  - path_regex: apps/[^/]+/secrets\.[^/]+\.yaml$
    age: %s
`, recipients[1], recipients[0])
	if err := os.WriteFile(filepath.Join(dir, sopsfile.ConfigFile), []byte(rules), 0o644); err != nil {
		return err
	}
	parsed, err := sopsfile.ParseRules([]byte(rules))
	if err != nil {
		return err
	}
	var values map[string]map[string]map[string]string // app → zone → name → value
	if err := yaml.Unmarshal(examples.DemoSecrets, &values); err != nil {
		return fmt.Errorf("examples/demo-secrets.yaml: %w", err)
	}
	for _, app := range slices.Sorted(maps.Keys(values)) {
		for _, zone := range slices.Sorted(maps.Keys(values[app])) {
			file := spec.SecretFile(app, zone)
			to, ok := parsed.For(file)
			if !ok {
				return fmt.Errorf("%s: no creation rule of the demo's .sops.yaml matches", file)
			}
			b, err := sopsfile.Encrypt(values[app][zone], to)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(file)), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// demoKey returns the recipient of the age identity in path, creating it
// (readable by its owner only) the first time.
func demoKey(path, comment string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		var k sopsfile.Keyring
		if err := k.Add(b); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		if rs := k.Recipients(); len(rs) == 1 {
			return rs[0], nil
		}
		return "", fmt.Errorf("%s: holds %d identities, want one", path, len(k.Recipients()))
	} else if !os.IsNotExist(err) {
		return "", err
	}
	text, r, err := sopsfile.NewIdentity(comment)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, text, 0o600); err != nil {
		return "", err
	}
	return strings.TrimSpace(r), nil
}
