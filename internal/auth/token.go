package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

// prefix starts every token, so that secret scanners recognise them and a
// token pasted in the wrong place is obvious.
const prefix = "socle_"

// Errors of Authenticate, tested with errors.Is.
var (
	ErrNoToken   = errors.New("no token")
	ErrBadToken  = errors.New("invalid token")
	ErrExpired   = errors.New("token expired")
	ErrRevoked   = errors.New("token revoked")
	ErrTooMany   = errors.New("too many failed attempts")
	ErrForbidden = errors.New("forbidden")
)

// Generate returns a new token: the whole secret to hand to its user once,
// its public ID and the hash to store.
func Generate() (token, id, hash string, err error) {
	b := make([]byte, 6+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", err
	}
	id = hex.EncodeToString(b[:6])
	secret := base64.RawURLEncoding.EncodeToString(b[6:])
	return prefix + id + "_" + secret, id, Hash(secret), nil
}

// Parse splits a token into its ID and secret.
func Parse(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 12 || len(secret) < 32 {
		return "", "", false
	}
	return id, secret, true
}

// Hash is what the store keeps of a secret. A token's secret has 256 bits
// of entropy, so one round of SHA-256 is enough: there is nothing to guess.
func Hash(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(s[:])
}

// matches reports whether secret hashes to hash, in constant time.
func matches(hash, secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(Hash(secret))) == 1
}

// Create makes a token for user and records it (with an audit record by
// createdBy); it expires at expires, the zero time meaning never (the
// caller dates it, by the clock that its Authenticator reads). It returns
// the token to show once.
func Create(ctx context.Context, st store.Store, user, description, createdBy string, expires time.Time) (string, store.Token, error) {
	token, id, hash, err := Generate()
	if err != nil {
		return "", store.Token{}, err
	}
	t := store.Token{ID: id, User: user, Hash: hash, Description: description, CreatedBy: createdBy, ExpiresAt: expires}
	detail := fmt.Sprintf(`{"token":%q,"user":%q}`, id, user)
	t, err = st.CreateToken(ctx, t, &store.AuditRecord{Actor: createdBy, Action: "token.created", Detail: []byte(detail)})
	if err != nil {
		return "", store.Token{}, err
	}
	return token, t, nil
}
