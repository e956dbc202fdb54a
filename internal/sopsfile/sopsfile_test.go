package sopsfile

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/getsops/sops/v3/aes"
)

func newKey(t *testing.T, name string) (*Keyring, string, []byte) {
	t.Helper()
	text, r, err := NewIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	var k Keyring
	if err := k.Add(text); err != nil {
		t.Fatal(err)
	}
	return &k, r, text
}

// TestRoundTripAndSopsReadsIt: what Encrypt writes, socle decrypts, and so
// does sops the way `sops -d` does (its key service, reading SOPS_AGE_KEY:
// sops/v3/decrypt itself pulls sops' CLI in); the
// file holds the names in clear and no value.
func TestRoundTripAndSopsReadsIt(t *testing.T) {
	k, r, text := newKey(t, "dev")
	values := map[string]string{"API_KEY": "s3cr3t-value-42", "PIN": "123", "EMPTY": ""}
	b, err := Encrypt(values, []string{r})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"s3cr3t-value-42", ": \"123\"", ": 123"} {
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("the file holds %q in clear:\n%s", v, b)
		}
	}
	for _, n := range []string{"API_KEY: ENC[AES256_GCM,", "PIN: ENC[AES256_GCM,", "recipient: " + r} {
		if !bytes.Contains(b, []byte(n)) {
			t.Errorf("the file lacks %q:\n%s", n, b)
		}
	}
	got, err := k.Decrypt(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["API_KEY"] != "s3cr3t-value-42" || got["PIN"] != "123" || got["EMPTY"] != "" {
		t.Errorf("decrypted %q", got)
	}
	if rs, err := Recipients(b); err != nil || len(rs) != 1 || rs[0] != r {
		t.Errorf("Recipients = %q, %v", rs, err)
	}
	t.Setenv("SOPS_AGE_KEY", string(text))
	t.Setenv("SOPS_AGE_KEY_FILE", "/nonexistent")
	tree, err := store().LoadEncryptedFile(b)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tree.Metadata.GetDataKey()
	if err != nil {
		t.Fatalf("sops cannot decrypt socle's data key: %v", err)
	}
	if _, err := tree.Decrypt(key, aes.NewCipher()); err != nil {
		t.Fatal(err)
	}
	plain, err := store().EmitPlainFile(tree.Branches)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plain), "API_KEY: s3cr3t-value-42") || !strings.Contains(string(plain), "PIN: \"123\"") {
		t.Errorf("sops decrypted:\n%s", plain)
	}
}

// TestDevCannotDecryptProd: a file encrypted for prod's recipient is not
// decrypted with dev's identity, and the error names the recipient.
func TestDevCannotDecryptProd(t *testing.T) {
	dev, devR, _ := newKey(t, "dev")
	_, prodR, _ := newKey(t, "prod")
	b, err := Encrypt(map[string]string{"DB_PASSWORD": "prod-only-value"}, []string{prodR})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dev.Decrypt(b)
	var ne *NoIdentityError
	if !errors.As(err, &ne) || !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("dev decrypted prod's file: %v", err)
	}
	if !strings.Contains(err.Error(), prodR) || !strings.Contains(err.Error(), devR) {
		t.Errorf("the error does not name the file's recipient and the one held: %v", err)
	}
	if _, err := (&Keyring{}).Decrypt(b); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("an empty keyring: %v", err)
	}
}

// TestRotateChangesTheDataKey: encrypting again (rotation) writes a new
// data key; the old one decrypts the new file no more, the values stay.
func TestRotateChangesTheDataKey(t *testing.T) {
	k, r, _ := newKey(t, "dev")
	old, err := Encrypt(map[string]string{"TOKEN": "same-value-9"}, []string{r})
	if err != nil {
		t.Fatal(err)
	}
	oldKey := dataKeyOf(t, k, old)
	rotated, err := Encrypt(map[string]string{"TOKEN": "same-value-9"}, []string{r})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(oldKey, dataKeyOf(t, k, rotated)) {
		t.Fatal("the data key did not change")
	}
	tree, err := store().LoadEncryptedFile(rotated)
	if err == nil {
		if _, err = tree.Decrypt(oldKey, aes.NewCipher()); err == nil {
			t.Error("the old data key decrypts the rotated file")
		}
	}
	if got, err := k.Decrypt(rotated); err != nil || got["TOKEN"] != "same-value-9" {
		t.Errorf("rotated: %q %v", got, err)
	}
}

func dataKeyOf(t *testing.T, k *Keyring, b []byte) []byte {
	t.Helper()
	tree, err := store().LoadEncryptedFile(b)
	if err != nil {
		t.Fatal(err)
	}
	key, err := k.dataKey(tree.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestTamperedValueIsRefused: a value moved from another file (or edited
// without sops) fails the MAC or the value's authentication.
func TestTamperedValueIsRefused(t *testing.T) {
	k, r, _ := newKey(t, "dev")
	b, err := Encrypt(map[string]string{"A": "value-a-1", "B": "value-b-2"}, []string{r})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var a, bl int
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "A: "):
			a = i
		case strings.HasPrefix(l, "B: "):
			bl = i
		}
	}
	lines[a] = "A: " + strings.TrimPrefix(lines[bl], "B: ")
	if _, err := k.Decrypt([]byte(strings.Join(lines, "\n"))); err == nil {
		t.Error("a value swapped between names decrypts")
	}
	if _, err := k.Decrypt([]byte("A: plain\n")); err == nil || !strings.Contains(err.Error(), "not a SOPS file") {
		t.Errorf("a plain file: %v", err)
	}
}

func TestRules(t *testing.T) {
	rs, err := ParseRules([]byte(`creation_rules:
  - path_regex: apps/.*/secrets\.prod\.yaml$
    age: age1prod1, age1prod2
  - path_regex: apps/.*/secrets\..*\.yaml$
    age: [age1dev]
`))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := rs.For("apps/web/secrets.prod.yaml"); !ok || strings.Join(r, " ") != "age1prod1 age1prod2" {
		t.Errorf("prod: %q %v", r, ok)
	}
	if r, ok := rs.For("apps/web/secrets.dev.yaml"); !ok || strings.Join(r, " ") != "age1dev" {
		t.Errorf("dev: %q %v", r, ok)
	}
	if _, ok := rs.For("apps/web/score.yaml"); ok {
		t.Error("score.yaml has recipients")
	}
	for _, bad := range []string{"creation_rules:\n  - path_regex: '('\n", "creation_rules:\n  - age: {a: b}\n", "creation_rules: 3\n"} {
		if _, err := ParseRules([]byte(bad)); err == nil {
			t.Errorf("%q parses", bad)
		}
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte("creation_rules:\n  - path_regex: a\n    age: age1x,age1y\n"))
	f.Add([]byte("creation_rules:\n  - age: [a, b]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseRules(b)
		if err != nil {
			return
		}
		for _, r := range rs {
			for _, a := range r.Age {
				if a == "" || strings.Contains(a, ",") {
					t.Fatalf("recipient %q", a)
				}
			}
		}
		rs.For("apps/x/secrets.dev.yaml")
	})
}

// TestNamesHoldsReencrypt: the names read without a key, in the file's
// order; whether a keyring holds a recipient; a re-encryption for other
// recipients keeps the values, applies the change, changes the data key.
func TestNamesHoldsReencrypt(t *testing.T) {
	k, r, _ := newKey(t, "dev")
	other, r2, _ := newKey(t, "dev2")
	b, err := Encrypt(map[string]string{"B": "value-b-2", "A": "value-a-1"}, []string{r})
	if err != nil {
		t.Fatal(err)
	}
	if names, err := (&Keyring{}).Decrypt(b); err == nil {
		t.Fatalf("decrypted without a key: %v", names)
	}
	if names, err := Names(b); err != nil || strings.Join(names, " ") != "A B" {
		t.Errorf("Names = %q %v", names, err)
	}
	if _, err := Names([]byte("A: plain\n")); err == nil {
		t.Error("names of a plain file")
	}
	if !k.Holds([]string{r2, r}) || other.Holds([]string{r}) || (*Keyring)(nil).Holds([]string{r}) {
		t.Error("Holds")
	}
	out, err := k.Reencrypt(b, []string{r, r2}, func(v map[string]string) { v["C"] = "value-c-3" })
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(dataKeyOf(t, k, b), dataKeyOf(t, k, out)) {
		t.Error("the data key did not change")
	}
	if got, err := other.Decrypt(out); err != nil || len(got) != 3 || got["A"] != "value-a-1" || got["C"] != "value-c-3" {
		t.Errorf("re-encrypted: %d values %v", len(got), err)
	}
	if _, err := other.Reencrypt(b, []string{r2}, nil); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("re-encrypted without an identity: %v", err)
	}
}
