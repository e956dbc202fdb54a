package secretref

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/socle-dev/socle/internal/spec"
)

// The errors a provider's resolution wraps, for callers that tell them
// apart (a status says which).
var (
	// ErrNoStore: the environment has no secret store of the reference's
	// scheme.
	ErrNoStore = errors.New("no secret store")
	// ErrNotFound: the store has no such secret, or no such key in it.
	ErrNotFound = errors.New("not found")
	// ErrDenied: the store refused socle's credentials.
	ErrDenied = errors.New("permission denied")
	// ErrUnavailable: the store did not answer.
	ErrUnavailable = errors.New("unavailable")
)

// Provider resolves the references of one scheme against one store.
// Resolve returns the value; its error never holds one.
type Provider interface {
	Scheme() string
	Resolve(ctx context.Context, ref spec.SecretRef) (string, error)
}

// Factory makes the provider of its scheme for an environment's secret
// stores, reading credentials with creds; ErrNoStore when the stores have
// none of its scheme.
type Factory func(stores spec.SecretStores, creds Credentials) (Provider, error)

// Credentials reads the credentials a store's configuration names:
// env:NAME, a variable of socle's environment, or file:NAME, the file NAME
// in Dir. socle is given them by its operator; Git names them only.
type Credentials struct {
	Dir    string              // <data>/secretstores
	Getenv func(string) string // os.Getenv when nil
}

// maxCredential bounds a credential file.
const maxCredential = 64 << 10

// Read returns the credential src names, trimmed of spaces.
func (c Credentials) Read(src string) (string, error) {
	kind, name, _ := strings.Cut(src, ":")
	switch {
	case kind == "env" && name != "":
		get := c.Getenv
		if get == nil {
			get = os.Getenv
		}
		v := strings.TrimSpace(get(name))
		if v == "" {
			return "", fmt.Errorf("%s is not set in socle's environment", name)
		}
		return v, nil
	case kind == "file" && name != "" && !strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, "."):
		if c.Dir == "" {
			return "", fmt.Errorf("%s: socle has no directory of credentials", name)
		}
		p := filepath.Join(c.Dir, name)
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("reading the credential %s: %w", p, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxCredential+1))
		if err != nil {
			return "", fmt.Errorf("reading the credential %s: %w", p, err)
		}
		if len(b) > maxCredential {
			return "", fmt.Errorf("the credential %s is larger than %d bytes", p, maxCredential)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("the credential %s is empty", p)
		}
		return v, nil
	}
	return "", fmt.Errorf("a credential is env:VAULT_… or file:NAME, not %q", src)
}

// Registry resolves references with the provider of their scheme, made
// once per store configuration and kept: a provider keeps its login (an
// AppRole's token) until it expires.
type Registry struct {
	creds Credentials

	mu        sync.Mutex
	factories map[string]Factory
	providers map[string]Provider // by scheme and store configuration
}

// NewRegistry returns a registry with the providers socle has (Vault).
func NewRegistry(creds Credentials) *Registry {
	r := &Registry{creds: creds, factories: map[string]Factory{}, providers: map[string]Provider{}}
	r.Register("vault", NewVault)
	return r
}

// Register makes f the factory of scheme's providers.
func (r *Registry) Register(scheme string, f Factory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.factories[scheme] = f
}

// Resolve returns the value ref refers to in stores (an environment's,
// spec.Repo.SecretStoresOf). The error names the reference and the
// store, never a value.
func (r *Registry) Resolve(ctx context.Context, stores spec.SecretStores, ref spec.SecretRef) (string, error) {
	p, err := r.provider(stores, ref.Scheme)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	v, err := p.Resolve(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	return v, nil
}

func (r *Registry) provider(stores spec.SecretStores, scheme string) (Provider, error) {
	conf, _ := json.Marshal(stores)
	key := scheme + "\x00" + string(conf)
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.providers[key]; ok {
		return p, nil
	}
	f, ok := r.factories[scheme]
	if !ok {
		return nil, fmt.Errorf("%w: socle has no provider of scheme %q", ErrNoStore, scheme)
	}
	p, err := f(stores, r.creds)
	if err != nil {
		return nil, err
	}
	if len(r.providers) > 64 { // stores come and go with revisions: a few
		clear(r.providers)
	}
	r.providers[key] = p
	return p, nil
}
