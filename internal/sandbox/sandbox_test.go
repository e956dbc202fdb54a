package sandbox

import (
	"os"
	"strings"
	"testing"
)

// This machine makes sandboxes (scripts/test installs bubblewrap): the
// tests of the local runtime and of builds rely on it.
func TestDetect(t *testing.T) {
	s := Detect()
	if s.Mode() != Enforced || s.Ready() != nil {
		t.Fatalf("Detect = %s: %s", s.Mode(), s.Message())
	}
	if s.PerAppUsers() != (os.Geteuid() == 0) {
		t.Errorf("PerAppUsers = %v as uid %d", s.PerAppUsers(), os.Geteuid())
	}
}

// Without bwrap, or with one that cannot make its namespaces, nothing runs,
// and the reason says what to do.
func TestRefused(t *testing.T) {
	for _, bwrap := range []string{"/nonexistent/bwrap", "/bin/false"} {
		s := With(bwrap)
		if s.Mode() != Refused {
			t.Errorf("With(%s) = %s, want refused", bwrap, s.Mode())
			continue
		}
		err := s.Ready()
		for _, want := range []string{"bubblewrap", "--insecure-no-sandbox"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("With(%s).Ready() = %v, want it to say %q", bwrap, err, want)
			}
		}
		if _, err := s.Command(Spec{Name: "x", Argv: []string{"true"}, HostRoot: true}); err == nil {
			t.Errorf("With(%s).Command: no error", bwrap)
		}
	}
}

// The users of sandboxes are stable, apart, and above the ids that people
// and rootless containers get.
func TestUserOf(t *testing.T) {
	a, b := UserOf("app:web.dev"), UserOf("app:web.prod")
	if a != UserOf("app:web.dev") || a == b {
		t.Errorf("UserOf: %d, %d", a, b)
	}
	for _, u := range []uint32{a, b} {
		if u < uidBase || u >= uidBase+uidRange {
			t.Errorf("uid %d out of range", u)
		}
	}
}

// Off runs a plain process, and says what that exposes.
func TestOff(t *testing.T) {
	s := Off()
	if s.Mode() != Insecure || s.Enabled() || s.Ready() != nil || !strings.Contains(s.Message(), "--insecure-no-sandbox") {
		t.Errorf("Off = %s %v: %s", s.Mode(), s.Ready(), s.Message())
	}
	cmd, err := s.Command(Spec{Name: "x", Argv: []string{"/bin/sh", "-c", "echo $$"}, HostRoot: true})
	if err != nil || cmd.Path != "/bin/sh" {
		t.Fatalf("Command = %v, %v", cmd, err)
	}
}
