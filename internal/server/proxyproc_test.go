package server

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestProxyProcess runs the server with its proxy apart (socle up's
// default): the proxy process serves on ProxyAddr, its metrics reach
// socle's /metrics, it outlives a server stopped with KeepRunning and the
// next server adopts it, and a server stopped without KeepRunning stops it.
func TestProxyProcess(t *testing.T) {
	repo, data := gitRepo(t), t.TempDir()
	cfg := Config{Repo: repo, Data: data, ProxyCommand: []string{os.Args[0], "proxy"}, KeepRunning: true}
	r := startWith(t, cfg)
	pid := r.proxySup.PID()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if pid == os.Getpid() || syscall.Kill(pid, 0) != nil {
		t.Fatalf("no proxy process of its own: pid %d", pid)
	}
	// The proxy process answers on ProxyAddr: a host it has no route for.
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProxyAddr()+"/", nil)
	req.Host = "nothing.here.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "nothing.here") {
		t.Errorf("unknown host through the proxy process: %s %q", resp.Status, body)
	}
	// Its metrics are relayed into socle's.
	resp = r.get(t, "/metrics")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"socle_proxy_up 1", "socle_proxy_unknown_host_requests_total 1"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("socle's /metrics lacks %q", want)
		}
	}
	addr := r.ProxyAddr()
	r.stop()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the proxy process %d stopped with a server that keeps the apps running: %v", pid, err)
	}

	cfg.KeepRunning = false
	r = startWith(t, cfg)
	if got := r.proxySup.PID(); got != pid || r.ProxyAddr() != addr {
		t.Errorf("the second server runs proxy %d on %s, want %d on %s adopted", got, r.ProxyAddr(), pid, addr)
	}
	r.stop()
	// Stop waited for the process to end: its pid is gone or a zombie of
	// this test process (the first server started it) until reaped.
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	if b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
		t.Errorf("the proxy process %d still runs after a server stopped without KeepRunning", pid)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
