// Package sealed keeps the secret variables of the desired state encrypted
// at rest, as a wrapper of any store.Store: the runtime needs the values,
// so the desired state cannot be redacted, and the database never holds
// them in clear. It owns the sealing, not the key (the data directory's
// secret, which the wiring reads).
package sealed

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/store"
)

// sealedPrefix marks a variable value sealed by the store wrapper.
const sealedPrefix = "socle-sealed:v1:"

// sealedStore keeps the secret variables of the desired state encrypted
// at rest: ApplyDesired seals them (AES-256-GCM, with a key derived from
// the data directory's secret), Desired and DesiredUnit open them. The
// runtime needs the values, so the desired state cannot be redacted; the
// database file never holds them in clear.
type sealedStore struct {
	store.Store
	key *seal.Key
}

// Wrap wraps st so that secret variables are encrypted at rest with a key
// derived from secret (the data directory's secret.key).
func Wrap(st store.Store, secret []byte) (store.Store, error) {
	key, err := seal.New(secret)
	if err != nil {
		return nil, err
	}
	return sealedStore{Store: st, key: key}, nil
}

func (s sealedStore) ApplyDesired(ctx context.Context, revision string, set []store.Desired, remove []store.Unit, p store.Plan, events []store.Event) (int64, error) {
	sealed := make([]store.Desired, len(set))
	for i, d := range set {
		spec, err := s.seal(d.Spec)
		if err != nil {
			return 0, fmt.Errorf("sealing the secrets of %s @ %s: %w", d.App, d.Env, err)
		}
		d.Spec = spec
		sealed[i] = d
	}
	return s.Store.ApplyDesired(ctx, revision, sealed, remove, p, events)
}

func (s sealedStore) Desired(ctx context.Context) ([]store.Desired, error) {
	rows, err := s.Store.Desired(ctx)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		if rows[i].Spec, err = s.open(rows[i].Spec); err != nil {
			return nil, fmt.Errorf("opening the secrets of %s @ %s: %w", rows[i].App, rows[i].Env, err)
		}
	}
	return rows, nil
}

func (s sealedStore) DesiredUnit(ctx context.Context, u store.Unit) (store.Desired, error) {
	d, err := s.Store.DesiredUnit(ctx, u)
	if err != nil {
		return d, err
	}
	if d.Spec, err = s.open(d.Spec); err != nil {
		return d, fmt.Errorf("opening the secrets of %s @ %s: %w", u.App, u.Env, err)
	}
	return d, nil
}

// seal encrypts the values of a unit's secret variables. Most units have
// none: their document is left as it is, unparsed.
func (s sealedStore) seal(spec json.RawMessage) (json.RawMessage, error) {
	if !bytes.Contains(spec, []byte(`"secrets"`)) && !bytes.Contains(spec, []byte(`${resources.`)) {
		return spec, nil
	}
	var u plan.Unit
	if err := json.Unmarshal(spec, &u); err != nil {
		return nil, err
	}
	names := u.SecretVariables()
	if len(names) == 0 {
		return spec, nil
	}
	err := mapVariables(&u, names, func(v string) (string, error) {
		b, err := s.key.Seal([]byte(v), nil)
		if err != nil {
			return "", err
		}
		return sealedPrefix + base64.RawStdEncoding.EncodeToString(b), nil
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(u)
}

// open decrypts what seal encrypted.
func (s sealedStore) open(spec json.RawMessage) (json.RawMessage, error) {
	if !bytes.Contains(spec, []byte(sealedPrefix)) {
		return spec, nil
	}
	var u plan.Unit
	if err := json.Unmarshal(spec, &u); err != nil {
		return nil, err
	}
	err := mapVariables(&u, nil, func(v string) (string, error) {
		enc, ok := strings.CutPrefix(v, sealedPrefix)
		if !ok {
			return v, nil
		}
		b, err := base64.RawStdEncoding.DecodeString(enc)
		if err != nil {
			return "", errors.New("a sealed value is damaged")
		}
		clear, err := s.key.Open(b, nil)
		if err != nil {
			return "", err
		}
		return string(clear), nil
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(u)
}

// mapVariables replaces the values of the named variables (all, when names
// is nil) in every container of u, on copies of its maps.
func mapVariables(u *plan.Unit, names []string, f func(string) (string, error)) error {
	cs := make(map[string]types.Container, len(u.Containers))
	for name, c := range u.Containers {
		vars := make(types.ContainerVariables, len(c.Variables))
		for k, v := range c.Variables {
			if names == nil || slices.Contains(names, k) {
				var err error
				if v, err = f(v); err != nil {
					return err
				}
			}
			vars[k] = v
		}
		if c.Variables == nil {
			vars = nil
		}
		c.Variables = vars
		cs[name] = c
	}
	if u.Containers != nil {
		u.Containers = cs
	}
	return nil
}
