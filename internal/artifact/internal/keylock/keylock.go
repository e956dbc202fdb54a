// Package keylock provides one mutex per key, for work that must not run
// twice at once on the same thing (a build of one app version, the unpacking
// of one image, the chunks of one upload) but may run in parallel on others.
package keylock

import "sync"

// Map holds a mutex per key, for as long as someone uses it. The zero Map is
// ready to use.
type Map struct {
	mu    sync.Mutex
	locks map[string]*lock
}

type lock struct {
	sync.Mutex
	users int // guarded by Map.mu
}

// Lock locks key and returns the function that unlocks it.
func (m *Map) Lock(key string) (unlock func()) { return m.LockWaiting(key, nil) }

// LockWaiting is Lock, calling waiting first when someone else holds or
// waits for key: the caller can say that it waits, and for what.
func (m *Map) LockWaiting(key string, waiting func()) (unlock func()) {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*lock{}
	}
	l, ok := m.locks[key]
	if !ok {
		l = &lock{}
		m.locks[key] = l
	}
	busy := l.users > 0
	l.users++
	m.mu.Unlock()
	if busy && waiting != nil {
		waiting()
	}
	l.Lock()
	return func() {
		l.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.locks, key)
		}
		m.mu.Unlock()
	}
}
