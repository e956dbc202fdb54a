package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/store"
)

// pullPeriod is how often a cluster's pull token of an app changes. Each
// token is valid for two periods from the start of its own: the Secret
// holding it is rewritten at the next period's first pass, and the token
// stays valid one more period, for the kubelets that read the Secret
// before it changed and for a socle that is down for a while.
const pullPeriod = 24 * time.Hour

// pullRecheck is how long a pull token known valid is handed out without
// asking the store again: a token an admin revoked is replaced by then.
const pullRecheck = time.Minute

// pullGenerations bounds how many revoked tokens of one period are skipped
// before giving up: each revocation by an admin moves to the next.
const pullGenerations = 16

// pullTokens makes the read-only tokens with which a Kubernetes
// environment pulls an app's images from socle's registry: user pull:<app>,
// which reads /v2/apps/<app>/ and nothing else (see guardRegistry).
//
// Tokens are derived from the data directory's secret, the app, the
// environment, the period and a generation, like resource passwords: the
// same pass renders the same Secret (no drift, no new token per pass) and
// a restarted socle finds them again, while the store keeps only their
// hash, an expiry and an audit record, as for any token. Rotation is by
// time: a new period derives a new token, the Secret changes at the next
// pass, and the old token expires one period later. An admin who revokes
// the token in use (socle token revoke) gets a new one within pullRecheck:
// the revoked generation is skipped.
type pullTokens struct {
	store store.Store
	key   []byte
	now   func() time.Time

	mu     sync.Mutex
	issued map[[2]string]issued // by app and environment
}

type issued struct {
	token   string
	period  int64
	checked time.Time
}

func newPullTokens(st store.Store, secret []byte, now func() time.Time) *pullTokens {
	key := sha256.Sum256(append([]byte("socle-pull-tokens/1\x00"), secret...))
	return &pullTokens{store: st, key: key[:], now: now, issued: map[[2]string]issued{}}
}

// Token returns the pull token of app in env for now.
func (p *pullTokens) Token(ctx context.Context, app, env string) (string, error) {
	now := p.now()
	period := now.UnixNano() / int64(pullPeriod)
	k := [2]string{app, env}
	p.mu.Lock()
	if is, ok := p.issued[k]; ok && is.period == period && now.Sub(is.checked) < pullRecheck {
		p.mu.Unlock()
		return is.token, nil
	}
	p.mu.Unlock()
	start := time.Unix(0, period*int64(pullPeriod))
	for gen := range pullGenerations {
		token, id, hash := auth.Derive(p.key, app, env, strconv.FormatInt(period, 10), strconv.Itoa(gen))
		t, err := p.store.Token(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			t, err = p.create(ctx, store.Token{
				ID: id, User: pullPrefix + app, Hash: hash, CreatedBy: "socle",
				Description: fmt.Sprintf("pulls %s's images in %s (made and rotated by socle)", app, env),
				ExpiresAt:   start.Add(2 * pullPeriod),
			})
		}
		if err != nil {
			return "", fmt.Errorf("pull token of %s in %s: %w", app, env, err)
		}
		if t.Hash != hash || t.User != pullPrefix+app {
			return "", fmt.Errorf("pull token of %s in %s: token %s in the store is not the one socle derives", app, env, id)
		}
		if !t.RevokedAt.IsZero() || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
			continue
		}
		p.mu.Lock()
		p.issued[k] = issued{token: token, period: period, checked: now}
		p.mu.Unlock()
		return token, nil
	}
	return "", fmt.Errorf("pull token of %s in %s: the %d tokens of this period are all revoked; a new one comes with the next period", app, env, pullGenerations)
}

// create records a pull token; another socle replica making the same one
// at the same time is no error.
func (p *pullTokens) create(ctx context.Context, t store.Token) (store.Token, error) {
	detail, _ := json.Marshal(map[string]string{"token": t.ID, "user": t.User})
	out, err := p.store.CreateToken(ctx, t, &store.AuditRecord{Actor: "socle", Action: "token.created", Detail: detail})
	if errors.Is(err, store.ErrConflict) {
		return p.store.Token(ctx, t.ID)
	}
	return out, err
}
