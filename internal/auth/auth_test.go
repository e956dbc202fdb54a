package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestAuthenticate(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	good, tok, err := Create(ctx, st, "ada", "laptop", "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	if stored, _ := st.Token(ctx, tok.ID); strings.Contains(stored.Hash, good[len(prefix)+13:]) || stored.Hash == "" {
		t.Fatalf("the store keeps the secret in clear: %+v", stored)
	}
	expired, _, _ := Create(ctx, st, "bob", "", "admin", time.Nanosecond)
	revoked, rt, _ := Create(ctx, st, "cy", "", "admin", 0)
	if _, err := st.RevokeToken(ctx, rt.ID, nil); err != nil {
		t.Fatal(err)
	}
	id, _, _ := Parse(good)
	a := &Authenticator{Store: st, Burst: 3, Every: time.Hour}
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"valid", good, nil},
		{"none", "", ErrNoToken},
		{"not a token", "Bearer xyz", ErrBadToken},
		{"unknown id", prefix + "000000000000_" + strings.Repeat("a", 43), ErrBadToken},
		{"wrong secret", prefix + id + "_" + strings.Repeat("a", 43), ErrBadToken},
		{"expired", expired, ErrExpired},
		{"revoked", revoked, ErrRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Authenticate(ctx, "10.0.0."+tc.name, tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && got.User != "ada" {
				t.Errorf("user = %q, want ada", got.User)
			}
		})
	}
	if used, _ := st.Token(ctx, tok.ID); used.LastUsedAt.IsZero() {
		t.Error("a valid use did not record LastUsedAt")
	}

	// Three failures from one address, then the next bad tokens from there
	// are refused as too many, while a valid token still goes through,
	// from there or elsewhere.
	for range 3 {
		if _, err := a.Authenticate(ctx, "10.9.9.9", "socle_bad"); !errors.Is(err, ErrBadToken) {
			t.Fatalf("err = %v, want ErrBadToken", err)
		}
	}
	if _, err := a.Authenticate(ctx, "10.9.9.9", "socle_bad"); !errors.Is(err, ErrTooMany) {
		t.Errorf("the 4th failure: %v, want ErrTooMany", err)
	}
	if _, err := a.Authenticate(ctx, "10.9.9.9", good); err != nil {
		t.Errorf("a valid token from the limited address: %v", err)
	}
	if _, err := a.Authenticate(ctx, "10.9.9.8", "socle_bad"); !errors.Is(err, ErrBadToken) {
		t.Errorf("another address is limited too: %v", err)
	}
}

func TestGenerateParse(t *testing.T) {
	tok, id, hash, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	gid, secret, ok := Parse(tok)
	if !ok || gid != id || !matches(hash, secret) || matches(hash, secret+"x") {
		t.Errorf("Parse(%q) = %q, %q, %v", tok, gid, secret, ok)
	}
	other, _, _, _ := Generate()
	if other == tok {
		t.Error("two tokens are the same")
	}
}
