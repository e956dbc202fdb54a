package sopsfile

import (
	"fmt"
	"slices"
)

// Names returns the names of a SOPS file's values, in the file's order,
// without decrypting them: SOPS keeps the names in clear.
func Names(data []byte) ([]string, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxSize)
	}
	tree, err := store().LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("not a SOPS file: %w", err)
	}
	names := []string{}
	for _, b := range tree.Branches {
		for _, it := range b {
			if name, ok := it.Key.(string); ok {
				names = append(names, name)
			}
		}
	}
	return names, nil
}

// Holds reports whether the keyring holds an identity of one of
// recipients: whether it can decrypt a file encrypted for them.
func (k *Keyring) Holds(recipients []string) bool {
	return k != nil && slices.ContainsFunc(recipients, func(r string) bool { return slices.Contains(k.recipients, r) })
}

// Reencrypt decrypts a SOPS file with the identities held, lets change
// edit its values, and encrypts them for recipients with a new data key
// (Encrypt): the old data key decrypts the result no more. Comments of
// the file are not kept: secret files are flat NAME: value pairs.
func (k *Keyring) Reencrypt(data []byte, recipients []string, change func(values map[string]string)) ([]byte, error) {
	values, err := k.Decrypt(data)
	if err != nil {
		return nil, err
	}
	if change != nil {
		change(values)
	}
	return Encrypt(values, recipients)
}
