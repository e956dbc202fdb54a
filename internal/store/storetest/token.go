package storetest

import (
	"errors"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

func testTokens(f *fixture) {
	exp := t0.Add(30 * 24 * time.Hour)
	a, err := f.s.CreateToken(f.ctx, store.Token{ID: "t1", User: "ada", Hash: "h1", Description: "laptop", CreatedBy: "admin", ExpiresAt: exp},
		&store.AuditRecord{Actor: "admin", Action: "token.created"})
	if err != nil {
		f.Fatalf("CreateToken: %v", err)
	}
	if a.CreatedAt.IsZero() || !a.ExpiresAt.Equal(exp) || !a.LastUsedAt.IsZero() || !a.RevokedAt.IsZero() || a.Hash != "h1" || a.CreatedBy != "admin" {
		f.Errorf("CreateToken = %+v", a)
	}
	if a.ExpiresAt.Location() != time.UTC {
		f.Errorf("ExpiresAt in %v, want UTC", a.ExpiresAt.Location())
	}
	if _, err := f.s.CreateToken(f.ctx, store.Token{ID: "t1", User: "bob", Hash: "h2"}, nil); !errors.Is(err, store.ErrConflict) {
		f.Errorf("CreateToken with a used ID: %v, want ErrConflict", err)
	}
	if _, err := f.s.CreateToken(f.ctx, store.Token{ID: "t2", User: "bob", Hash: "h2"}, nil); err != nil {
		f.Fatalf("CreateToken: %v", err)
	}
	for _, bad := range []store.Token{{User: "x", Hash: "h"}, {ID: "t3", Hash: "h"}, {ID: "t3", User: "x"}, {ID: "t3", User: "x", Hash: "h", RevokedAt: t0}} {
		if _, err := f.s.CreateToken(f.ctx, bad, nil); err == nil {
			f.Errorf("CreateToken(%+v) accepted", bad)
		}
	}
	if ts, err := f.s.Tokens(f.ctx, "ada"); err != nil || len(ts) != 1 || ts[0].ID != "t1" {
		f.Errorf("Tokens(ada) = %+v, %v", ts, err)
	}
	if ts, err := f.s.Tokens(f.ctx, ""); err != nil || len(ts) != 2 {
		f.Errorf("Tokens() = %+v, %v; want 2", ts, err)
	}
	if err := f.s.TouchToken(f.ctx, "t1", t0); err != nil {
		f.Fatal(err)
	}
	if err := f.s.TouchToken(f.ctx, "t1", t0.Add(-time.Hour)); err != nil { // earlier: ignored
		f.Fatal(err)
	}
	if got, err := f.s.Token(f.ctx, "t1"); err != nil || !got.LastUsedAt.Equal(t0) {
		f.Errorf("Token after touch = %+v, %v; want LastUsedAt %v", got, err, t0)
	}
	r, err := f.s.RevokeToken(f.ctx, "t1", &store.AuditRecord{Actor: "admin", Action: "token.revoked"})
	if err != nil || r.RevokedAt.IsZero() {
		f.Fatalf("RevokeToken = %+v, %v", r, err)
	}
	again, err := f.s.RevokeToken(f.ctx, "t1", &store.AuditRecord{Actor: "admin", Action: "token.revoked"})
	if err != nil || !again.RevokedAt.Equal(r.RevokedAt) {
		f.Errorf("RevokeToken again = %+v, %v; want unchanged", again, err)
	}
	if _, err := f.s.RevokeToken(f.ctx, "nope", nil); !errors.Is(err, store.ErrNotFound) {
		f.Errorf("RevokeToken(unknown): %v, want ErrNotFound", err)
	}
	if _, err := f.s.Token(f.ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		f.Errorf("Token(unknown): %v, want ErrNotFound", err)
	}
	var actions []string
	for _, rec := range f.verifiedAudit() {
		actions = append(actions, rec.Action)
	}
	if len(actions) != 2 || actions[0] != "token.created" || actions[1] != "token.revoked" {
		f.Errorf("audit = %v, want one token.created and one token.revoked", actions)
	}
	f.reopenStore()
	if got, err := f.s.Token(f.ctx, "t1"); err != nil || got.RevokedAt.IsZero() || got.Hash != "h1" {
		f.Errorf("after reopen: %+v, %v", got, err)
	}
}

func testLastEventID(f *fixture) {
	if id, err := f.s.LastEventID(f.ctx); err != nil || id != 0 {
		f.Fatalf("LastEventID of no events = %d, %v; want 0", id, err)
	}
	var last int64
	for range 3 {
		id, err := f.s.AppendEvent(f.ctx, store.Event{Kind: "test.event"})
		if err != nil {
			f.Fatal(err)
		}
		last = id
	}
	if id, err := f.s.LastEventID(f.ctx); err != nil || id != last {
		f.Errorf("LastEventID = %d, %v; want %d", id, err, last)
	}
}
