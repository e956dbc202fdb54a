// Command proxy measures socle's built-in reverse proxy side by side with
// nginx: one small Go backend answering a fixed body on loopback, socle's
// proxy and nginx (keep-alive to the upstream) each in front of it in their
// own process, the same wrk load against each, and requests/s and p99 for
// both with their ratio. The goal is socle ≥ 0.8 × nginx's throughput with a
// p99 within 1.5 ×. It needs nginx and wrk on the PATH
// (apt-get install -y nginx wrk).
//
// socle's proxy is measured twice: "socle" is the proxy library served
// by a process of the bench's own, as socle up served it inside its own
// process before the proxy had one (--proxy inprocess); "socle proxy" is
// the proxy process that socle up runs now (internal/proxy/proxyd), started
// and driven by a proxyd.Supervisor over its control socket, on a listening
// socket the supervisor made and handed it.
//
// The same run measures HTTPS too: "nginx TLS" and "socle proxy TLS" (the
// proxy process's HTTPS listener, --tls-certs), with one self-signed
// certificate the bench makes, HTTP/1.1 over TLS (wrk speaks no HTTP/2);
// wrk's connections are kept alive, so this is the cost of encryption
// more than of handshakes.
//
//	go run ./bench/proxy [-t 2] [-c 50] [-d 5s] [-rounds 7]
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/socle-dev/socle/internal/proxy"
	"github.com/socle-dev/socle/internal/proxy/proxyd"
)

const (
	route = "bench.local"
	host  = route + ".localhost"
	body  = "Hello from the bench backend: a small fixed answer.\n"
)

func main() {
	// The supervisor runs this program as `socle proxy`.
	if len(os.Args) > 1 && os.Args[1] == "proxy" {
		os.Exit(proxyd.Main(context.Background(), os.Args[2:], os.Stderr))
	}
	role := flag.String("role", "", "internal: run as the backend or socle child process")
	backendAddr := flag.String("backend", "", "internal: the backend's address (socle role)")
	threads := flag.Int("t", 2, "wrk threads")
	conns := flag.Int("c", 50, "wrk connections")
	duration := flag.Duration("d", 5*time.Second, "duration of one measured run")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured run against each target first")
	rounds := flag.Int("rounds", 7, "rounds of nginx and socle back to back; medians are reported")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of socle's proxy over the whole bench to this file")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *role {
	case "backend":
		err = serveBackend(ctx)
	case "socle":
		err = serveSocle(ctx, *backendAddr, *cpuprofile)
	case "":
		err = run(ctx, wrkArgs{threads: *threads, conns: *conns, duration: *duration}, *warmup, *rounds, *cpuprofile)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// serveBackend is the backend: a fixed body on a loopback port, printed on
// stdout.
func serveBackend(ctx context.Context) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, body)
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveSocle is socle's proxy in front of the backend, as the server runs it.
func serveSocle(ctx context.Context, backend, cpuprofile string) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	p, err := proxy.New(proxy.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	err = p.SetRoute(ctx, proxy.Route{
		Name:     route,
		Backends: []proxy.Backend{{ID: "backend", Addr: backend, Weight: 1, Version: "v1"}},
		Health:   proxy.HealthCheck{Path: "/"},
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	return p.Serve(ctx, l)
}

type wrkArgs struct {
	threads, conns int
	duration       time.Duration
}

func (a wrkArgs) command(url string, d time.Duration) []string {
	return []string{"wrk", "-t" + strconv.Itoa(a.threads), "-c" + strconv.Itoa(a.conns),
		"-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "-H", "Host: " + host, url}
}

type target struct {
	name    string
	url     string
	pid     int // the proxy's process (nginx: its master), 0 for none
	results []result
}

type result struct {
	rps      float64
	p99      time.Duration
	errors   int
	requests int
	// CPU time used per request by the proxy's processes and by the backend.
	proxyCPU, backendCPU time.Duration
}

func run(ctx context.Context, args wrkArgs, warmup time.Duration, rounds int, cpuprofile string) error {
	var missing []string
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing on the PATH: %s; install with: apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "socle-bench-proxy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var children []*exec.Cmd
	defer func() {
		for _, c := range slices.Backward(children) {
			stopChild(c)
		}
	}()
	backendCmd, backend, err := startChild(self, "-role", "backend")
	if err != nil {
		return fmt.Errorf("starting the backend: %w", err)
	}
	children = append(children, backendCmd)
	socleCmd, socleAddr, err := startChild(self, "-role", "socle", "-backend", backend, "-cpuprofile", cpuprofile)
	if err != nil {
		return fmt.Errorf("starting socle's proxy: %w", err)
	}
	children = append(children, socleCmd)
	certs := filepath.Join(dir, "certs")
	if err := writeCert(certs); err != nil {
		return err
	}
	sup, err := proxyd.Start(ctx, proxyd.Options{Data: dir, Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0",
		Command: []string{self, "proxy", "--tls-certs", certs}})
	if err != nil {
		return fmt.Errorf("starting socle proxy: %w", err)
	}
	defer sup.Stop(context.Background())
	err = sup.Client().SetRoute(ctx, proxy.Route{
		Name:     route,
		Backends: []proxy.Backend{{ID: "backend", Addr: backend, Weight: 1, Version: "v1"}},
		Health:   proxy.HealthCheck{Path: "/"},
	})
	if err != nil {
		return fmt.Errorf("routing socle proxy: %w", err)
	}
	nginxCmd, nginxAddr, nginxTLSAddr, err := startNginx(dir, backend, certs)
	if err != nil {
		return fmt.Errorf("starting nginx: %w", err)
	}
	children = append(children, nginxCmd)

	targets := []*target{
		{name: "backend direct", url: "http://" + backend + "/"},
		{name: "nginx", url: "http://" + nginxAddr + "/", pid: nginxCmd.Process.Pid},
		{name: "socle", url: "http://" + socleAddr + "/", pid: socleCmd.Process.Pid},
		{name: "socle proxy", url: "http://" + sup.Addr() + "/", pid: sup.PID()},
		{name: "nginx TLS", url: "https://" + nginxTLSAddr + "/", pid: nginxCmd.Process.Pid},
		{name: "socle proxy TLS", url: "https://" + sup.TLSAddr() + "/", pid: sup.PID()},
	}
	for _, t := range targets {
		if err := waitAnswer(ctx, t.url); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}

	printMachine()
	fmt.Printf("load:    %s\n", strings.Join(quote(args.command("URL", args.duration)), " "))
	fmt.Printf("         the same for every target, after a %s warm-up each; the backend alone once, then %d rounds of\n", warmup, rounds)
	fmt.Println("         nginx, socle, socle proxy, nginx TLS and socle proxy TLS back to back (each first in turn), so that all")
	fmt.Println("         meet the same moment of a busy machine")
	fmt.Printf("         load average before: %s\n\n", loadAverage())
	for _, t := range targets {
		if _, err := wrk(ctx, args.command(t.url, warmup)); err != nil {
			return fmt.Errorf("warming up %s: %w", t.name, err)
		}
	}
	backendPid := backendCmd.Process.Pid
	measure := func(t *target) error {
		proxy0, backend0 := cpuTime(t.pid), cpuTime(backendPid)
		r, err := wrk(ctx, args.command(t.url, args.duration))
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if r.requests > 0 {
			r.proxyCPU = (cpuTime(t.pid) - proxy0) / time.Duration(r.requests)
			r.backendCPU = (cpuTime(backendPid) - backend0) / time.Duration(r.requests)
		}
		t.results = append(t.results, r)
		return nil
	}
	direct, ng, so, sp, ngT, spT := targets[0], targets[1], targets[2], targets[3], targets[4], targets[5]
	if err := measure(direct); err != nil {
		return err
	}
	type ratioSet struct{ tput, p99, cpu []float64 }
	var inproc, proc, procTLS ratioSet
	for round := range rounds {
		order := []*target{ng, so, sp, ngT, spT}
		for range round % len(order) {
			order = append(order[1:], order[0])
		}
		for _, t := range order {
			if err := measure(t); err != nil {
				return err
			}
		}
		for _, x := range []struct {
			t, n *target
			r    *ratioSet
		}{{so, ng, &inproc}, {sp, ng, &proc}, {spT, ngT, &procTLS}} {
			n := x.n.results[round]
			s := x.t.results[round]
			x.r.tput = append(x.r.tput, s.rps/n.rps)
			x.r.p99 = append(x.r.p99, float64(s.p99)/float64(n.p99))
			x.r.cpu = append(x.r.cpu, float64(s.proxyCPU)/float64(n.proxyCPU))
		}
	}

	fmt.Printf("%-16s %11s %9s %7s %14s %12s   %s\n", "target", "requests/s", "p99", "errors", "proxy CPU/req", "backend CPU", "each run (req/s, p99)")
	for _, t := range targets {
		m := median(t.results)
		var each []string
		for _, r := range t.results {
			each = append(each, fmt.Sprintf("%.0f/%s", r.rps, r.p99))
		}
		proxyCPU := "-"
		if t.pid != 0 {
			proxyCPU = m.proxyCPU.String()
		}
		fmt.Printf("%-16s %11.0f %9s %7d %14s %12s   %s\n", t.name, m.rps, m.p99, m.errors, proxyCPU, m.backendCPU, strings.Join(each, " "))
	}
	for _, x := range []struct {
		name string
		r    ratioSet
	}{{"socle (the library in a process of the bench's: before)", inproc}, {"socle proxy (socle up's proxy process: after)", proc},
		{"socle proxy TLS (HTTPS, HTTP/1.1) / nginx TLS", procTLS}} {
		tput, lat, cpu := mid(x.r.tput), mid(x.r.p99), mid(x.r.cpu)
		name := x.name
		if !strings.Contains(name, "/") {
			name += " / nginx"
		}
		fmt.Printf("\n%s, median of the %d rounds' ratios:\n", name, rounds)
		fmt.Printf("  throughput %.2f× (goal ≥ 0.80: %s)   rounds: %s\n", tput, verdict(tput >= 0.8), ratios(x.r.tput))
		fmt.Printf("  p99        %.2f× (goal ≤ 1.50: %s)   rounds: %s\n", lat, verdict(lat <= 1.5), ratios(x.r.p99))
		fmt.Printf("  CPU time per request %.2f×                rounds: %s\n", cpu, ratios(x.r.cpu))
	}
	fmt.Printf("load average after: %s\n", loadAverage())
	return nil
}

func ratios(r []float64) string {
	s := make([]string, len(r))
	for i, x := range r {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}

// loadAverage returns the 1, 5 and 15 minute load averages, which say how
// busy the machine was with other work.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// median returns, for each figure separately, the median over the runs;
// errors are summed.
func median(rs []result) result {
	m := result{
		rps:        mid(each(rs, func(r result) float64 { return r.rps })),
		p99:        mid(each(rs, func(r result) time.Duration { return r.p99 })),
		proxyCPU:   mid(each(rs, func(r result) time.Duration { return r.proxyCPU })),
		backendCPU: mid(each(rs, func(r result) time.Duration { return r.backendCPU })),
	}
	for _, r := range rs {
		m.errors += r.errors
	}
	return m
}

func each[T any](rs []result, f func(result) T) []T {
	v := make([]T, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return v
}

// mid returns the median of v (the upper one of an even count).
func mid[T float64 | time.Duration](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// cpuTime returns the user and system CPU time used so far by process pid
// and its children (nginx's workers), from /proc; 0 for pid 0 or without
// /proc.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name, which is in parentheses.
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 || (e.Name() != strconv.Itoa(pid) && f[1] != strconv.Itoa(pid)) {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += utime + stime
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux.
const clockTicks = 100

func printMachine() {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Printf("machine: %s, %d cores, %s/%s, %s\n", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("         wrk, nginx, socle's proxy and the backend all share these %d cores, so the figures compare the\n", runtime.NumCPU())
	fmt.Println("         proxies with each other; they are not what either would do on a machine of its own.")
	out, _ := exec.Command("nginx", "-v").CombinedOutput()
	fmt.Printf("nginx:   %s", out)
	fmt.Println("         2 worker processes, keepalive 256 to the upstream, access log off; socle: GOMAXPROCS", runtime.GOMAXPROCS(0))
}

func quote(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if strings.ContainsAny(a, " :") {
			out[i] = "'" + a + "'"
		}
	}
	return out
}

// startChild runs this program in another role and returns the address it
// prints on its first line. socle's proxy runs in a session of its own,
// as socle proxy and nginx do: with the kernel's autogroup scheduling (on
// by default), a session is what shares the CPU fairly with the others,
// so on a busy machine every proxy gets the same share.
func startChild(self string, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	if slices.Contains(args, "socle") {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stopChild(cmd)
		return nil, "", fmt.Errorf("reading its address: %w", err)
	}
	return cmd, strings.TrimSpace(line), nil
}

func stopChild(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

const nginxConf = `worker_processes 2;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    upstream backend {
        server {{backend}};
        keepalive 256;
    }
    server {
        listen {{listen}};
        listen {{tlslisten}} ssl;
        ssl_certificate {{certs}}/{{host}}.crt;
        ssl_certificate_key {{certs}}/{{host}}.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`

// startNginx writes a minimal configuration proxying to backend and runs
// nginx in the foreground with it, on a plain and an HTTPS address.
func startNginx(dir, backend, certs string) (*exec.Cmd, string, string, error) {
	var addrs [2]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", "", err
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	addr, tlsAddr := addrs[0], addrs[1]
	conf := strings.NewReplacer("{{dir}}", dir, "{{backend}}", backend, "{{listen}}", addr,
		"{{tlslisten}}", tlsAddr, "{{certs}}", certs, "{{host}}", host).Replace(nginxConf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, "", "", err
	}
	cmd := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as socle's proxies: see startChild
	if err := cmd.Start(); err != nil {
		return nil, "", "", err
	}
	return cmd, addr, tlsAddr, nil
}

// writeCert writes a self-signed certificate for the bench's host and for
// 127.0.0.1 into dir, as <name>.crt and <name>.key for both names: wrk
// names the URL's host in SNI, an IP address, where Go's clients send the
// Host.
func writeCert(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	k := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	for _, name := range []string{host, "127.0.0.1"} {
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), crt, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".key"), k, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// client is the client of waitAnswer: HTTPS to the bench's self-signed
// certificate, named by the bench's host.
var client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: host, InsecureSkipVerify: true}}}

// waitAnswer waits up to 5s for url to answer 200 to a request for the
// bench's host.
func waitAnswer(ctx context.Context, url string) error {
	var last error
	for range 50 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Host = host
		resp, err := client.Do(req)
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(data) == body {
				return nil
			}
			err = fmt.Errorf("answered %s: %q", resp.Status, data)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not answering after 5s: %w", last)
}

var (
	rpsLine    = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	countLine  = regexp.MustCompile(`(?m)^\s+(\d+) requests in`)
	p99Line    = regexp.MustCompile(`(?m)^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$`)
	non2xxLine = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses: (\d+)`)
	socketLine = regexp.MustCompile(`(?m)^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrk runs wrk and parses requests/s, p99 and errors from its output.
func wrk(ctx context.Context, args []string) (result, error) {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (result, error) {
	var r result
	m := rpsLine.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk's output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := countLine.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(m[1])
	}
	m = p99Line.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no 99%% latency in wrk's output:\n%s", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[2]]
	r.p99 = time.Duration(v * float64(unit)).Round(time.Microsecond)
	if m := non2xxLine.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
	}
	if m := socketLine.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.errors += n
		}
	}
	return r, nil
}
