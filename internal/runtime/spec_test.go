package runtime

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	p := RestartPolicy{Backoff: time.Second, MaxBackoff: 10 * time.Second}
	for failures, want := range map[int]time.Duration{
		1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second,
		5: 10 * time.Second, 1000: 10 * time.Second,
	} {
		if got := p.Delay(failures); got != want {
			t.Errorf("Delay(%d) = %v, want %v", failures, got, want)
		}
	}
}

func validSpec() ReplicaSpec {
	return ReplicaSpec{
		Ref:       Ref{App: "web", Env: "dev", Release: "r1.2-abc", Index: 0},
		Root:      "/var/lib/socle/images/x",
		Command:   []string{"/web"},
		Ports:     []Port{{Name: "http", Port: 8080}, {Name: "metrics", Port: 9090}},
		Readiness: &Probe{HTTPGet: &HTTPGetAction{Path: "/readyz", Port: 8080}},
		Liveness:  &Probe{Exec: &ExecAction{Command: []string{"/web", "-check"}}},
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	spec := validSpec()
	got := spec.WithDefaults()
	if got.GracePeriod != DefaultGracePeriod || got.WorkingDir != "/" ||
		got.Restart != (RestartPolicy{DefaultBackoff, DefaultMaxBackoff, DefaultResetAfter, DefaultCrashLoopAfter}) {
		t.Errorf("WithDefaults = %+v", got)
	}
	if p := got.Readiness; p.Period != DefaultProbePeriod || p.Timeout != DefaultProbeTimeout || p.FailureThreshold != DefaultFailureThreshold {
		t.Errorf("probe defaults: %+v", p)
	}
	if spec.Readiness.Period != 0 {
		t.Errorf("WithDefaults changed the spec's probe")
	}
	// A backoff above the default cap raises the cap.
	spec.Restart.Backoff = 2 * DefaultMaxBackoff
	if got := spec.WithDefaults().Restart.MaxBackoff; got != spec.Restart.Backoff {
		t.Errorf("MaxBackoff = %v, want %v", got, spec.Restart.Backoff)
	}
	if err := validSpec().WithDefaults().Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*ReplicaSpec)
		want   string
	}{
		{"app", func(s *ReplicaSpec) { s.App = "Web" }, `app: "Web" is not a DNS label`},
		{"env", func(s *ReplicaSpec) { s.Env = "" }, `env: "" is not a DNS label`},
		{"release", func(s *ReplicaSpec) { s.Release = "sha256:abc" }, "release:"},
		{"index", func(s *ReplicaSpec) { s.Index = -1 }, "index: -1 is negative"},
		{"root", func(s *ReplicaSpec) { s.Root = "images/x" }, "root:"},
		{"command", func(s *ReplicaSpec) { s.Command = []string{""} }, "command: no executable"},
		{"variable", func(s *ReplicaSpec) { s.Variables = map[string]string{"A=B": "c"} }, `variables: "A=B"`},
		{"port range", func(s *ReplicaSpec) { s.Ports[1].Port = 70000 }, "ports[1]: port 70000"},
		{"port twice", func(s *ReplicaSpec) { s.Ports[1].Port = 8080 }, "ports[1]: metrics=8080 repeats"},
		{"probe port", func(s *ReplicaSpec) { s.Readiness.HTTPGet.Port = 7000 }, "readiness: httpGet: port 7000 is none"},
		{"probe path", func(s *ReplicaSpec) { s.Readiness.HTTPGet.Path = "readyz" }, "does not start with /"},
		{"probe kinds", func(s *ReplicaSpec) { s.Liveness.HTTPGet = &HTTPGetAction{Path: "/"} }, "liveness: needs exactly one"},
		{"exec", func(s *ReplicaSpec) { s.Liveness.Exec.Command = nil }, "liveness: exec: no command"},
		{"probe without ports", func(s *ReplicaSpec) { s.Ports = nil }, "the replica has no ports"},
		{"grace", func(s *ReplicaSpec) { s.GracePeriod = -time.Second }, "gracePeriod"},
		{"backoff", func(s *ReplicaSpec) { s.Restart.MaxBackoff = time.Millisecond }, "restart:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := validSpec().WithDefaults()
			tc.change(&spec)
			err := spec.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

// TestExpandPorts: ${socle.port} is the first port, ${socle.port.<name>}
// the named one, in the command line and the variables; the spec given is
// left as it was.
func TestExpandPorts(t *testing.T) {
	t.Parallel()
	s := validSpec()
	s.Command = []string{"/bin/busybox", "httpd"}
	s.Args = []string{"-p", "${socle.port}", "--metrics=:${socle.port.metrics}"}
	s.Variables = map[string]string{"ADDR": "127.0.0.1:${socle.port.http}", "PLAIN": "$PORT"}
	got := s.ExpandPorts(func(p Port) int { return p.Port + 1 })
	if want := []string{"-p", "8081", "--metrics=:9091"}; !slices.Equal(got.Args, want) {
		t.Errorf("args %q, want %q", got.Args, want)
	}
	if got.Variables["ADDR"] != "127.0.0.1:8081" || got.Variables["PLAIN"] != "$PORT" {
		t.Errorf("variables %v", got.Variables)
	}
	if s.Args[1] != "${socle.port}" || s.Variables["ADDR"] != "127.0.0.1:${socle.port.http}" {
		t.Errorf("the spec given changed: %q %v", s.Args, s.Variables)
	}
}

// TestValidatePortPlaceholders: a placeholder that names no port of the
// replica is refused at its field.
func TestValidatePortPlaceholders(t *testing.T) {
	t.Parallel()
	s := validSpec()
	s.Args = []string{"-p", "${socle.port.admin}"}
	s.Variables = map[string]string{"X": "${socle.port.http}"}
	err := s.Validate()
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `args[1]: ${socle.port.admin}: the replica has no port named "admin"`) {
		t.Errorf("Validate = %v", err)
	}
	s.Args, s.Ports, s.Readiness, s.Variables = []string{"${socle.port}"}, nil, nil, nil
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "args[0]: ${socle.port}: the replica has no ports") {
		t.Errorf("Validate without ports = %v", err)
	}
}
