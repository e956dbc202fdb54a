//go:build !unix

package lease

import (
	"errors"
	"os"
)

var errNoFlock = errors.New("file leases need flock, which this system lacks")

func tryLock(*os.File) (bool, error)       { return false, errNoFlock }
func tryLockShared(*os.File) (bool, error) { return false, errNoFlock }
