package pipeline

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/sopsfile"
	"github.com/socle-dev/socle/internal/spec"
)

// Decrypter decrypts a secret file of the platform repository
// (sopsfile.Keyring does).
type Decrypter interface {
	Decrypt(data []byte) (map[string]string, error)
}

// WithSecrets is withSecrets for what plans outside the server (socle
// plan against a data directory's state): the units blocked are returned
// with why.
func WithSecrets(fsys fs.FS, repo *spec.Repo, units []plan.Unit, dec Decrypter) map[plan.Key]reconcile.Block {
	return withSecrets(fsys, repo, units, dec)
}

// withSecrets gives each desired unit the values of its secrets, from its
// app's secret files (spec.SecretFiles), decrypted. A unit whose file
// socle cannot decrypt is returned blocked, with a message that names the
// file and why (the recipients it is encrypted for, none held): it keeps
// the state last applied, so nothing running is touched. Only the names
// socle.yaml lists under secrets are taken from a file. The units' maps
// are shared with the repository's: a unit given values gets its own.
func withSecrets(fsys fs.FS, repo *spec.Repo, units []plan.Unit, dec Decrypter) map[plan.Key]reconcile.Block {
	blocked := map[plan.Key]reconcile.Block{}
	for i := range units {
		u := &units[i]
		env := repo.Environment(u.Env)
		if len(u.Secrets) == 0 || env == nil {
			continue
		}
		values, err := secretValues(fsys, u.App, env, dec)
		if err != nil {
			blocked[u.Key()] = reconcile.Block{Reason: reconcile.ReasonSecretUndecryptable,
				Message: "secrets not decrypted: " + err.Error() + "; the unit keeps its last applied state"}
			continue
		}
		if len(values) == 0 {
			continue
		}
		cs := make(map[string]types.Container, len(u.Containers))
		for name, c := range u.Containers {
			vars := maps.Clone(c.Variables)
			for _, n := range u.Secrets {
				if v, ok := values[n]; ok {
					if vars == nil {
						vars = map[string]string{}
					}
					vars[n] = v
				}
			}
			c.Variables = vars
			cs[name] = c
		}
		u.Containers = cs
	}
	return blocked
}

// secretValues reads and decrypts an app's secret files in env.
func secretValues(fsys fs.FS, app string, env *spec.Environment, dec Decrypter) (map[string]string, error) {
	values := map[string]string{}
	for _, file := range spec.SecretFiles(app, env) {
		b, err := readFile(fsys, file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if dec == nil {
			return nil, fmt.Errorf("%s: socle holds no age identity (give it some: <data>/age/*.txt or --age-identities)", file)
		}
		vs, err := dec.Decrypt(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		maps.Copy(values, vs)
	}
	return values, nil
}

func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, sopsfile.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > sopsfile.MaxSize {
		return nil, fmt.Errorf("larger than %d bytes", sopsfile.MaxSize)
	}
	return b, nil
}
