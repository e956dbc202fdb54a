package supervise

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
)

// Behaviour of supervision (restarts, probes, Recover, Stop) is tested
// through the drivers that use it, by the conformance suite
// (runtime/runtimetest) against real processes and real containers; these
// tests cover what needs no run.

func spec(index int, ports ...string) runtime.ReplicaSpec {
	s := runtime.ReplicaSpec{Ref: runtime.Ref{App: "web", Env: "dev", Release: "r1", Index: index}}
	for i, name := range ports {
		s.Ports = append(s.Ports, runtime.Port{Name: name, Port: 8080 + i})
	}
	return s
}

func TestAddGivesFreeLoopbackPorts(t *testing.T) {
	s := New[*Run]("test", func(e runtime.Exit) string { return e.Reason })
	t.Cleanup(func() { s.Close() })
	a := s.NewReplica("a", spec(0, "http", "metrics"), nil, nil)
	b := s.NewReplica("b", spec(1, "http"), nil, nil)
	for _, r := range []*Replica[*Run]{a, b} {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, bind := range append(a.Ports, b.Ports...) {
		if seen[bind.Address] {
			t.Errorf("%s given twice", bind.Address)
		}
		seen[bind.Address] = true
		// Free for the replica to bind: nothing holds it.
		l, err := net.Listen("tcp", bind.Address)
		if err != nil {
			t.Errorf("port %s at %s: %v", bind.Name, bind.Address, err)
			continue
		}
		l.Close()
	}
	if len(a.Ports) != 2 || a.Ports[1].Name != "metrics" || a.Ports[1].Port != 8081 {
		t.Errorf("ports of a: %+v, want http and metrics in spec order", a.Ports)
	}
	if got := PortOf(a.Ports[0].Address); Addr(got) != a.Ports[0].Address {
		t.Errorf("PortOf(%s) = %d", a.Ports[0].Address, got)
	}
}

func TestAddRefusesAKnownReplica(t *testing.T) {
	s := New[*Run]("test", func(e runtime.Exit) string { return e.Reason })
	if err := s.Add(s.NewReplica("a", spec(0, "http"), nil, nil)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, id string }{{"same ID", "a"}, {"same Ref", "other"}} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.NewReplica(tc.id, spec(0, "http"), nil, nil)
			if err := s.Add(r); !errors.Is(err, runtime.ErrExists) {
				t.Errorf("Add: %v, want ErrExists", err)
			}
			if len(r.Ports) != 0 || len(s.ports) != 1 {
				t.Errorf("a refused replica holds %v; the supervisor %d ports, want 1", r.Ports, len(s.ports))
			}
		})
	}
	if _, err := s.Lookup(runtime.Handle{Driver: "other", ID: "a"}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Lookup of another driver's handle: %v, want ErrNotFound", err)
	}
	if !s.Close() || s.Close() {
		t.Error("Close: want true, then false")
	}
	if err := s.Add(s.NewReplica("b", spec(1), nil, nil)); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	if _, ok := <-s.Watch(context.Background()); ok {
		t.Error("Watch after Close: an open channel")
	}
}

func TestPortVar(t *testing.T) {
	for name, want := range map[string]string{"http": "PORT_HTTP", "metrics-v2": "PORT_METRICS_V2", "Admin.UI": "PORT_ADMIN_UI"} {
		if got := PortVar(name); got != want {
			t.Errorf("PortVar(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestRunFinishesOnce(t *testing.T) {
	p := NewRun(42, time.Time{}, time.Now())
	if p.Ended() || p.Exit() != (runtime.Exit{}) {
		t.Fatal("a new run has ended")
	}
	first := runtime.Exit{Code: 3, Reason: "exit status 3"}
	p.Finish(first)
	p.Finish(runtime.Exit{Code: 9})
	if !p.Ended() || p.Exit().Code != 3 {
		t.Errorf("after two Finish: ended %v, exit %+v; want the first", p.Ended(), p.Exit())
	}
	if e := EndedRun(first, time.Time{}); !e.Ended() || e.Began != first.At {
		t.Errorf("EndedRun: ended %v, began %v", e.Ended(), e.Began)
	}
}

// TestListReplicaNotStarted: a replica added and not started yet (its
// driver's Start is creating it), or one whose Start failed, is reported
// as starting, never read as if it had run (List panicked on it once,
// when a Start failed while List waited for the replica).
func TestListReplicaNotStarted(t *testing.T) {
	s := New[*Run]("test", func(e runtime.Exit) string { return e.Reason })
	t.Cleanup(func() { s.Close() })
	r := s.NewReplica("a", spec(0, "http"), nil, nil)
	if err := s.Add(r); err != nil {
		t.Fatal(err)
	}
	sts, err := s.List()
	if err != nil || len(sts) != 1 || sts[0].State != runtime.Starting || sts[0].Ready || sts[0].PID != 0 {
		t.Fatalf("List = %+v, %v; want one replica starting", sts, err)
	}
	if st, err := s.Status(r.Handle()); err != nil || st.State != runtime.Starting {
		t.Fatalf("Status = %+v, %v; want starting", st, err)
	}
	s.Forget(r)
	if sts, err := s.List(); err != nil || len(sts) != 0 {
		t.Fatalf("List after Forget = %+v, %v; want none", sts, err)
	}
}
