package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/socle-dev/socle/internal/store"
)

// Authenticator checks tokens against the store. Failed attempts are
// limited per client address: Burst in a row, then one every Every; past
// that, a bad token gets ErrTooMany instead of ErrBadToken. A valid token is
// never refused for its address's failures: tokens are 256-bit secrets that
// no one guesses, and many callers may share an address (a NAT, a CI
// runner, the portal), so the limit slows guessing down without letting a
// careless client lock everyone else out.
type Authenticator struct {
	Store store.Store
	Every time.Duration // default 6s
	Burst int           // default 10

	mu       sync.Mutex
	failures map[string]*rate.Limiter
	touched  map[string]time.Time
}

// touchEvery is how often a token's last use is written: a write per
// request would make every read a write.
const touchEvery = time.Minute

// Authenticate returns the token's record if token is valid for a request
// from client (its IP address).
func (a *Authenticator) Authenticate(ctx context.Context, client, token string) (store.Token, error) {
	if token == "" {
		return store.Token{}, ErrNoToken
	}
	t, err := a.check(ctx, token)
	if err != nil {
		if !errors.Is(err, ErrBadToken) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrRevoked) {
			return store.Token{}, err // the store failed: not the client's fault
		}
		if !a.limiter(client).Allow() {
			return store.Token{}, fmt.Errorf("%w from %s: try again in %s", ErrTooMany, client, a.every().Round(time.Second))
		}
		return store.Token{}, err
	}
	a.touch(ctx, t.ID)
	return t, nil
}

func (a *Authenticator) check(ctx context.Context, token string) (store.Token, error) {
	id, secret, ok := Parse(token)
	if !ok {
		return store.Token{}, ErrBadToken
	}
	t, err := a.Store.Token(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, ErrBadToken
	} else if err != nil {
		return store.Token{}, err
	}
	switch {
	case !matches(t.Hash, secret):
		return store.Token{}, ErrBadToken
	case !t.RevokedAt.IsZero():
		return store.Token{}, fmt.Errorf("%w: token %s was revoked at %s", ErrRevoked, t.ID, t.RevokedAt.Format(time.RFC3339))
	case !t.ExpiresAt.IsZero() && time.Now().After(t.ExpiresAt):
		return store.Token{}, fmt.Errorf("%w: token %s expired at %s", ErrExpired, t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	return t, nil
}

func (a *Authenticator) every() time.Duration {
	if a.Every > 0 {
		return a.Every
	}
	return 6 * time.Second
}

func (a *Authenticator) limiter(client string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failures == nil {
		a.failures = map[string]*rate.Limiter{}
	}
	lim := a.failures[client]
	if lim == nil {
		burst := a.Burst
		if burst <= 0 {
			burst = 10
		}
		if len(a.failures) >= 10000 { // forget the clients that are back to full
			for k, l := range a.failures {
				if l.Tokens() >= float64(l.Burst()) {
					delete(a.failures, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(a.every()), burst)
		a.failures[client] = lim
	}
	return lim
}

func (a *Authenticator) touch(ctx context.Context, id string) {
	now := time.Now()
	a.mu.Lock()
	if a.touched == nil {
		a.touched = map[string]time.Time{}
	}
	due := now.Sub(a.touched[id]) >= touchEvery
	if due {
		a.touched[id] = now
	}
	a.mu.Unlock()
	if due {
		_ = a.Store.TouchToken(ctx, id, now) // last use is a hint; a failed write must not fail the request
	}
}
