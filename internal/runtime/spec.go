package runtime

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Ref identifies a replica: the index-th replica of an app's release in an
// environment. A driver holds at most one replica per Ref.
type Ref struct {
	App     string `json:"app"`     // a DNS label
	Env     string `json:"env"`     // a DNS label
	Release string `json:"release"` // letters, digits, '.' and '-'; at most 128
	Index   int    `json:"index"`   // 0, 1, …
}

// String returns "app.env/release/index", for messages.
func (r Ref) String() string {
	return fmt.Sprintf("%s.%s/%s/%d", r.App, r.Env, r.Release, r.Index)
}

// Compare orders refs by env, app, release and index.
func (r Ref) Compare(o Ref) int {
	for _, c := range []int{
		strings.Compare(r.Env, o.Env),
		strings.Compare(r.App, o.App),
		strings.Compare(r.Release, o.Release),
	} {
		if c != 0 {
			return c
		}
	}
	return r.Index - o.Index
}

// ReplicaSpec is everything a driver needs to run one replica of one Score
// container. The caller has resolved it completely: image unpacked, command
// chosen, ${...} placeholders substituted, secrets decrypted. It is kept by
// drivers that reattach (for package local, in its state directory, readable
// by socle's user only) because they must be able to restart the replica
// after socle itself restarted.
type ReplicaSpec struct {
	Ref

	// Image is the image reference, by digest; drivers that pull images
	// use it.
	Image string `json:"image,omitempty"`
	// Root is the directory of the unpacked image; drivers with
	// HostExecutables run the entrypoint from it.
	Root string `json:"root,omitempty"`
	// Command is the entrypoint and its first arguments: the Score
	// container's command if set, else the image's. An absolute or bare
	// executable name is looked for in the image first.
	Command []string `json:"command"`
	// Args are appended to Command.
	Args []string `json:"args,omitempty"`
	// Variables are the environment variables. The driver adds PORT (the
	// first port) and PORT_<NAME> for each port, and they win over these.
	Variables map[string]string `json:"variables,omitempty"`
	// WorkingDir is the working directory inside the image (default "/").
	WorkingDir string `json:"workingDir,omitempty"`
	// Ports are the container's named ports, from the Score service's
	// targetPort (or port). The first one is PORT. Probes name them by
	// number.
	Ports []Port `json:"ports,omitempty"`
	// Readiness decides whether the replica receives traffic.
	Readiness *Probe `json:"readiness,omitempty"`
	// Liveness decides whether the replica must be restarted. It is probed
	// from the time the replica is first ready (from its start without a
	// readiness probe), so that a slow start is not taken for a hang.
	Liveness *Probe `json:"liveness,omitempty"`
	// GracePeriod is how long Stop waits after the polite signal (SIGTERM)
	// before it kills (default 10s).
	GracePeriod time.Duration `json:"gracePeriod,omitempty"`
	// Restart says how soon a replica that failed is started again.
	Restart RestartPolicy `json:"restart"`
	// Limits are the Score container's resources.limits. The container
	// runtime enforces them; the local runtime does with a control group per
	// replica where it can (root, cgroup v2 or v1 memory and cpu
	// controllers, the sandbox on: see package sandbox/cgroup), and says
	// otherwise in sandbox.Limits.
	Limits Limits `json:"limits,omitzero"`
}

// Limits bound what a replica may use; zero is no limit.
type Limits struct {
	// MilliCPU is CPU time in thousandths of a processor ("500m" is 500,
	// "2" is 2000).
	MilliCPU int64 `json:"milliCPU,omitempty"`
	// Memory is in bytes.
	Memory int64 `json:"memory,omitempty"`
}

// PortPlaceholder is the placeholder that stands, in a replica's Command,
// Args and Variables, for the port the replica listens on: what PORT says.
// PortPlaceholderOf(name) stands for the port named name (PORT_<NAME>).
// They follow Score's ${...} grammar, under socle's own key, so that a
// third-party image is told its port on its command line (busybox httpd -p
// ${socle.port}) without a shell wrapper that reads $PORT. Score's own
// placeholders are resolved before (package replicas), which leaves these
// as written; the driver expands them (ExpandPorts) once it knows the
// replica's ports: on the local runtime a port of the host chosen per
// replica, on the container runtime the container port.
const PortPlaceholder = "${socle.port}"

// PortPlaceholderOf is the placeholder of the port named name.
func PortPlaceholderOf(name string) string { return "${socle.port." + name + "}" }

// ExpandPorts returns s with the port placeholders of its Command, Args
// and Variables replaced by the ports the replica listens on: listen(p) for
// each of its ports p.
func (s ReplicaSpec) ExpandPorts(listen func(Port) int) ReplicaSpec {
	if len(s.Ports) == 0 {
		return s
	}
	var pairs []string
	for i, p := range s.Ports {
		port := strconv.Itoa(listen(p))
		if i == 0 {
			pairs = append(pairs, PortPlaceholder, port)
		}
		pairs = append(pairs, PortPlaceholderOf(p.Name), port)
	}
	r := strings.NewReplacer(pairs...)
	expand := func(list []string) []string {
		if list == nil {
			return nil
		}
		out := make([]string, len(list))
		for i, v := range list {
			out[i] = r.Replace(v)
		}
		return out
	}
	s.Command, s.Args = expand(s.Command), expand(s.Args)
	if s.Variables != nil {
		vars := make(map[string]string, len(s.Variables))
		for k, v := range s.Variables {
			vars[k] = r.Replace(v)
		}
		s.Variables = vars
	}
	return s
}

// portRefRE finds the port placeholders of a string.
var portRefRE = regexp.MustCompile(`\$\{socle\.port(?:\.([^}]*))?\}`)

// checkPortRefs reports the port placeholders of v that name no port of s.
func (s ReplicaSpec) checkPortRefs(v string) error {
	for _, m := range portRefRE.FindAllStringSubmatch(v, -1) {
		if len(s.Ports) == 0 {
			return fmt.Errorf("%s: the replica has no ports", m[0])
		}
		if m[1] != "" && !slices.ContainsFunc(s.Ports, func(p Port) bool { return p.Name == m[1] }) {
			return fmt.Errorf("%s: the replica has no port named %q", m[0], m[1])
		}
	}
	return nil
}

// Port is a named container port.
type Port struct {
	Name string `json:"name"` // a DNS label, unique in the spec
	Port int    `json:"port"` // the port the container listens on
}

// Probe is a Score probe with the timing Score leaves to the platform. Exactly
// one of HTTPGet and Exec is set.
type Probe struct {
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
	Exec    *ExecAction    `json:"exec,omitempty"`
	// InitialDelay is the time from the process start to the first probe.
	InitialDelay time.Duration `json:"initialDelay,omitempty"`
	// Period between the end of a probe and the start of the next (default 1s).
	Period time.Duration `json:"period,omitempty"`
	// Timeout of one probe (default 1s).
	Timeout time.Duration `json:"timeout,omitempty"`
	// FailureThreshold is how many failures in a row make a ready replica
	// unready or a live one dead (default 3). One success is enough the
	// other way.
	FailureThreshold int `json:"failureThreshold,omitempty"`
}

// HTTPGetAction is Score's httpGet probe. It succeeds on a status in 200–399.
type HTTPGetAction struct {
	// Scheme is "HTTP" (default) or "HTTPS"; certificates are not verified.
	Scheme string `json:"scheme,omitempty"`
	// Host is sent as the Host header; the probe always connects to the
	// replica's own address.
	Host string `json:"host,omitempty"`
	Path string `json:"path"`
	// Port is one of the spec's container ports; the driver connects to the
	// address it gave that port. Zero means the first port.
	Port    int      `json:"port,omitempty"`
	Headers []Header `json:"headers,omitempty"`
}

// Header is an HTTP header of a probe.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ExecAction is Score's exec probe: the command runs with the replica's
// environment and working directory and succeeds if it exits with status 0.
type ExecAction struct {
	Command []string `json:"command"`
}

// RestartPolicy is the backoff of restarts: the n-th failure in a row waits
// Backoff·2ⁿ⁻¹, at most MaxBackoff, before the next start.
type RestartPolicy struct {
	Backoff    time.Duration `json:"backoff,omitempty"`    // default 1s
	MaxBackoff time.Duration `json:"maxBackoff,omitempty"` // default 1m
	// ResetAfter is how long a replica must run for its failures to be
	// forgotten (default 1m).
	ResetAfter time.Duration `json:"resetAfter,omitempty"`
	// CrashLoopAfter is the number of failures in a row from which the
	// replica is reported as CrashLoop rather than Backoff (default 3).
	CrashLoopAfter int `json:"crashLoopAfter,omitempty"`
}

// Delay is the wait before the start that follows the failures-th failure in
// a row (failures ≥ 1).
func (p RestartPolicy) Delay(failures int) time.Duration {
	d := p.Backoff
	for i := 1; i < failures && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// Defaults of the zero fields of a ReplicaSpec.
const (
	DefaultGracePeriod      = 10 * time.Second
	DefaultProbePeriod      = time.Second
	DefaultProbeTimeout     = time.Second
	DefaultFailureThreshold = 3
	DefaultBackoff          = time.Second
	DefaultMaxBackoff       = time.Minute
	DefaultResetAfter       = time.Minute
	DefaultCrashLoopAfter   = 3
)

// WithDefaults returns a copy of s with its zero durations and thresholds set
// to the defaults above and a missing working directory set to "/".
func (s ReplicaSpec) WithDefaults() ReplicaSpec {
	orDefault := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	orDefault(&s.GracePeriod, DefaultGracePeriod)
	orDefault(&s.Restart.Backoff, DefaultBackoff)
	orDefault(&s.Restart.MaxBackoff, max(DefaultMaxBackoff, s.Restart.Backoff))
	orDefault(&s.Restart.ResetAfter, DefaultResetAfter)
	if s.Restart.CrashLoopAfter == 0 {
		s.Restart.CrashLoopAfter = DefaultCrashLoopAfter
	}
	if s.WorkingDir == "" {
		s.WorkingDir = "/"
	}
	for _, p := range []**Probe{&s.Readiness, &s.Liveness} {
		if *p == nil {
			continue
		}
		c := **p
		orDefault(&c.Period, DefaultProbePeriod)
		orDefault(&c.Timeout, DefaultProbeTimeout)
		if c.FailureThreshold == 0 {
			c.FailureThreshold = DefaultFailureThreshold
		}
		*p = &c
	}
	return s
}

var (
	labelRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	releaseRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$`)
)

// Validate reports every problem of s, each naming its field, joined in one
// error that wraps ErrInvalid. It checks what every driver needs; a driver
// checks its own needs (Root or Image, exec probes) itself.
func (s ReplicaSpec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	if !labelRE.MatchString(s.App) {
		bad("app", "%q is not a DNS label", s.App)
	}
	if !labelRE.MatchString(s.Env) {
		bad("env", "%q is not a DNS label", s.Env)
	}
	if !releaseRE.MatchString(s.Release) {
		bad("release", "%q must be 1–128 letters, digits, '.' or '-', starting with a letter or digit", s.Release)
	}
	if s.Index < 0 {
		bad("index", "%d is negative", s.Index)
	}
	if s.Root != "" && !path.IsAbs(s.Root) {
		bad("root", "%q is not an absolute path", s.Root)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		bad("command", "no executable")
	}
	for k, v := range s.Variables {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			bad("variables", "%q is not a variable name", k)
		}
		if err := s.checkPortRefs(v); err != nil {
			bad("variables", "%s: %v", k, err)
		}
	}
	for i, v := range slices.Concat(s.Command, s.Args) {
		field := fmt.Sprintf("command[%d]", i)
		if i >= len(s.Command) {
			field = fmt.Sprintf("args[%d]", i-len(s.Command))
		}
		if err := s.checkPortRefs(v); err != nil {
			bad(field, "%v", err)
		}
	}
	if !path.IsAbs(s.WorkingDir) {
		bad("workingDir", "%q is not an absolute path", s.WorkingDir)
	}
	names, numbers := map[string]bool{}, map[int]bool{}
	for i, p := range s.Ports {
		field := fmt.Sprintf("ports[%d]", i)
		if !labelRE.MatchString(p.Name) {
			bad(field, "name %q is not a DNS label", p.Name)
		}
		if p.Port < 1 || p.Port > 65535 {
			bad(field, "port %d is not in 1–65535", p.Port)
		}
		if names[p.Name] || numbers[p.Port] {
			bad(field, "%s=%d repeats a name or port", p.Name, p.Port)
		}
		names[p.Name], numbers[p.Port] = true, true
	}
	if s.Readiness != nil {
		errs = append(errs, s.validateProbe("readiness", s.Readiness)...)
	}
	if s.Liveness != nil {
		errs = append(errs, s.validateProbe("liveness", s.Liveness)...)
	}
	if s.Limits.MilliCPU < 0 || s.Limits.Memory < 0 {
		bad("limits", "cpu and memory must not be negative")
	}
	if s.GracePeriod < 0 {
		bad("gracePeriod", "%v is negative", s.GracePeriod)
	}
	r := s.Restart
	if r.Backoff < 0 || r.MaxBackoff < r.Backoff || r.ResetAfter < 0 || r.CrashLoopAfter < 0 {
		bad("restart", "needs 0 ≤ backoff ≤ maxBackoff and resetAfter, crashLoopAfter ≥ 0")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: replica %s: %w", ErrInvalid, s.Ref, errors.Join(errs...))
}

func (s ReplicaSpec) validateProbe(field string, p *Probe) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	if (p.HTTPGet == nil) == (p.Exec == nil) {
		bad("needs exactly one of httpGet and exec")
	}
	if g := p.HTTPGet; g != nil {
		if _, err := s.PortFor(g.Port); err != nil {
			bad("httpGet: %v", err)
		}
		if !strings.HasPrefix(g.Path, "/") {
			bad("httpGet: path %q does not start with /", g.Path)
		}
		if g.Scheme != "" && g.Scheme != "HTTP" && g.Scheme != "HTTPS" {
			bad("httpGet: scheme %q is neither HTTP nor HTTPS", g.Scheme)
		}
	}
	if e := p.Exec; e != nil && (len(e.Command) == 0 || e.Command[0] == "") {
		bad("exec: no command")
	}
	if p.InitialDelay < 0 || p.Period < 0 || p.Timeout < 0 || p.FailureThreshold < 0 {
		bad("durations and threshold must not be negative")
	}
	return errs
}

// PortFor returns the spec's port whose container port is n; 0 means the
// first port.
func (s ReplicaSpec) PortFor(n int) (Port, error) {
	if len(s.Ports) == 0 {
		return Port{}, errors.New("the replica has no ports")
	}
	if n == 0 {
		return s.Ports[0], nil
	}
	for _, p := range s.Ports {
		if p.Port == n {
			return p, nil
		}
	}
	return Port{}, fmt.Errorf("port %d is none of the replica's ports", n)
}
