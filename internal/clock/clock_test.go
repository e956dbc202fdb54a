package clock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

func TestFakeFiresWaitersInOrderWhenPassed(t *testing.T) {
	f := NewFake(t0)
	a := f.After(time.Hour)
	b := f.After(10 * time.Minute)
	c := f.After(2 * time.Hour)
	if got := f.Waiters(); got != 3 {
		t.Fatalf("Waiters = %d, want 3", got)
	}
	f.Advance(59 * time.Minute)
	select {
	case got := <-b:
		if !got.Equal(t0.Add(59 * time.Minute)) {
			t.Errorf("b fired with %v, want the time it was passed at", got)
		}
	default:
		t.Fatal("b did not fire when the clock passed it")
	}
	select {
	case <-a:
		t.Fatal("a fired a minute early")
	default:
	}
	f.Advance(time.Minute)
	select {
	case <-a:
	default:
		t.Fatal("a did not fire at its deadline")
	}
	if got := f.Waiters(); got != 1 {
		t.Errorf("Waiters = %d after two fired, want 1", got)
	}
	f.Set(t0) // never back
	if !f.Now().Equal(t0.Add(time.Hour)) {
		t.Errorf("Set back moved the clock to %v", f.Now())
	}
	select {
	case <-c:
		t.Fatal("c fired early")
	default:
	}
}

func TestFakeAfterZeroFiresAtOnce(t *testing.T) {
	f := NewFake(t0)
	select {
	case got := <-f.After(0):
		if !got.Equal(t0) {
			t.Errorf("got %v", got)
		}
	default:
		t.Fatal("After(0) did not fire at once")
	}
}

func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(t0)
	done := make(chan struct{})
	fired := make(chan time.Time)
	go func() { fired <- <-f.After(time.Minute) }()
	if !f.BlockUntil(1, done) {
		t.Fatal("BlockUntil gave up")
	}
	f.Advance(time.Minute)
	if got := <-fired; !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("fired at %v", got)
	}
	close(done)
	if f.BlockUntil(5, done) {
		t.Error("BlockUntil(5) returned true with no waiter")
	}
}

func TestOffsetReadsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock")
	o := Offset{Path: path}
	for _, tc := range []struct {
		file    *string
		want    time.Duration
		wantErr bool
	}{
		{file: nil, want: 0},
		{file: ptr(""), want: 0},
		{file: ptr("26h\n"), want: 26 * time.Hour},
		{file: ptr(" -90m "), want: -90 * time.Minute},
		{file: ptr("tomorrow"), wantErr: true},
		{file: ptr(string(make([]byte, 100))), wantErr: true},
	} {
		os.Remove(path)
		if tc.file != nil {
			if err := os.WriteFile(path, []byte(*tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := o.Check()
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("file %q: Check = %v, %v; want %v, error %v", deref(tc.file), got, err, tc.want, tc.wantErr)
		}
		// Now is the system's time plus the offset: it lies between the
		// system's time read before and after, both moved by the offset.
		before := time.Now().Add(tc.want)
		now := o.Now()
		after := time.Now().Add(tc.want)
		if now.Before(before) || now.After(after) {
			t.Errorf("file %q: Now = %v, not within [%v, %v]", deref(tc.file), now, before, after)
		}
	}
}

// A waiter of an hour fires when the file jumps the clock an hour ahead.
func TestOffsetAfterFiresOnAJump(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock")
	o := Offset{Path: path, Poll: time.Millisecond}
	c := o.After(time.Hour)
	select {
	case <-c:
		t.Fatal("fired before the jump")
	default:
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("61m"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-c:
		if got.Before(time.Now().Add(time.Hour)) {
			t.Errorf("fired with %v, before the deadline", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not fire within 30s of the jump")
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}
