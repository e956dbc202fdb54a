//go:build unix

package lease

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// tryLock takes fh's exclusive lock if it is free.
func tryLock(fh *os.File) (bool, error) {
	return flock(fh, unix.LOCK_EX|unix.LOCK_NB)
}

// tryLockShared takes fh's shared lock if no one holds it exclusively:
// true means the scope is free (the shared lock goes with fh's close).
func tryLockShared(fh *os.File) (bool, error) {
	return flock(fh, unix.LOCK_SH|unix.LOCK_NB)
}

func flock(fh *os.File, how int) (bool, error) {
	for {
		err := unix.Flock(int(fh.Fd()), how)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		default:
			return false, err
		}
	}
}
