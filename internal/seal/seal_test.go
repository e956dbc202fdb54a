package seal

import (
	"bytes"
	"errors"
	"testing"
)

// TestSeal: a value comes back with its key and its aad only; the sealed
// bytes do not hold it, and two seals of one value differ (fresh nonces).
func TestSeal(t *testing.T) {
	k, err := New([]byte("data directory secret"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New([]byte("another secret"))
	plain := []byte("s3cret state")
	a, err := k.Seal(plain, []byte("state a"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Seal(plain, []byte("state a"))
	if bytes.Contains(a, plain) || bytes.Equal(a, b) {
		t.Errorf("sealed = %q and %q", a, b)
	}
	if got, err := k.Open(a, []byte("state a")); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Open = %q, %v", got, err)
	}
	for name, open := range map[string]func() ([]byte, error){
		"another aad": func() ([]byte, error) { return k.Open(a, []byte("state b")) },
		"another key": func() ([]byte, error) { return other.Open(a, []byte("state a")) },
		"cut short":   func() ([]byte, error) { return k.Open(a[:10], []byte("state a")) },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) derived a key")
	}
}
