// Package seal encrypts what socle keeps at rest (secret variables in the
// store, stack states, saved plans and outputs in the data directory) with
// AES-256-GCM under a key derived from the data directory's secret. It owns
// the cipher, not the secret (the wiring reads it) nor what is sealed.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// ErrOpen is a sealed value that does not open: damaged, or sealed with
// another data directory's secret or for another purpose.
var ErrOpen = errors.New("a sealed value does not open with this data directory's secret.key")

// Key seals and opens values.
type Key struct{ aead cipher.AEAD }

// New derives the key from the data directory's secret.
func New(secret []byte) (*Key, error) {
	if len(secret) == 0 {
		return nil, errors.New("no secret to derive the sealing key from")
	}
	key := sha256.Sum256(append([]byte("socle-seal-v1\x00"), secret...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead}, nil
}

// Seal encrypts plain with a fresh random nonce, returned in front of the
// ciphertext. aad binds the value to what it is (e.g. which instance's
// state): a sealed value moved to another place does not open there.
func (k *Key) Seal(plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, plain, aad), nil
}

// Open decrypts what Seal encrypted with the same aad.
func (k *Key) Open(sealed, aad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
