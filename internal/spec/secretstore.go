package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// SecretStores are the secret managers whose references a secret's value
// may be (ref+<scheme>://<path>#<key>), by scheme. The platform's apply to
// every environment; an environment's replace them scheme by scheme.
// Credentials are never in Git: a store names the environment variable or
// the file socle is given that holds them.
type SecretStores struct {
	// Vault is HashiCorp Vault's (or OpenBao's) KV version 2 secrets
	// engine: ref+vault://<path>#<key> reads key of the secret at path.
	Vault *VaultStore `json:"vault,omitempty"`
}

// VaultStore is a Vault server and how socle logs in to it.
type VaultStore struct {
	// Address is the server's URL: https://vault.example.com:8200.
	Address string `json:"address" jsonschema:"required,pattern=^https?://[^/]+/?$"`
	// Namespace is the Vault Enterprise namespace (X-Vault-Namespace),
	// empty for none.
	Namespace string `json:"namespace,omitempty"`
	// Mount is the path the KV v2 engine is mounted at (default secret).
	Mount string `json:"mount,omitempty" jsonschema:"pattern=^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"`
	// Auth is how socle logs in: a token, or an AppRole.
	Auth VaultAuth `json:"auth" jsonschema:"required"`
}

// VaultAuth is a token or an AppRole, one of the two. Each credential is
// env:NAME (an environment variable of socle's whose name starts with
// VAULT_) or file:NAME (the file NAME in <data>/secretstores/): socle
// reads no other variable or file for a repository, so that a commit
// cannot send another of socle's secrets to a server of its choosing.
type VaultAuth struct {
	// Token is a Vault token: env:VAULT_TOKEN, file:prod.token.
	Token string `json:"token,omitempty" jsonschema:"pattern=^(env:VAULT_[A-Z0-9_]+|file:[A-Za-z0-9_][A-Za-z0-9_.-]*)$"`
	// AppRole logs in with a role ID and a secret ID
	// (auth/<mount>/login); the token it gets is renewed by logging in
	// again before it expires.
	AppRole *VaultAppRole `json:"appRole,omitempty"`
}

// VaultAppRole is an AppRole login.
type VaultAppRole struct {
	// Mount is the path the AppRole auth method is mounted at (default
	// approle).
	Mount string `json:"mount,omitempty" jsonschema:"pattern=^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"`
	// RoleID is the role's ID: env:VAULT_ROLE_ID, file:prod.role-id.
	RoleID string `json:"roleId" jsonschema:"required,pattern=^(env:VAULT_[A-Z0-9_]+|file:[A-Za-z0-9_][A-Za-z0-9_.-]*)$"`
	// SecretID is the secret ID: env:VAULT_SECRET_ID, file:prod.secret-id.
	SecretID string `json:"secretId" jsonschema:"required,pattern=^(env:VAULT_[A-Z0-9_]+|file:[A-Za-z0-9_][A-Za-z0-9_.-]*)$"`
}

// SecretStoresOf returns the secret stores of an environment: the
// platform's, with the environment's in their place scheme by scheme.
func (r *Repo) SecretStoresOf(env string) SecretStores {
	var out SecretStores
	if s := r.Platform.SecretStores; s != nil {
		out = *s
	}
	if e := r.Environment(env); e != nil && e.SecretStores != nil {
		if e.SecretStores.Vault != nil {
			out.Vault = e.SecretStores.Vault
		}
	}
	return out
}

// SecretRefPrefix starts a secret's value that is a reference to a secret
// manager rather than the value itself.
const SecretRefPrefix = "ref+"

// SecretSchemes are the schemes of the secret managers socle resolves.
var SecretSchemes = []string{"vault"}

// SecretRef is a reference to a value kept in a secret manager:
// ref+<scheme>://<path>#<key>.
type SecretRef struct {
	Scheme string
	Path   string
	Key    string
}

func (r SecretRef) String() string { return SecretRefPrefix + r.Scheme + "://" + r.Path + "#" + r.Key }

var (
	refScheme = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	refPath   = regexp.MustCompile(`^[A-Za-z0-9_.@=+-]+(/[A-Za-z0-9_.@=+-]+)*$`)
	refKey    = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// ParseSecretRef reads a secret's value as a reference. ok is false for a
// value that is not one (it does not start with ref+); err says what is
// wrong with one that does but does not read.
func ParseSecretRef(v string) (ref SecretRef, ok bool, err error) {
	rest, ok := strings.CutPrefix(v, SecretRefPrefix)
	if !ok {
		return SecretRef{}, false, nil
	}
	const want = "ref+<scheme>://<path>#<key>, as ref+vault://apps/web#password"
	scheme, rest, found := strings.Cut(rest, "://")
	if !found || !refScheme.MatchString(scheme) {
		return SecretRef{}, true, fmt.Errorf("a reference is %s", want)
	}
	p, key, found := strings.Cut(rest, "#")
	if !found || !refPath.MatchString(p) || !refKey.MatchString(key) || strings.Contains(p, "..") {
		return SecretRef{}, true, fmt.Errorf("a reference is %s (a path of letters, digits, and _ . @ = + - between slashes; a key of letters, digits, _ . -)", want)
	}
	known := false
	for _, s := range SecretSchemes {
		known = known || s == scheme
	}
	if !known {
		return SecretRef{}, true, fmt.Errorf("socle resolves no references of scheme %q (it knows %s)", scheme, strings.Join(SecretSchemes, ", "))
	}
	return SecretRef{Scheme: scheme, Path: p, Key: key}, true, nil
}
