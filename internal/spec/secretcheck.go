package spec

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// isSecretFile reports whether a path inside an app's directory is one of
// its secret files (SecretFile).
func isSecretFile(rel string) bool {
	return !strings.Contains(rel, "/") && strings.HasPrefix(rel, "secrets.") && strings.HasSuffix(rel, ".yaml") && len(rel) > len("secrets..yaml")
}

// checkSecretValues keeps the values of an app's secrets out of Git in
// clear: a name listed under secrets in socle.yaml may not have a literal
// value in the Score file or in an environment's override (it takes its
// value from a secret file, or a ${…} placeholder); every secret file is
// a SOPS file whose values are all encrypted; and a literal value that
// looks random (a key, a token) is warned of wherever it stands. files are
// the app's secret files by name (secrets.<env>.yaml).
func (l *loading) checkSecretValues(a *App, files map[string][]byte) {
	dir := path.Join(AppsDir, a.Name)
	listed := map[string]bool{}
	for _, n := range a.Config.Secrets {
		listed[n] = true
	}
	literal := func(file, name, value string, at ...string) {
		ref, isRef, err := ParseSecretRef(value)
		switch {
		case err != nil:
			l.add(l.problemAt(file, fmt.Sprintf("%s: %v", name, err), at...))
		case isRef && !listed[name]:
			l.add(l.problemAt(file, fmt.Sprintf("%s's value is a reference to a secret manager, which socle resolves only for a name listed under secrets in %s: list it there",
				name, path.Join(dir, AppFile)), at...))
		case isRef && !l.hasSecretStore(ref.Scheme):
			l.add(l.problemAt(file, fmt.Sprintf("%s refers to %s, but neither socle.yaml nor any of its environments has secretStores.%s", name, ref, ref.Scheme), at...))
		case isRef || value == "" || strings.Contains(value, "${"):
		case listed[name]:
			l.add(l.problemAt(file, fmt.Sprintf("%s is listed under secrets in %s but has its value here, in Git in clear: remove it, and set it encrypted in %s (socle secret set %s %s --env ENV, or sops)",
				name, path.Join(dir, AppFile), SecretFile(a.Name, "<env>"), a.Name, name), at...))
		case highEntropy(value):
			l.warn(file, fmt.Sprintf("%s's value looks like a key or a token (a long random string): if it is secret, list it under secrets in %s and set it encrypted in %s",
				name, path.Join(dir, AppFile), SecretFile(a.Name, "<env>")), at...)
		}
	}
	if a.Workload != nil {
		score := path.Join(dir, ScoreFile)
		for _, cname := range slices.Sorted(maps.Keys(a.Workload.Containers)) {
			vars := a.Workload.Containers[cname].Variables
			for _, name := range slices.Sorted(maps.Keys(vars)) {
				literal(score, name, vars[name], "containers", cname, "variables", name)
			}
		}
	}
	conf := path.Join(dir, AppFile)
	for _, env := range slices.Sorted(maps.Keys(a.Config.Environments)) {
		vars := a.Config.Environments[env].Variables
		for _, name := range slices.Sorted(maps.Keys(vars)) {
			literal(conf, name, vars[name], "environments", env, "variables", name)
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		file := path.Join(dir, rel)
		where := strings.TrimSuffix(strings.TrimPrefix(rel, "secrets."), ".yaml")
		if !l.names.envs[where] && !l.names.zones[where] {
			l.add(Problem{File: file, Warning: true, Message: fmt.Sprintf("%q is neither an environment nor a zone of socle.yaml: socle reads no value of this file", where)})
		}
		l.checkSecretFile(file, files[rel], listed)
	}
}

// hasSecretStore reports whether the platform, or one of its
// environments, has a secret store of scheme.
func (l *loading) hasSecretStore(scheme string) bool {
	has := func(s *SecretStores) bool { return s != nil && scheme == "vault" && s.Vault != nil }
	if has(l.repo.Platform.SecretStores) {
		return true
	}
	for _, e := range l.repo.Platform.Environments {
		if has(e.SecretStores) {
			return true
		}
	}
	return false
}

// checkSecretStores checks that each Vault store logs in one way: a
// token or an AppRole.
func (l *loading) checkSecretStores(s *SecretStores, at ...string) {
	if s == nil || s.Vault == nil {
		return
	}
	if a := s.Vault.Auth; (a.Token == "") == (a.AppRole == nil) {
		l.add(l.problemAt(PlatformFile, "vault auth: give a token (env:VAULT_… or file:…) or an appRole, one of the two", append(at, "vault", "auth")...))
	}
}

// checkSecretFile checks that a secret file is SOPS-encrypted: a sops
// mapping, and every other top-level value ENC[…] (a name ending
// _unencrypted excepted, as sops leaves those in clear).
func (l *loading) checkSecretFile(file string, data []byte, listed map[string]bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.add(*yamlProblem(file, err))
		return
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		l.add(Problem{File: file, Message: "a secret file is a mapping of NAME: value, encrypted by sops"})
		return
	}
	m := doc.Content[0]
	hasSops := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "sops" && m.Content[i+1].Kind == yaml.MappingNode {
			hasSops = true
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case k.Value == "sops" || strings.HasSuffix(k.Value, "_unencrypted"):
		case v.Kind != yaml.ScalarNode || !strings.HasPrefix(v.Value, "ENC[") || !strings.HasSuffix(v.Value, "]"):
			l.add(Problem{File: file, Line: v.Line, Column: v.Column, Field: k.Value,
				Message: "value in clear: encrypt the file with sops (sops --encrypt --in-place " + file + ") or set it with socle secret set"})
		case !listed[k.Value]:
			l.add(Problem{File: file, Line: k.Line, Column: k.Column, Field: k.Value, Warning: true,
				Message: "not listed under secrets in " + path.Join(path.Dir(file), AppFile) + ": socle gives it to no container"})
		}
	}
	if !hasSops {
		l.add(Problem{File: file, Line: m.Line, Column: m.Column, Message: "not a SOPS file (no sops metadata): encrypt it with sops, for the recipients .sops.yaml gives it"})
	}
}

// highEntropy reports whether a literal value looks like a generated key
// or token: long, without spaces, of several kinds of characters, and of
// high Shannon entropy (over 4 bits a character, where words and
// hostnames stay under 3.5).
func highEntropy(v string) bool {
	if len(v) < 20 || len(v) > 4096 || strings.ContainsAny(v, " \t\n") || strings.Contains(v, "://") {
		return false
	}
	var lower, upper, digit bool
	counts := map[rune]int{}
	n := 0
	for _, c := range v {
		counts[c]++
		n++
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		}
	}
	if !digit || !(lower || upper) {
		return false
	}
	h := 0.0
	for _, k := range counts {
		p := float64(k) / float64(n)
		h -= p * math.Log2(p)
	}
	return h > 4.0
}
