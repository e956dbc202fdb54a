package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Derive returns the token that key and parts derive, with its ID and the
// hash to store: the same inputs give the same token, so that socle can
// hand a machine the same credential again (a cluster's image pull
// secret, applied at every pass) without keeping the secret anywhere, the
// way resource passwords are derived. key must be a secret of at least 32
// random bytes; parts must differ for every token wanted.
func Derive(key []byte, parts ...string) (token, id, hash string) {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("socle-token/1\x00" + strings.Join(parts, "\x00")))
	sum := mac.Sum(nil)
	idMac := hmac.New(sha256.New, key)
	idMac.Write([]byte("socle-token-id/1\x00"))
	idMac.Write(sum)
	id = hex.EncodeToString(idMac.Sum(nil)[:6])
	secret := base64.RawURLEncoding.EncodeToString(sum)
	return prefix + id + "_" + secret, id, Hash(secret)
}
