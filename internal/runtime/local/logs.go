package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// rotated is the name of the n-th rotated log (1: the newest).
func rotated(path string, n int) string { return fmt.Sprintf("%s.%d", path, n) }

// rotateLog rotates the log at path if it has reached size: the rotated logs
// shift by one, the oldest of keep drops, and the log is copied to path.1 and
// truncated, while the replica keeps writing to it (see the package
// documentation).
func rotateLog(path string, size int64, keep int) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < size {
		return err
	}
	for n := keep - 1; n >= 1; n-- {
		if err := os.Rename(rotated(path, n), rotated(path, n+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(rotated(path, 1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = os.Truncate(path, 0) // at once: what is written in between is lost
	}
	return errors.Join(err, dst.Close())
}

// tailBytes and tailLines bound Exit.LogTail.
const (
	tailBytes = 4 << 10
	tailLines = 20
)

// logTail returns the last lines of the log at path.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, fi.Size()-tailBytes)
	b := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(b, off)
	lines := strings.Split(strings.TrimRight(string(b[:n]), "\n"), "\n")
	if off > 0 {
		lines = lines[1:] // cut in the middle
	}
	return strings.Join(lines[max(0, len(lines)-tailLines):], "\n")
}

// followEvery is how often a followed log is checked for more output.
const followEvery = 100 * time.Millisecond

// logReader reads the rotated logs, oldest first, then the current log,
// which it follows if asked to.
type logReader struct {
	ctx    context.Context
	path   string
	older  []*os.File // rotated logs not read yet
	cur    *os.File   // the current log
	off    int64      // read so far of cur
	carry  []byte     // what a rotation moved to path.1 before it was read
	follow bool
	gone   <-chan struct{} // closed when the replica is forgotten

	mu        sync.Mutex // held by Read but while it waits, and by Close
	closeOnce sync.Once
	closed    chan struct{}
}

// openLog opens the logs of a replica, opening them all at once so that a
// rotation while they are read changes none of them but the current one.
func openLog(ctx context.Context, path string, keep int, follow bool, gone <-chan struct{}) (io.ReadCloser, error) {
	lr := &logReader{ctx: ctx, path: path, follow: follow, gone: gone, closed: make(chan struct{})}
	for n := keep; n >= 1; n-- {
		if f, err := os.Open(rotated(path, n)); err == nil {
			lr.older = append(lr.older, f)
		}
	}
	cur, err := os.Open(path)
	if err != nil {
		lr.Close()
		return nil, fmt.Errorf("opening log: %w", err)
	}
	lr.cur = cur
	return lr, nil
}

func (lr *logReader) Read(p []byte) (int, error) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for {
		if len(lr.carry) > 0 {
			n := copy(p, lr.carry)
			lr.carry = lr.carry[n:]
			return n, nil
		}
		if len(lr.older) > 0 {
			n, err := lr.older[0].Read(p)
			if err == io.EOF {
				lr.older[0].Close()
				lr.older, err = lr.older[1:], nil
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if lr.cur == nil {
			return 0, os.ErrClosed
		}
		n, err := lr.cur.ReadAt(p, lr.off)
		lr.off += int64(n)
		if err != nil && err != io.EOF {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
		if !lr.follow {
			return 0, io.EOF
		}
		if fi, err := lr.cur.Stat(); err == nil && fi.Size() < lr.off {
			// Rotated: what was not read yet went to path.1.
			lr.carry = lr.rest(rotated(lr.path, 1), lr.off)
			lr.off = 0
			continue
		}
		lr.mu.Unlock()
		gone := false
		select {
		case <-lr.ctx.Done():
		case <-lr.closed:
		case <-lr.gone:
			gone = true
		case <-time.After(followEvery):
		}
		lr.mu.Lock()
		if gone {
			lr.follow = false // read what is left, then EOF
		}
		if err := lr.ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// rest returns the file at path from off on.
func (lr *logReader) rest(path string, off int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return nil
	}
	return b[off:]
}

// Close closes the reader; a Read waiting for more output returns.
func (lr *logReader) Close() error {
	lr.closeOnce.Do(func() { close(lr.closed) })
	lr.mu.Lock()
	defer lr.mu.Unlock()
	var errs []error
	for _, f := range append(lr.older, lr.cur) {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	lr.older, lr.cur = nil, nil
	return errors.Join(errs...)
}
