package kubetest

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// NodeAnnotation marks the Nodes kwok plays the kubelet of.
	NodeAnnotation = "kwok.x-k8s.io/node"

	// startTimeout bounds a cluster's start: on a loaded two-core machine
	// the API server alone has needed tens of seconds.
	startTimeout = 3 * time.Minute
)

// Cluster is a running control plane with kwok Nodes. Its admin credentials
// are a client certificate in system:masters.
type Cluster struct {
	// Kubeconfig is the path of the admin kubeconfig, with the
	// credentials inline.
	Kubeconfig string
	// Context is the context of Kubeconfig, also its current one:
	// kubetest-N, unique in the test binary so that the kubeconfigs of
	// several clusters merge (KUBECONFIG=a:b) for multi-cluster tests.
	Context string
	// Server is the API server's URL, https://127.0.0.1:port.
	Server string
	// RESTConfig is the admin client configuration, with client-go's
	// default rate limits; copy it before changing it.
	RESTConfig *rest.Config
	// Nodes are the names of the fake Nodes, Ready when the cluster is
	// returned.
	Nodes []string
	// Dir is the cluster's temporary directory: certificates, etcd data,
	// logs/<component>.log.
	Dir string
	// Bin are the cached binaries it runs.
	Bin *Binaries

	// APIServerReady is the time from launching etcd to the API server's
	// /readyz answering ok; Ready is the time until the whole cluster was
	// ready (Nodes Ready, controllers and scheduler serving).
	APIServerReady, Ready time.Duration

	procs    []*proc
	stopOnce sync.Once
}

// Start starts a cluster for one test and stops it when the test ends,
// building the binaries first if this machine has not. With -short it skips
// the test. On failure the tail of every component's log is shown and the
// directory is kept.
func Start(t testing.TB) *Cluster {
	t.Helper()
	b := binaries(t)
	c, err := Launch(b, t.Logf)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("kubetest: component logs (kept in %s):\n%s", c.Dir, c.LogTail(30))
			return
		}
		os.RemoveAll(c.Dir)
	})
	return c
}

// shared is the cluster of Shared, started at its first call.
var shared struct {
	sync.Mutex
	c   *Cluster
	err error
}

// Shared returns a cluster shared by all the tests of the test binary,
// starting it at the first call; tests that share it should work in
// namespaces of their own. Call Main from TestMain so that it is stopped
// when the tests end (its processes die with the test binary anyway). With
// -short it skips the test.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	b := binaries(t)
	shared.Lock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = Launch(b, t.Logf)
	}
	c, err := shared.c, shared.err
	shared.Unlock()
	if err != nil {
		t.Fatalf("kubetest: shared cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: component logs (in %s):\n%s", c.Dir, c.LogTail(30))
		}
	})
	return c
}

// Main builds the binaries (unless -short), runs the tests and then stops
// the Shared cluster, keeping its directory when a test failed. Use it as
// the package's TestMain:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
// The build comes before any test starts, so that no test's deadline covers
// a machine's first build (a quarter of an hour on two cores), and it is
// reported on stderr as it goes.
func Main(m *testing.M) {
	flag.Parse() // for testing.Short; m.Run does not parse them again
	if !testing.Short() {
		built.Lock()
		built.b, built.err = Build(func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		})
		built.Unlock()
	}
	code := m.Run()
	shared.Lock()
	c := shared.c
	shared.Unlock()
	if c != nil {
		c.Stop()
		if code == 0 {
			os.RemoveAll(c.Dir)
		} else {
			fmt.Fprintf(os.Stderr, "kubetest: shared cluster logs kept in %s\n", c.Dir)
		}
	}
	os.Exit(code)
}

// built is the result of Build, once per test binary.
var built struct {
	sync.Mutex
	b   *Binaries
	err error // of Main's build, reported by every test that needs the binaries
}

// binaries skips under -short and returns the built binaries, reporting
// how long a build took.
func binaries(t testing.TB) *Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("kubetest: a real Kubernetes cluster is not started with -short")
	}
	built.Lock()
	defer built.Unlock()
	if built.err != nil {
		t.Fatalf("kubetest: %v", built.err)
	}
	if built.b == nil {
		b, err := Build(t.Logf)
		if err != nil {
			t.Fatalf("kubetest: %v", err)
		}
		if b.Built > 0 {
			t.Logf("kubetest: binaries built in %s, cached in %s", b.Built.Round(time.Second), b.Dir)
		}
		built.b = b
	}
	return built.b
}

// clusters numbers the clusters of the test binary.
var clusters atomic.Int64

// Launch starts a cluster from b outside of a test, for programs such as
// benchmarks; tests use Start or Shared. It launches etcd, then the API
// server, then the controller manager, the scheduler and kwok against it,
// creates a fake Node and returns once all of them serve. The caller must
// call Stop, then remove Dir.
func Launch(b *Binaries, logf func(format string, args ...any)) (_ *Cluster, err error) {
	dir, err := os.MkdirTemp("", "socle-kube-")
	if err != nil {
		return nil, fmt.Errorf("creating cluster dir: %w", err)
	}
	c := &Cluster{
		Dir:        dir,
		Bin:        b,
		Context:    fmt.Sprintf("kubetest-%d", clusters.Add(1)),
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
	}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("%w\ncomponent logs (kept in %s):\n%s", err, dir, c.LogTail(30))
		}
	}()

	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("creating log dir: %w", err)
	}
	p, err := newPKI(dir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	c.Server = "https://127.0.0.1:" + apiPort
	if err := c.writeKubeconfig(p); err != nil {
		return nil, err
	}
	c.RESTConfig = &rest.Config{
		Host: c.Server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.ca,
			CertData: p.adminCert,
			KeyData:  p.adminKey,
		},
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	began := time.Now()

	etcdURL := "http://127.0.0.1:" + etcdPort
	peerURL := "http://127.0.0.1:" + peerPort
	if err := c.launch("etcd", b.Stack, nil, "etcd",
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		// The data is thrown away with the test; fsync would only make
		// every write wait for the disk the other tests share.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	); err != nil {
		return nil, err
	}
	if err := c.poll(ctx, "etcd health", func(ctx context.Context) error {
		body, err := get(ctx, http.DefaultClient, etcdURL+"/health")
		if err == nil && !strings.Contains(body, `"true"`) {
			err = fmt.Errorf("unhealthy: %s", body)
		}
		return err
	}); err != nil {
		return nil, err
	}

	if err := c.launch("kube-apiserver", b.Stack, nil, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+apiPort,
		"--cert-dir="+filepath.Join(dir, "apiserver"),
		"--tls-cert-file="+p.serverCert,
		"--tls-private-key-file="+p.serverKey,
		"--client-ca-file="+p.caCert,
		// The controller manager and scheduler read the front-proxy CA
		// for delegated authentication and log an error every few
		// seconds while it is missing. Only a certificate named
		// front-proxy-client may assert these headers, and none is issued.
		"--requestheader-client-ca-file="+p.caCert,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.saPub,
		"--service-account-signing-key-file="+p.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		// On loopback the default reconciler refuses to publish
		// 127.0.0.1 as the kubernetes Service's endpoint and the API
		// server never becomes ready.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		// Benchmarks apply thousands of objects at once.
		"--max-requests-inflight=2000",
		"--max-mutating-requests-inflight=1000",
	); err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(c.fastConfig())
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	if err := c.poll(ctx, "kube-apiserver readyz", func(ctx context.Context) error {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s", err, body)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	c.APIServerReady = time.Since(began)
	logf("kubetest: kube-apiserver %s ready in %s at %s", KubeVersion, c.APIServerReady.Round(time.Millisecond), c.Server)

	schedConfig := filepath.Join(dir, "scheduler.yaml")
	if err := os.WriteFile(schedConfig, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
`, c.Kubeconfig), 0o644); err != nil {
		return nil, fmt.Errorf("writing scheduler config: %w", err)
	}
	delegated := []string{
		"--authentication-kubeconfig=" + c.Kubeconfig,
		"--authorization-kubeconfig=" + c.Kubeconfig,
		"--bind-address=127.0.0.1",
	}
	if err := c.launch("kube-controller-manager", b.Stack, nil, append([]string{"kube-controller-manager",
		"--kubeconfig=" + c.Kubeconfig,
		"--secure-port=" + kcmPort,
		"--leader-elect=false",
		// nodeipam would need a cluster CIDR to hand out; kwok gives pods
		// addresses of its own. Node lifecycle stays on so that Nodes kwok
		// stops heartbeating become NotReady, as on a real cluster.
		"--controllers=*,-nodeipam",
		"--service-account-private-key-file=" + p.saKey,
		"--root-ca-file=" + p.caCert,
		"--cluster-signing-cert-file=" + p.caCert,
		"--cluster-signing-key-file=" + p.caKey,
		// The defaults (20 QPS, 5 concurrent syncs) make a benchmark of
		// thousands of Deployments measure the controller's throttle.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		"--concurrent-deployment-syncs=20",
		"--concurrent-replicaset-syncs=20",
		"--profiling=false",
	}, delegated...)...); err != nil {
		return nil, err
	}
	if err := c.launch("kube-scheduler", b.Stack, nil, append([]string{"kube-scheduler",
		"--config=" + schedConfig,
		"--secure-port=" + schedPort,
		"--profiling=false",
	}, delegated...)...); err != nil {
		return nil, err
	}
	stages, err := filepath.Glob(filepath.Join(b.Stages, "*.yaml"))
	if err != nil || len(stages) == 0 {
		return nil, fmt.Errorf("no kwok stages in %s", b.Stages)
	}
	kwokArgs := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + NodeAnnotation + "=fake",
		// kwok renews each Node's Lease, which the node lifecycle
		// controller counts as a heartbeat between status updates.
		"--node-lease-duration-seconds=40",
		// Room for the addresses of thousands of pods.
		"--cidr=10.244.0.1/16",
		"--server-address=127.0.0.1:" + kwokPort,
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	// HOME is the cluster's directory so that no ~/.kwok/kwok.yaml of the
	// machine's user adds stages of its own.
	if err := c.launch("kwok", b.Kwok, []string{"HOME=" + dir}, kwokArgs...); err != nil {
		return nil, err
	}

	node := "kwok-node-0"
	_, err = client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        node,
			Annotations: map[string]string{NodeAnnotation: "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": node,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating node: %w", err)
	}
	c.Nodes = []string{node}
	if err := c.poll(ctx, "node "+node+" Ready", func(ctx context.Context) error {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not Ready")
	}); err != nil {
		return nil, err
	}
	insecure := &http.Client{Transport: &http.Transport{
		// Both serve a self-signed certificate of their own making.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	for name, port := range map[string]string{"kube-controller-manager": kcmPort, "kube-scheduler": schedPort} {
		if err := c.poll(ctx, name+" healthz", func(ctx context.Context) error {
			_, err := get(ctx, insecure, "https://127.0.0.1:"+port+"/healthz")
			return err
		}); err != nil {
			return nil, err
		}
	}
	// The service-account controller creating the default ServiceAccount
	// shows the controllers run: until it has, Pods are refused.
	if err := c.poll(ctx, "default ServiceAccount", func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return nil, err
	}
	c.Ready = time.Since(began)
	logf("kubetest: cluster ready in %s (kubeconfig %s, context %s)", c.Ready.Round(time.Millisecond), c.Kubeconfig, c.Context)
	return c, nil
}

// fastConfig is the admin configuration without client-side throttling,
// for the harness's own polling.
func (c *Cluster) fastConfig() *rest.Config {
	cfg := rest.CopyConfig(c.RESTConfig)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.Timeout = 10 * time.Second
	return cfg
}

// Client returns an admin clientset for the cluster.
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatalf("kubetest: creating client: %v", err)
	}
	return client
}

// Kubectl returns a kubectl command against the cluster's admin context,
// for tests that act as a person at a terminal would.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Bin.Stack, append([]string{"kubectl", "--kubeconfig=" + c.Kubeconfig, "--context=" + c.Context}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	return cmd
}

// Stop kills every component. It is safe to call more than once; it does
// not remove Dir.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		// Killed outright, last started first: the data is thrown away,
		// and a graceful API server shutdown takes seconds.
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].kill()
		}
		for _, p := range c.procs {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
	})
}

// LogTail returns the last n lines of every component's log.
func (c *Cluster) LogTail(n int) string {
	var b strings.Builder
	for _, p := range c.procs {
		data, _ := os.ReadFile(p.log)
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.name, p.log, tail(data, n))
	}
	return b.String()
}

// writeKubeconfig writes the admin kubeconfig with the credentials inline,
// so that it works from any directory and can be copied.
func (c *Cluster) writeKubeconfig(p *pki) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Context] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: p.ca}
	cfg.AuthInfos[c.Context] = &clientcmdapi.AuthInfo{ClientCertificateData: p.adminCert, ClientKeyData: p.adminKey}
	cfg.Contexts[c.Context] = &clientcmdapi.Context{Cluster: c.Context, AuthInfo: c.Context, Namespace: "default"}
	cfg.CurrentContext = c.Context
	if err := clientcmd.WriteToFile(*cfg, c.Kubeconfig); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// proc is a running component.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it exited
	err  error         // its exit, once done is closed
}

// launch starts a component with its output in logs/<name>.log.
func (c *Cluster) launch(name, bin string, env []string, args ...string) error {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	killGroup(p.cmd.Process)
}

// poll calls check until it succeeds, ctx ends or a component exits; the
// error then names what was awaited and the last reason it was not ready.
func (c *Cluster) poll(ctx context.Context, what string, check func(context.Context) error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		for _, p := range c.procs {
			select {
			case <-p.done:
				return fmt.Errorf("waiting for %s: %s exited: %v", what, p.name, p.err)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// get returns the body of a GET that answered 200.
func get(ctx context.Context, client *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return string(body), nil
}

// freePorts returns n distinct loopback ports that were free a moment ago:
// all are held open until each is chosen, so none is picked twice.
func freePorts(n int) ([]string, error) {
	ports := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}
