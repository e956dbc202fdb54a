package storetest

import (
	"errors"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

func testPauses(f *fixture) {
	p, err := f.s.SetPause(f.ctx, store.Pause{App: "web", Env: "prod", Message: "upgrading <db>", RetryAfter: 10 * time.Minute, By: "ada"},
		&store.AuditRecord{Actor: "ada", Action: "app.paused"})
	if err != nil {
		f.Fatalf("SetPause: %v", err)
	}
	if p.At.IsZero() || p.At.Location() != time.UTC || p.Message != "upgrading <db>" || p.RetryAfter != 10*time.Minute || p.By != "ada" {
		f.Errorf("SetPause = %+v", p)
	}
	if _, err := f.s.SetPause(f.ctx, store.Pause{Env: "dev", By: "admin"}, nil); err != nil {
		f.Fatalf("SetPause of an environment: %v", err)
	}
	// Again: replaces.
	if _, err := f.s.SetPause(f.ctx, store.Pause{App: "web", Env: "prod", Message: "later", By: "bob"}, nil); err != nil {
		f.Fatalf("SetPause again: %v", err)
	}
	for _, bad := range []store.Pause{{App: "web", By: "x"}, {App: "web", Env: "dev"}, {App: "web", Env: "dev", By: "x", RetryAfter: -time.Second}} {
		if _, err := f.s.SetPause(f.ctx, bad, nil); err == nil {
			f.Errorf("SetPause(%+v) accepted", bad)
		}
	}
	ps, err := f.s.Pauses(f.ctx)
	if err != nil || len(ps) != 2 || ps[0].Env != "dev" || ps[0].App != "" || ps[1].App != "web" || ps[1].Message != "later" || ps[1].By != "bob" || ps[1].RetryAfter != 0 {
		f.Errorf("Pauses = %+v, %v", ps, err)
	}
	if err := f.s.DeletePause(f.ctx, "web", "prod", &store.AuditRecord{Actor: "bob", Action: "app.resumed"}); err != nil {
		f.Errorf("DeletePause: %v", err)
	}
	if err := f.s.DeletePause(f.ctx, "web", "prod", &store.AuditRecord{Actor: "bob", Action: "app.resumed"}); !errors.Is(err, store.ErrNotFound) {
		f.Errorf("DeletePause of no pause: %v, want ErrNotFound", err)
	}
	recs, err := f.s.AuditRecords(f.ctx, 0, 100)
	if err != nil {
		f.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action+" "+r.App+"."+r.Env)
	}
	if len(actions) != 2 || actions[0] != "app.paused web.prod" || actions[1] != "app.resumed web.prod" {
		f.Errorf("audit: %q, want the pause and one resume", actions)
	}
	f.reopenStore()
	if ps, err := f.s.Pauses(f.ctx); err != nil || len(ps) != 1 || ps[0].Env != "dev" {
		f.Errorf("Pauses after reopen = %+v, %v", ps, err)
	}
}
