package proxy

import (
	"bufio"
	"net"
	"sync"
	"time"
)

const (
	// maxIdleConns bounds the idle connections kept to one backend.
	maxIdleConns = 1024
	// maxIdleTime is how long an idle connection is kept. Short, because a
	// backend that closes idle connections (gunicorn after 2s, Node after
	// 5s) could otherwise close one just as a request is written to it, and
	// a request that is not idempotent cannot then be sent again; a new
	// loopback connection costs tens of microseconds.
	maxIdleTime = time.Second
)

// backendConn is a kept-alive HTTP/1.1 connection to a backend.
type backendConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

func newBackendConn(c net.Conn) *backendConn {
	return &backendConn{Conn: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}
}

// connPool holds a backend's idle connections, the most recently used last:
// that one is reused first, and the oldest, at the front, expire.
type connPool struct {
	mu     sync.Mutex
	idle   []*backendConn
	closed bool
}

// get returns an idle connection, or nil if there is none.
func (p *connPool) get(now time.Time) *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	expired := 0
	for expired < len(p.idle) && now.Sub(p.idle[expired].idleSince) > maxIdleTime {
		p.idle[expired].Close()
		expired++
	}
	if expired > 0 {
		n := copy(p.idle, p.idle[expired:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
	}
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c
}

// put keeps c for another request, or closes it if the pool is closed or
// full.
func (p *connPool) put(c *backendConn, now time.Time) {
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdleConns {
		p.mu.Unlock()
		c.Close()
		return
	}
	c.idleSince = now
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// close closes the idle connections, and those put back from now on.
func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}
