package supervise

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/socle-dev/socle/internal/runtime"
)

// freePortLocked returns a loopback port that is free now and that no known
// replica holds (one in backoff has no socket on its port). What runs the
// replica binds it later (the replica itself, or Podman for a published
// port): another program could take it in between, which the replica's
// start then reports by failing.
func (s *Supervisor[P]) freePortLocked() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, err
		}
		if !s.ports[port] {
			s.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

func (s *Supervisor[P]) holdPortsLocked(ports []runtime.PortBinding) {
	for _, b := range ports {
		s.ports[PortOf(b.Address)] = true
	}
}

func (s *Supervisor[P]) releasePortsLocked(ports []runtime.PortBinding) {
	for _, b := range ports {
		delete(s.ports, PortOf(b.Address))
	}
}

// Addr is the address of a loopback port, as in runtime.PortBinding.
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// PortOf is the port of an address made by Addr.
func PortOf(address string) int {
	_, p, _ := net.SplitHostPort(address)
	port, _ := strconv.Atoi(p)
	return port
}

// PortVar names the variable by which a replica learns its port name:
// "metrics-v2" → "PORT_METRICS_V2" (PORT alone is its first port).
func PortVar(name string) string {
	return "PORT_" + strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z':
			return c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			return c
		}
		return '_'
	}, name)
}
