package auth

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/clock"
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
	good, tok, err := Create(ctx, st, "ada", "laptop", "admin", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if stored, _ := st.Token(ctx, tok.ID); strings.Contains(stored.Hash, good[len(prefix)+13:]) || stored.Hash == "" {
		t.Fatalf("the store keeps the secret in clear: %+v", stored)
	}
	// An expiry is a time: an hour ago is expired whenever the test runs.
	expired, _, _ := Create(ctx, st, "bob", "", "admin", time.Now().Add(-time.Hour))
	revoked, rt, _ := Create(ctx, st, "cy", "", "admin", time.Time{})
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

// TestGuessingAKnownID checks the per-ID limit: wrong secrets for one
// token's ID from many addresses lock the ID, the valid secret included,
// for a time that doubles up to MaxLock and ends; the holder's own address
// is not locked out; and an unknown ID is no lock for anyone.
func TestGuessingAKnownID(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	good, tok, err := Create(ctx, st, "ada", "ci", "admin", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a := &Authenticator{Store: st, Now: c.Now, IDBurst: 3, MaxLock: 8 * time.Second}
	if _, err := a.Authenticate(ctx, "10.0.0.1", good); err != nil { // the holder's address
		t.Fatal(err)
	}
	guess := prefix + tok.ID + "_" + strings.Repeat("g", 43)
	addr := 0
	attempt := func(token string) error {
		addr++ // every attempt from another address: the per-address limit never applies
		_, err := a.Authenticate(ctx, fmt.Sprintf("192.0.2.%d", addr), token)
		return err
	}
	for i := range 3 {
		if err := attempt(guess); !errors.Is(err, ErrBadToken) {
			t.Fatalf("wrong secret %d: %v, want ErrBadToken", i+1, err)
		}
	}
	if err := attempt(good); err != nil {
		t.Fatalf("the valid secret within the burst: %v", err)
	}
	// The 4th wrong secret locks the ID for 1 s, then 2, 4, 8, 8: each
	// lock refuses even the valid secret from a new address, unchecked,
	// and attempts while locked do not extend it.
	for i, lock := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if err := attempt(guess); !errors.Is(err, ErrBadToken) {
			t.Fatalf("wrong secret %d: %v, want ErrBadToken", i+4, err)
		}
		c.Advance(lock - time.Millisecond)
		for range 3 {
			err := attempt(good)
			if !errors.Is(err, ErrTooMany) {
				t.Fatalf("the valid secret %s into lock %d: %v, want ErrTooMany", lock-time.Millisecond, i+1, err)
			}
			if w := RetryAfter(err); w != time.Millisecond {
				t.Errorf("lock %d: retry after %s, want 1ms", i+1, w)
			}
		}
		if _, err := a.Authenticate(ctx, "10.0.0.1", good); err != nil {
			t.Fatalf("the holder's own address during lock %d: %v", i+1, err)
		}
		c.Advance(time.Millisecond)
	}
	if err := attempt(good); err != nil {
		t.Errorf("the valid secret once the lock (at most MaxLock) is over: %v", err)
	}
	// A quiet stretch forgets the failures: the burst is whole again.
	c.Advance(10 * time.Minute)
	for range 3 {
		if err := attempt(guess); !errors.Is(err, ErrBadToken) {
			t.Fatalf("after a quiet stretch: %v, want ErrBadToken", err)
		}
	}
	if err := attempt(good); err != nil {
		t.Errorf("after a quiet stretch, the burst is not whole: %v", err)
	}
	// An ID no token has is never locked: there is nothing to guess.
	unknown := prefix + "000000000000_" + strings.Repeat("g", 43)
	for i := range 10 {
		if err := attempt(unknown); !errors.Is(err, ErrBadToken) {
			t.Fatalf("unknown ID, attempt %d: %v, want ErrBadToken", i+1, err)
		}
	}
}
