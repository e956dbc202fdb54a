package lease

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a second process that holds a lease, for the
// tests that need another process: flock locks are the kernel's, so only a
// real process shows that a crash releases them.
func TestMain(m *testing.M) {
	if dir := os.Getenv("LEASE_TEST_HOLD"); dir != "" {
		f := &File{Dir: dir}
		l, err := f.TryAcquire(context.Background(), Platform, Holder{PID: os.Getpid(), Host: "child", Addr: "127.0.0.1:7070"})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("held", l.Token())
		select {} // until killed
	}
	os.Exit(m.Run())
}

func me() Holder { return Holder{PID: os.Getpid(), Host: "test"} }

func TestSecondHolderIsRefusedWithTheHolderNamed(t *testing.T) {
	f := &File{Dir: t.TempDir()}
	ctx := context.Background()
	first, err := f.TryAcquire(ctx, Platform, Holder{PID: 42, Host: "alpha", Addr: "127.0.0.1:7070"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.TryAcquire(ctx, Platform, me())
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrHeld) {
		t.Fatalf("second TryAcquire: %v, want a *HeldError", err)
	}
	for _, want := range []string{"pid 42", "alpha", "127.0.0.1:7070", filepath.Join(f.Dir, "platform.lease")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %q", err, want)
		}
	}
	if h, ok, err := f.Holder(Platform); err != nil || !ok || h.PID != 42 {
		t.Errorf("Holder = %+v, %v, %v; want pid 42", h, ok, err)
	}
	// Another scope is free.
	other, err := f.TryAcquire(ctx, "env.prod", me())
	if err != nil {
		t.Fatalf("another scope: %v", err)
	}
	other.Release()
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.Holder(Platform); err != nil || ok {
		t.Errorf("after Release, Holder says held: %v %v", ok, err)
	}
	second, err := f.TryAcquire(ctx, Platform, me())
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	defer second.Release()
	if second.Token() <= first.Token() {
		t.Errorf("tokens %d then %d: a later holder must have a larger token", first.Token(), second.Token())
	}
}

func TestBadScope(t *testing.T) {
	f := &File{Dir: t.TempDir()}
	for _, s := range []string{"", "../x", "Prod", "a/b", strings.Repeat("a", 200)} {
		if _, err := f.TryAcquire(context.Background(), s, me()); err == nil {
			t.Errorf("scope %q accepted", s)
		}
	}
}

func TestAcquireWaitsForTheHolder(t *testing.T) {
	f := &File{Dir: t.TempDir(), Poll: time.Millisecond}
	ctx := context.Background()
	first, err := f.TryAcquire(ctx, Platform, me())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Lease)
	go func() {
		l, err := f.Acquire(ctx, Platform, me())
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("Acquire returned while the lease was held")
	case <-time.After(20 * time.Millisecond):
	}
	first.Release()
	l := <-got
	defer l.Release()
	if l.Token() <= first.Token() {
		t.Errorf("token %d after %d", l.Token(), first.Token())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Acquire(cctx, Platform, me()); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with an ended context: %v", err)
	}
}

// A lease whose file is deleted (the data directory removed while socle
// runs) is lost: another process could lock a new file of that name.
func TestLeaseIsLostWhenItsFileGoes(t *testing.T) {
	dir := t.TempDir()
	f := &File{Dir: dir, Poll: time.Millisecond}
	l, err := f.TryAcquire(context.Background(), Platform, me())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	select {
	case <-l.Lost():
		t.Fatal("lost while its file is there")
	case <-time.After(20 * time.Millisecond):
	}
	if err := os.Remove(filepath.Join(dir, "platform.lease")); err != nil {
		t.Fatal(err)
	}
	<-l.Lost()
}

// Run runs the job while the lease is held, stops it when the lease is
// lost, and runs it again once it holds the lease anew.
func TestRunStopsTheJobWhenTheLeaseIsLost(t *testing.T) {
	dir := t.TempDir()
	f := &File{Dir: dir, Poll: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running atomic.Int32
	runs := make(chan uint64, 4)
	stopped := make(chan struct{}, 4)
	done := make(chan error)
	go func() {
		done <- Run(ctx, f, Platform, me(), func(ctx context.Context, token uint64) error {
			if running.Add(1) != 1 {
				t.Error("two runs of the job at once")
			}
			runs <- token
			<-ctx.Done()
			running.Add(-1)
			stopped <- struct{}{}
			return nil
		})
	}()
	first := <-runs
	if err := os.Remove(filepath.Join(dir, "platform.lease")); err != nil {
		t.Fatal(err)
	}
	<-stopped
	second := <-runs
	if second <= first {
		t.Errorf("tokens %d then %d: a new lock file must not start the tokens again", first, second)
	}
	cancel()
	<-stopped
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil when ctx ends", err)
	}
}

// A second process holds the lease; this one is refused and named it; a
// kill -9 of the holder frees the lease at once.
func TestAKilledHolderFreesTheLease(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LEASE_TEST_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "held") {
		t.Fatalf("child said %q, %v", line, err)
	}
	f := &File{Dir: dir, Poll: time.Millisecond}
	_, err = f.TryAcquire(context.Background(), Platform, me())
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d on child", cmd.Process.Pid)) {
		t.Fatalf("TryAcquire while the child holds it: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, err := f.TryAcquire(context.Background(), Platform, me())
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}
