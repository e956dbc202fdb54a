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
func (m *Map) Lock(key string) (unlock func()) {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*lock{}
	}
	l, ok := m.locks[key]
	if !ok {
		l = &lock{}
		m.locks[key] = l
	}
	l.users++
	m.mu.Unlock()
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
