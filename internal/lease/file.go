package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// File hands out leases as advisory locks (flock) on files of a directory,
// one file per scope (<Dir>/<scope>.lease). The kernel drops the lock when
// its process dies, so a crashed socle never blocks the next one. The file
// holds the holder and the fencing token as JSON.
//
// A lease is lost when its file is no longer the one it locked (the data
// directory was deleted or replaced while socle ran): another process may
// then lock a new file of the same name, so the old holder must stop.
type File struct {
	// Dir is the directory of the lock files; it must exist.
	Dir string
	// Poll is how often Acquire tries again, and how often a held lease
	// checks that its file is still there; default 1s.
	Poll time.Duration
}

var scopeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// maxLeaseFile bounds what is read of a lock file.
const maxLeaseFile = 4096

type record struct {
	Holder Holder `json:"holder"`
	Token  uint64 `json:"token"`
}

func (f *File) path(scope string) (string, error) {
	if !scopeName.MatchString(scope) || len(scope) > 128 {
		return "", fmt.Errorf("lease scope %q: lowercase letters, digits, '.' and '-' only", scope)
	}
	return filepath.Join(f.Dir, scope+".lease"), nil
}

func (f *File) poll() time.Duration {
	if f.Poll > 0 {
		return f.Poll
	}
	return time.Second
}

// TryAcquire locks scope's file, or says who holds it.
func (f *File) TryAcquire(ctx context.Context, scope string, me Holder) (Lease, error) {
	p, err := f.path(scope)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(f.Dir); err != nil {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	fh, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lease %s: %w", p, err)
	}
	ok, err := tryLock(fh)
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	if !ok {
		rec, _ := readRecord(fh)
		fh.Close()
		return nil, &HeldError{Scope: scope, Holder: rec.Holder, Where: p}
	}
	// Locked: the file is ours to rewrite. The token grows from whatever
	// the last holder left, and from the time, so that it never goes back
	// even when the file was lost (a new data directory, an unreadable
	// file).
	rec, _ := readRecord(fh)
	if me.Since.IsZero() {
		me.Since = time.Now()
	}
	rec = record{Holder: me, Token: max(rec.Token, uint64(time.Now().UnixNano())) + 1}
	if err := writeRecord(fh, rec); err != nil {
		fh.Close() // closing drops the lock
		return nil, fmt.Errorf("writing lease %s: %w", p, err)
	}
	l := &fileLease{scope: scope, path: p, f: fh, token: rec.Token, lost: make(chan struct{}), stop: make(chan struct{})}
	go l.watch(f.poll())
	return l, nil
}

// Acquire tries to lock scope's file every Poll until it does, or ctx
// ends.
func (f *File) Acquire(ctx context.Context, scope string, me Holder) (Lease, error) {
	for {
		l, err := f.TryAcquire(ctx, scope, me)
		if !errors.Is(err, ErrHeld) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(f.poll()):
		}
	}
}

// Holder reads who holds scope now; ok is false when no one does.
func (f *File) Holder(scope string) (h Holder, ok bool, err error) {
	p, err := f.path(scope)
	if err != nil {
		return Holder{}, false, err
	}
	fh, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, err
	}
	defer fh.Close()
	free, err := tryLockShared(fh)
	if err != nil {
		return Holder{}, false, err
	}
	if free {
		return Holder{}, false, nil
	}
	rec, err := readRecord(fh)
	return rec.Holder, true, err
}

func readRecord(fh *os.File) (record, error) {
	var rec record
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(fh, 0, maxLeaseFile+1), maxLeaseFile+1))
	if err != nil {
		return rec, err
	}
	if len(b) == 0 {
		return rec, nil
	}
	if len(b) > maxLeaseFile {
		return rec, errors.New("lease file too long")
	}
	return rec, json.Unmarshal(b, &rec)
}

func writeRecord(fh *os.File, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := fh.Truncate(0); err != nil {
		return err
	}
	if _, err := fh.WriteAt(append(b, '\n'), 0); err != nil {
		return err
	}
	return fh.Sync()
}

type fileLease struct {
	scope, path string
	f           *os.File
	token       uint64

	once sync.Once
	lost chan struct{}
	stop chan struct{}
}

func (l *fileLease) Scope() string         { return l.scope }
func (l *fileLease) Token() uint64         { return l.token }
func (l *fileLease) Lost() <-chan struct{} { return l.lost }

// Release unlocks the file (closing it drops the lock).
func (l *fileLease) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		err = l.f.Close()
	})
	return err
}

// watch loses the lease when its path no longer names the locked file.
func (l *fileLease) watch(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		held, err := l.f.Stat()
		if err != nil {
			continue // closed by Release meanwhile
		}
		now, err := os.Stat(l.path)
		if err == nil && os.SameFile(held, now) {
			continue
		}
		close(l.lost)
		return
	}
}
