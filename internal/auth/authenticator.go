package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/socle-dev/socle/internal/store"
)

// Authenticator checks tokens against the store, and slows down guessing in
// two ways.
//
// Per client address: Burst failures in a row, then one every Every; past
// that, a bad token gets ErrTooMany instead of ErrBadToken. A valid token is
// never refused for its address's failures: many callers may share an
// address (a NAT, a CI runner), so this limit slows a careless or hostile
// client down without locking everyone behind it out.
//
// Per token ID, against a guess at the secret of a known token (IDs are not
// secret: they are listed and audited) from many addresses: after
// IDBurst wrong secrets for an existing ID, the ID is locked for a second,
// then twice as long at each further wrong secret, up to MaxLock. While it
// is locked, attempts with that ID are refused with ErrTooMany without
// being checked — the valid secret too, or the lock would only change the
// error of the wrong ones and slow nothing. That lets a guesser lock the
// holder out, so the lockout is bounded: it is never longer than MaxLock
// after the last wrong secret, attempts refused while locked do not extend
// it, and the failures are forgotten after ForgetAfter without one. And an
// address that presented the valid secret within TrustFor (the holder's CI
// runner, their laptop) is not locked out by failures from elsewhere: a
// guesser has to share the holder's address to get past the lock, and is
// then under that address's limit.
type Authenticator struct {
	Store store.Store
	Every time.Duration // default 6s
	Burst int           // default 10

	IDBurst     int           // default 5
	MaxLock     time.Duration // default 1 min
	ForgetAfter time.Duration // default 10 min
	TrustFor    time.Duration // default 24 h

	// Now is the clock; nil: time.Now. Tests inject one.
	Now func() time.Time

	mu       sync.Mutex
	failures map[string]*rate.Limiter
	ids      map[string]*idFailures
	touched  map[string]time.Time
}

// idFailures are the wrong secrets presented for one token ID.
type idFailures struct {
	count int       // wrong secrets since the last quiet stretch of ForgetAfter
	last  time.Time // the last wrong secret
	until time.Time // attempts from untrusted addresses are refused before
	// trusted are the addresses that presented the valid secret, and when.
	trusted map[string]time.Time
}

// maxTrusted bounds the addresses remembered per token.
const maxTrusted = 16

// touchEvery is how often a token's last use is written: a write per
// request would make every read a write.
const touchEvery = time.Minute

// limited is ErrTooMany with how long to wait.
type limited struct {
	msg  string
	wait time.Duration
}

func (e *limited) Error() string        { return e.msg }
func (e *limited) Is(target error) bool { return target == ErrTooMany }

// RetryAfter is how long a caller refused with ErrTooMany should wait (0
// for any other error).
func RetryAfter(err error) time.Duration {
	var l *limited
	if errors.As(err, &l) {
		return l.wait
	}
	return 0
}

// Authenticate returns the token's record if token is valid for a request
// from client (its IP address).
func (a *Authenticator) Authenticate(ctx context.Context, client, token string) (store.Token, error) {
	if token == "" {
		return store.Token{}, ErrNoToken
	}
	now := a.now()
	id, _, parsed := Parse(token)
	if parsed {
		if wait := a.locked(id, client, now); wait > 0 {
			a.limiter(client, now).AllowN(now, 1) // a refused attempt is still a failure of its address
			return store.Token{}, &limited{fmt.Sprintf("%s: token %s is locked after wrong secrets; try again in %s", ErrTooMany, id, roundUp(wait)), wait}
		}
	}
	t, known, err := a.check(ctx, token, now)
	if err != nil {
		if !errors.Is(err, ErrBadToken) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrRevoked) {
			return store.Token{}, err // the store failed: not the client's fault
		}
		if known && errors.Is(err, ErrBadToken) {
			a.failed(id, now)
		}
		if !a.limiter(client, now).AllowN(now, 1) {
			wait := a.every()
			return store.Token{}, &limited{fmt.Sprintf("%s from %s: try again in %s", ErrTooMany, client, roundUp(wait)), wait}
		}
		return store.Token{}, err
	}
	a.succeeded(t.ID, client, now)
	a.touch(ctx, t.ID, now)
	return t, nil
}

// check returns the token's record; known says whether its ID exists, so
// that a wrong secret counts against it.
func (a *Authenticator) check(ctx context.Context, token string, now time.Time) (t store.Token, known bool, err error) {
	id, secret, ok := Parse(token)
	if !ok {
		return store.Token{}, false, ErrBadToken
	}
	t, err = a.Store.Token(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, false, ErrBadToken
	} else if err != nil {
		return store.Token{}, false, err
	}
	switch {
	case !matches(t.Hash, secret):
		return store.Token{}, true, ErrBadToken
	case !t.RevokedAt.IsZero():
		return store.Token{}, true, fmt.Errorf("%w: token %s was revoked at %s", ErrRevoked, t.ID, t.RevokedAt.Format(time.RFC3339))
	case !t.ExpiresAt.IsZero() && now.After(t.ExpiresAt):
		return store.Token{}, true, fmt.Errorf("%w: token %s expired at %s", ErrExpired, t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	return t, true, nil
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func roundUp(d time.Duration) time.Duration { return (d + time.Second - 1).Truncate(time.Second) }

func (a *Authenticator) every() time.Duration {
	if a.Every > 0 {
		return a.Every
	}
	return 6 * time.Second
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (a *Authenticator) limiter(client string, now time.Time) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failures == nil {
		a.failures = map[string]*rate.Limiter{}
	}
	lim := a.failures[client]
	if lim == nil {
		if len(a.failures) >= 10000 { // forget the clients that are back to full
			for k, l := range a.failures {
				if l.TokensAt(now) >= float64(l.Burst()) {
					delete(a.failures, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(a.every()), orDefault(a.Burst, 10))
		a.failures[client] = lim
	}
	return lim
}

// locked returns how long attempts with id from client are refused (0:
// they are checked).
func (a *Authenticator) locked(id, client string, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.ids[id]
	if f == nil || !now.Before(f.until) {
		return 0
	}
	if at, ok := f.trusted[client]; ok && now.Sub(at) < orDefault(a.TrustFor, 24*time.Hour) {
		return 0
	}
	return f.until.Sub(now)
}

// failed counts a wrong secret for an existing token ID, and locks the ID
// past IDBurst of them.
func (a *Authenticator) failed(id string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.idEntry(id)
	if now.Sub(f.last) >= orDefault(a.ForgetAfter, 10*time.Minute) {
		f.count = 0 // a quiet stretch: the earlier failures are forgotten
	}
	f.count++
	f.last = now
	if over := f.count - orDefault(a.IDBurst, 5); over > 0 {
		lock := orDefault(a.MaxLock, time.Minute)
		if over <= 30 { // beyond, 1 s << over is past any MaxLock
			lock = min(time.Second<<(over-1), lock)
		}
		f.until = now.Add(lock)
	}
}

// succeeded remembers that client presented the valid secret of id.
func (a *Authenticator) succeeded(id, client string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.idEntry(id)
	if f.trusted == nil {
		f.trusted = map[string]time.Time{}
	}
	if _, ok := f.trusted[client]; !ok && len(f.trusted) >= maxTrusted {
		oldest := slices.MinFunc(slices.Collect(maps.Keys(f.trusted)), func(x, y string) int { return f.trusted[x].Compare(f.trusted[y]) })
		delete(f.trusted, oldest)
	}
	f.trusted[client] = now
}

// idEntry returns id's record, made if needed; a.mu is held. There is at
// most one per existing token, so the map needs no other bound.
func (a *Authenticator) idEntry(id string) *idFailures {
	if a.ids == nil {
		a.ids = map[string]*idFailures{}
	}
	f := a.ids[id]
	if f == nil {
		f = &idFailures{}
		a.ids[id] = f
	}
	return f
}

func (a *Authenticator) touch(ctx context.Context, id string, now time.Time) {
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
