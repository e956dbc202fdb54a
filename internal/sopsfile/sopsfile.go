package sopsfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/logging"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"github.com/sirupsen/logrus"
)

func init() {
	// sops logs every decryption tried at Info to stderr: socle says what
	// failed in the unit's status instead.
	logging.SetLevel(logrus.WarnLevel)
}

// sopsVersion is the format version written in a file's metadata (the
// sops release whose library socle is built with; sops/v3/version pulls a
// CLI framework in for one string).
const sopsVersion = "3.13.3"

// MaxSize is the largest secret file socle reads.
const MaxSize = 1 << 20

// ErrNoIdentity is returned when socle holds no identity for any of the
// recipients a file is encrypted for.
var ErrNoIdentity = errors.New("no age identity for any recipient")

// NoIdentityError says which recipients a file is encrypted for, none of
// which socle holds an identity for.
type NoIdentityError struct {
	Recipients []string // the file's age recipients
	Held       []string // the recipients of the identities socle holds
}

func (e *NoIdentityError) Error() string {
	held := "none"
	if len(e.Held) > 0 {
		held = strings.Join(e.Held, ", ")
	}
	return fmt.Sprintf("encrypted for %s; socle holds no identity for any of them (it holds: %s)", strings.Join(e.Recipients, ", "), held)
}

func (e *NoIdentityError) Unwrap() error { return ErrNoIdentity }

// Keyring is the age identities socle holds. The zero Keyring holds none.
type Keyring struct {
	ids        []age.Identity
	recipients []string
}

// Add adds the identities of an age identity file's text (lines
// AGE-SECRET-KEY-1…, # comments).
func (k *Keyring) Add(text []byte) error {
	ids, err := age.ParseIdentities(bytes.NewReader(text))
	if err != nil {
		return err
	}
	for _, id := range ids {
		x, ok := id.(*age.X25519Identity)
		if !ok {
			return fmt.Errorf("only X25519 age identities are supported")
		}
		if r := x.Recipient().String(); !slices.Contains(k.recipients, r) {
			k.ids, k.recipients = append(k.ids, x), append(k.recipients, r)
		}
	}
	return nil
}

// LoadFile adds the identities of an age identity file.
func (k *Keyring) LoadFile(path string) error {
	b, err := readLimited(path)
	if err != nil {
		return err
	}
	if err := k.Add(b); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadDir adds the identities of every dir/*.txt; a missing dir holds none.
func (k *Keyring) LoadDir(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return err
	}
	slices.Sort(files)
	for _, f := range files {
		if err := k.LoadFile(f); err != nil {
			return err
		}
	}
	return nil
}

// Recipients returns the recipients of the identities held.
func (k *Keyring) Recipients() []string {
	if k == nil {
		return nil
	}
	return slices.Clone(k.recipients)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxSize)
	}
	return b, nil
}

// NewIdentity generates an age identity and returns its file's text and
// its recipient.
func NewIdentity(comment string) (text []byte, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, "", err
	}
	r := id.Recipient().String()
	return fmt.Appendf(nil, "# %s\n# public key: %s\n%s\n", comment, r, id), r, nil
}

func store() *sopsyaml.Store { return sopsyaml.NewStore(&config.YAMLStoreConfig{Indent: 4}) }

// IsEncrypted reports whether a YAML document is a SOPS file (it has sops
// metadata).
func IsEncrypted(data []byte) bool {
	_, err := store().LoadEncryptedFile(data)
	return err == nil
}

// Recipients returns the age recipients a SOPS file is encrypted for.
func Recipients(data []byte) ([]string, error) {
	tree, err := store().LoadEncryptedFile(data)
	if err != nil {
		return nil, err
	}
	return ageRecipients(tree.Metadata), nil
}

func ageRecipients(m sops.Metadata) []string {
	var out []string
	for _, g := range m.KeyGroups {
		for _, k := range g {
			if a, ok := k.(*sopsage.MasterKey); ok {
				out = append(out, a.Recipient)
			}
		}
	}
	return out
}

// Decrypt decrypts a SOPS file of flat NAME: value pairs with the
// identities held; the data key's MAC is checked. A file encrypted for no
// recipient held gives a *NoIdentityError.
func (k *Keyring) Decrypt(data []byte) (map[string]string, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxSize)
	}
	tree, err := store().LoadEncryptedFile(data)
	if err != nil {
		return nil, fmt.Errorf("not a SOPS file: %w", err)
	}
	key, err := k.dataKey(tree.Metadata)
	if err != nil {
		return nil, err
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, fmt.Errorf("decrypting: %w", err)
	}
	want, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || want != mac {
		return nil, fmt.Errorf("the file's MAC does not match its values: it was changed without sops")
	}
	return flat(tree.Branches)
}

// dataKey decrypts the file's data key with the first age key it has an
// identity for.
func (k *Keyring) dataKey(m sops.Metadata) ([]byte, error) {
	var ids []age.Identity
	if k != nil {
		ids = k.ids
	}
	for _, g := range m.KeyGroups {
		for _, mk := range g {
			a, ok := mk.(*sopsage.MasterKey)
			if !ok || len(ids) == 0 {
				continue
			}
			sopsage.ParsedIdentities(ids).ApplyToMasterKey(a)
			if key, err := a.Decrypt(); err == nil {
				return key, nil
			}
		}
	}
	return nil, &NoIdentityError{Recipients: ageRecipients(m), Held: k.Recipients()}
}

// flat reads the decrypted top level as NAME: value pairs.
func flat(bs sops.TreeBranches) (map[string]string, error) {
	out := map[string]string{}
	for _, b := range bs {
		for _, it := range b {
			name, ok := it.Key.(string)
			if !ok {
				continue // a comment
			}
			switch v := it.Value.(type) {
			case string:
				out[name] = v
			case int:
				out[name] = strconv.Itoa(v)
			case float64:
				out[name] = strconv.FormatFloat(v, 'g', -1, 64)
			case bool:
				out[name] = strconv.FormatBool(v)
			default:
				return nil, fmt.Errorf("%s: a secret is a string, not %T: secret files hold flat NAME: value pairs", name, v)
			}
		}
	}
	return out, nil
}

// Encrypt writes values as a SOPS file encrypted for the age recipients,
// with a new data key each time: re-encrypting a file rotates its data
// key, and the old one decrypts it no more.
func Encrypt(values map[string]string, recipients []string) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no age recipient to encrypt for")
	}
	var group sops.KeyGroup
	for _, r := range recipients {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, fmt.Errorf("recipient %q: %w", r, err)
		}
		group = append(group, keys.MasterKey(mk))
	}
	var branch sops.TreeBranch
	for _, name := range slices.Sorted(maps.Keys(values)) {
		branch = append(branch, sops.TreeItem{Key: name, Value: values[name]})
	}
	tree := sops.Tree{Branches: sops.TreeBranches{branch}, Metadata: sops.Metadata{
		KeyGroups: []sops.KeyGroup{group}, UnencryptedSuffix: "_unencrypted", Version: sopsVersion}}
	key, errs := tree.GenerateDataKey()
	if len(errs) > 0 {
		return nil, fmt.Errorf("encrypting the data key: %w", errors.Join(errs...))
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(key, cipher)
	if err != nil {
		return nil, fmt.Errorf("encrypting: %w", err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, key, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		return nil, fmt.Errorf("encrypting the MAC: %w", err)
	}
	return store().EmitEncryptedFile(tree)
}
