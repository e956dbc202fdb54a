package secretref

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/socle-dev/socle/internal/spec"
)

// timeout bounds one call to a store: a store that does not answer
// blocks the units that need it, and is asked again later.
const timeout = 10 * time.Second

// Vault resolves ref+vault://<path>#<key> with Vault's KV v2 engine: a GET
// of /v1/<mount>/data/<path>, and the key of the secret's data. It logs in
// with a token, read at each resolution (a Vault Agent may rewrite its
// file), or with an AppRole (auth/<mount>/login), whose token it keeps
// and replaces by logging in again once two thirds of its lease have
// passed, or at once when Vault refuses it (revoked, expired early).
//
// It uses Vault's own API client (github.com/hashicorp/vault/api, which
// socle's SOPS library already depends on), with what it reads from
// socle's environment (VAULT_TOKEN, VAULT_NAMESPACE) overridden: only the
// store's configuration counts.
type Vault struct {
	cfg   spec.VaultStore
	creds Credentials
	now   func() time.Time

	mu      sync.Mutex // one call at a time: the client holds one token
	client  *api.Client
	token   string    // an AppRole's, "" before its login
	renewAt time.Time // when to log in again; zero: never
}

var _ Provider = (*Vault)(nil)

// NewVault is the Factory of scheme vault.
func NewVault(stores spec.SecretStores, creds Credentials) (Provider, error) {
	if stores.Vault == nil {
		return nil, fmt.Errorf("%w: no secretStores.vault in socle.yaml for this environment", ErrNoStore)
	}
	return newVault(*stores.Vault, creds)
}

func newVault(cfg spec.VaultStore, creds Credentials) (*Vault, error) {
	c, err := api.NewClient(&api.Config{Address: strings.TrimSuffix(cfg.Address, "/"), HttpClient: &http.Client{Timeout: timeout}, Timeout: timeout, MaxRetries: 0})
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", cfg.Address, err)
	}
	c.ClearToken()
	c.ClearNamespace()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return &Vault{cfg: cfg, creds: creds, now: time.Now, client: c}, nil
}

// Scheme is "vault".
func (v *Vault) Scheme() string { return "vault" }

// Resolve reads the key of the secret at ref's path.
func (v *Vault) Resolve(ctx context.Context, ref spec.SecretRef) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v.mu.Lock()
	defer v.mu.Unlock()
	data, err := v.read(ctx, ref.Path)
	if errors.Is(err, ErrDenied) && v.cfg.Auth.AppRole != nil && v.token != "" {
		v.token = "" // a token revoked or expired before its time: once more with a new one
		data, err = v.read(ctx, ref.Path)
	}
	if err != nil {
		return "", fmt.Errorf("vault %s: %w", v.where(), err)
	}
	raw, ok := data[ref.Key]
	if !ok {
		return "", fmt.Errorf("vault %s: %w: the secret %s has no key %q (it has %s)", v.where(), ErrNotFound, ref.Path, ref.Key,
			strings.Join(slices.Sorted(maps.Keys(data)), ", "))
	}
	switch x := raw.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return "", fmt.Errorf("vault %s: key %q of %s: %w", v.where(), ref.Key, ref.Path, err)
	}
	return string(b), nil
}

// where names the store in errors.
func (v *Vault) where() string {
	if v.cfg.Namespace != "" {
		return v.cfg.Address + " (namespace " + v.cfg.Namespace + ")"
	}
	return v.cfg.Address
}

func (v *Vault) mount() string { return cmp.Or(strings.Trim(v.cfg.Mount, "/"), "secret") }

// read returns the data of the latest version of the secret at path.
func (v *Vault) read(ctx context.Context, path string) (map[string]any, error) {
	token, err := v.login(ctx)
	if err != nil {
		return nil, err
	}
	v.client.SetToken(token)
	defer v.client.ClearToken()
	s, err := v.client.KVv2(v.mount()).Get(ctx, path)
	if err != nil {
		return nil, classify(err, "reading "+v.mount()+"/data/"+path)
	}
	if s.Data == nil { // the latest version is deleted
		return nil, fmt.Errorf("%w: %s/data/%s: its latest version is deleted", ErrNotFound, v.mount(), path)
	}
	return s.Data, nil
}

// login returns the token to read with.
func (v *Vault) login(ctx context.Context) (string, error) {
	a := v.cfg.Auth
	if a.AppRole == nil {
		t, err := v.creds.Read(a.Token)
		if err != nil {
			return "", fmt.Errorf("the token: %w", err)
		}
		return t, nil
	}
	if v.token != "" && (v.renewAt.IsZero() || v.now().Before(v.renewAt)) {
		return v.token, nil
	}
	roleID, err := v.creds.Read(a.AppRole.RoleID)
	if err != nil {
		return "", fmt.Errorf("the AppRole's role ID: %w", err)
	}
	secretID, err := v.creds.Read(a.AppRole.SecretID)
	if err != nil {
		return "", fmt.Errorf("the AppRole's secret ID: %w", err)
	}
	mount := cmp.Or(strings.Trim(a.AppRole.Mount, "/"), "approle")
	v.client.ClearToken()
	s, err := v.client.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		return "", classify(err, "logging in with the AppRole at auth/"+mount)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", fmt.Errorf("%w: logging in with the AppRole at auth/%s: no token in the answer", ErrDenied, mount)
	}
	v.token, v.renewAt = s.Auth.ClientToken, time.Time{}
	if d := time.Duration(s.Auth.LeaseDuration) * time.Second; d > 0 {
		v.renewAt = v.now().Add(d * 2 / 3)
	}
	return v.token, nil
}

// classify wraps a client's error in the sentinel it stands for, with
// Vault's own words (which never hold a secret's value).
func classify(err error, doing string) error {
	if re, ok := errors.AsType[*api.ResponseError](err); ok {
		why := strings.Join(strings.Fields(strings.Join(re.Errors, "; ")), " ") // Vault's multi-line "1 error occurred: * permission denied"
		switch {
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNotFound, doing)
		case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
			if strings.Contains(why, ErrDenied.Error()) {
				return fmt.Errorf("%w: %s", ErrDenied, doing)
			}
			return fmt.Errorf("%w: %s: %s", ErrDenied, doing, cmp.Or(why, http.StatusText(re.StatusCode)))
		case re.StatusCode == http.StatusBadRequest && strings.Contains(why, "invalid"):
			return fmt.Errorf("%w: %s: %s", ErrDenied, doing, why)
		}
		return fmt.Errorf("%w: %s: HTTP %d: %s", ErrUnavailable, doing, re.StatusCode, why)
	}
	if errors.Is(err, api.ErrSecretNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, doing)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, doing, err)
}
