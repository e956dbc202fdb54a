package supervise

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrStateLocked is returned by LockStateDir when another driver uses the
// state directory.
var ErrStateLocked = errors.New("state directory in use by another driver")

// LockStateDir takes the lock of a driver's state directory, dir/lock (an
// flock), which closing the file releases: two drivers never share one.
func LockStateDir(dir string) (*os.File, error) {
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	// A lock released a moment ago may still be held for an instant by a
	// process forked (by any goroutine of this program) before the lock's
	// descriptor was closed, until that process execs: wait a little.
	err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for i := 0; i < 50 && errors.Is(err, unix.EWOULDBLOCK); i++ {
		time.Sleep(20 * time.Millisecond)
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrStateLocked)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return lock, nil
}
