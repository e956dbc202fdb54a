package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// timedLoad sends GET / to web.dev.localhost through socle's proxy from
// conns concurrent keep-alive clients (Go's http.Client, which sends an
// idempotent request again when a kept-alive connection it reused was
// closed before any answer, as HTTP/1.1 allows), and keeps every request's
// start, duration and outcome, so that a window around an event can be
// looked at afterwards.
type timedLoad struct {
	mu   sync.Mutex
	reqs []timedReq
	stop chan struct{}
	wg   sync.WaitGroup
}

type timedReq struct {
	start time.Time
	took  time.Duration
	err   string // "" when answered 200 by a web version
}

func startTimedLoad(proxyPort string, conns int) *timedLoad {
	l := &timedLoad{stop: make(chan struct{})}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range conns {
		l.wg.Go(func() {
			var mine []timedReq
			defer func() {
				l.mu.Lock()
				l.reqs = append(l.reqs, mine...)
				l.mu.Unlock()
			}()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+proxyPort+"/", nil)
				req.Host = "web.dev.localhost"
				start := time.Now()
				r := timedReq{start: start}
				resp, err := client.Do(req)
				if err != nil {
					r.err = err.Error()
				} else {
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || !versionRe.Match(body) {
						r.err = fmt.Sprintf("%d %q %v", resp.StatusCode, body, err)
					}
				}
				r.took = time.Since(start)
				mine = append(mine, r)
			}
		})
	}
	return l
}

// halt stops the load and returns every request, by start time.
func (l *timedLoad) halt() []timedReq {
	close(l.stop)
	l.wg.Wait()
	slices.SortFunc(l.reqs, func(a, b timedReq) int { return a.start.Compare(b.start) })
	return l.reqs
}

// window sums the requests that started in [from, to): how many, how many
// failed (with up to 3 reasons), and the longest.
func window(reqs []timedReq, from, to time.Time) (n, failed int, longest time.Duration, why []string) {
	for _, r := range reqs {
		if r.start.Before(from) || !r.start.Before(to) {
			continue
		}
		n++
		longest = max(longest, r.took)
		if r.err != "" {
			failed++
			if len(why) < 3 {
				why = append(why, r.err)
			}
		}
	}
	return
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var restartedLine = regexp.MustCompile(`msg="proxy process restarted" pid=(\d+) gap=(\S+)`)

// TestProxyOutlivesSocle runs web (2 replicas) under 50 concurrent
// keep-alive clients and, with the proxy in its own process (socle up's
// default):
//
//  1. kills socle with SIGKILL, then starts it again: 0 failed requests,
//     the same proxy process adopted;
//  2. upgrades socle: SIGTERM (with --keep-running), then a socle binary of
//     another build starts, which replaces the proxy by a hand-off on the
//     same listening socket: 0 failed requests;
//  3. kills the proxy process with SIGKILL 20 times: socle restarts it each
//     time; the gap (socle's measure, from the death to the new process
//     serving) and the failed requests are logged, not asserted.
//
// Then, for comparison, the same kill -9 of socle with --proxy inprocess
// (the proxy dies with socle): its failed requests are logged.
func TestProxyOutlivesSocle(t *testing.T) {
	// Another build of socle: the same sources linked with another
	// -ldflags, so that its Go build ID (socle's test of "another build")
	// differs; only the link runs again.
	next := filepath.Join(t.TempDir(), "socle-next")
	build := exec.Command("go", "build", "-ldflags", "-X main.upgradeTest=next", "-o", next, "../../cmd/socle")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the next socle: %v\n%s", err, out)
	}

	repo, data := platform(t, "rollout: {strategy: rolling}", 2), t.TempDir()
	s := start(t, repo, data, "--keep-running")
	rev := head(t, repo)
	s.waitSynced(t, rev, 3*time.Minute)
	pid, ok := proxyPID(data)
	if !ok {
		t.Fatal("no proxy process recorded")
	}
	port := s.proxyPort
	l := startTimedLoad(port, 50)
	time.Sleep(time.Second) // load before the event, to compare with

	// 1. kill -9 of socle, and a restart.
	killAt := time.Now()
	s.kill()
	time.Sleep(time.Second) // socle away
	s = start(t, repo, data, "--keep-running")
	s.waitSynced(t, rev, time.Minute)
	backAt := time.Now()
	if p, _ := proxyPID(data); p != pid {
		t.Errorf("after socle's restart the proxy process is %d, want %d adopted", p, pid)
	}
	if s.proxyPort != port {
		t.Errorf("after socle's restart the proxy listens on %s, want %s", s.proxyPort, port)
	}
	time.Sleep(time.Second)

	// 2. an upgrade: SIGTERM, then another build.
	upgradeAt := time.Now()
	s.stop(t)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the proxy process %d stopped with socle: %v", pid, err)
	}
	time.Sleep(500 * time.Millisecond)
	s = startBinary(t, next, repo, data, "--keep-running")
	s.waitSynced(t, rev, time.Minute)
	upgradedAt := time.Now()
	newPID, _ := proxyPID(data)
	if newPID == pid || newPID == 0 {
		t.Errorf("after the upgrade the proxy process is %d, want a new one of the new build (was %d)", newPID, pid)
	}
	waitFor(t, 40*time.Second, "the old proxy process to drain and exit", func() bool { return syscall.Kill(pid, 0) != nil })
	if !regexp.MustCompile(`proxy process of another build replaced`).MatchString(s.log.String()) {
		t.Errorf("socle's log does not tell of the hand-off:\n%s", tail(s.log.String(), 30))
	}
	time.Sleep(time.Second)

	// 3. the proxy process killed 20 times. Each kill waits 1.5s after
	// the last restart: a proxy that dies within a second of starting is
	// restarted with backoff, as a crash loop.
	type kill struct {
		at, back time.Time
		gap      time.Duration
	}
	var kills []kill
	seen := 0
	for i := range 20 {
		victim, ok := proxyPID(data)
		if !ok {
			t.Fatalf("kill %d: no proxy process", i)
		}
		at := time.Now()
		syscall.Kill(victim, syscall.SIGKILL)
		var m []string
		waitFor(t, 30*time.Second, fmt.Sprintf("the proxy process %d to be restarted", victim), func() bool {
			all := restartedLine.FindAllStringSubmatch(s.log.String(), -1)
			if len(all) > seen {
				m = all[seen]
				return true
			}
			return false
		})
		seen++
		gap, _ := time.ParseDuration(m[2])
		kills = append(kills, kill{at: at, back: time.Now(), gap: gap})
		time.Sleep(1500 * time.Millisecond)
	}
	reqs := l.halt()
	s.stop(t)

	n, failed, longest, why := window(reqs, killAt, backAt)
	t.Logf("kill -9 of socle and restart (%s away): %d requests, %d failed, longest %s %v", backAt.Sub(killAt).Round(time.Millisecond), n, failed, longest, why)
	if failed != 0 {
		t.Errorf("%d requests failed while socle was killed and restarted: %v", failed, why)
	}
	n, failed, longest, why = window(reqs, upgradeAt, upgradedAt.Add(time.Second))
	t.Logf("upgrade (SIGTERM, a socle of another build, hand-off of the proxy): %d requests, %d failed, longest %s %v", n, failed, longest, why)
	if failed != 0 {
		t.Errorf("%d requests failed during the upgrade: %v", failed, why)
	}
	var gaps []time.Duration
	totalFailed, totalN := 0, 0
	var worst time.Duration
	for _, k := range kills {
		n, failed, longest, _ := window(reqs, k.at, k.back.Add(500*time.Millisecond))
		totalN += n
		totalFailed += failed
		worst = max(worst, longest)
		gaps = append(gaps, k.gap)
	}
	slices.Sort(gaps)
	_, _, _, why = window(reqs, kills[0].at, time.Now())
	t.Logf("20 kill -9 of the proxy process: restart gap median %s, p90 %s, max %s; %d requests around the kills, %d failed, longest request %s %v",
		gaps[len(gaps)/2].Round(time.Microsecond), gaps[len(gaps)*9/10].Round(time.Microsecond), gaps[len(gaps)-1].Round(time.Microsecond),
		totalN, totalFailed, worst.Round(time.Millisecond), why)

	// For comparison: the proxy inside socle, killed with it.
	data2 := t.TempDir()
	s = start(t, repo, data2, "--keep-running", "--proxy", "inprocess")
	s.waitSynced(t, rev, 3*time.Minute)
	if _, ok := proxyPID(data2); ok {
		t.Errorf("--proxy inprocess started a proxy process")
	}
	port = s.proxyPort
	l = startTimedLoad(port, 50)
	time.Sleep(time.Second)
	killAt = time.Now()
	s.kill()
	s = start(t, repo, data2, "--proxy-addr", "127.0.0.1:"+port, "--keep-running", "--proxy", "inprocess")
	s.waitSynced(t, rev, time.Minute)
	backAt = time.Now()
	time.Sleep(time.Second)
	reqs = l.halt()
	s.stop(t)
	n, failed, longest, why = window(reqs, killAt, backAt)
	t.Logf("--proxy inprocess, kill -9 of socle and restart (%s away): %d requests, %d failed, longest %s %v",
		backAt.Sub(killAt).Round(time.Millisecond), n, failed, longest, why)
	if failed == 0 {
		t.Logf("(no request failed with the proxy in socle's process: the comparison shows nothing this time)")
	}
	os.RemoveAll(data2)
}
