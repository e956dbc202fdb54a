package cli

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is written by the running server and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var upAddr = regexp.MustCompile(`socle is up on (http://[0-9.:]+)`)

// TestUpStatusPlan runs `socle up` on the demo platform, then the CLI's
// status against it, then an offline plan against the state it recorded:
// the CLI and the server agree that nothing is left to do.
func TestUpStatusPlan(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"up", "--data", data, "--addr", "127.0.0.1:0", "--poll", "1h"}, &out, &errOut)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("up exited %d: %s", code, errOut.String())
		}
	}()
	var url string
	deadline := time.Now().Add(30 * time.Second)
	for url == "" {
		if m := upAddr.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("socle up did not start:\n%s\n%s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "Created the demo platform repository") {
		t.Errorf("up did not create the demo repository:\n%s", out.String())
	}
	var status string
	for {
		s, e, code := run(t, "status", "--server", url)
		if code != 0 {
			t.Fatalf("status: %d %s", code, e)
		}
		if strings.Contains(s, "In force") {
			status = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no revision in force:\n%s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"Start from socle's demo platform", "web     dev", "worker  sandbox"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	// worker @ sandbox is denied by the demo's policy: it was never applied,
	// so it is still to create; everything else is as recorded.
	plan, e, code := run(t, "plan", filepath.Join(data, "repo"), "--data", data)
	if code != ExitProblems || !strings.Contains(plan, "Plan: 1 to create, 0 to update, 0 to delete, 4 unchanged.") || !strings.Contains(plan, "✗ deny  sandbox-memory-limits") {
		t.Errorf("plan against the recorded state (%d, %s):\n%s", code, e, plan)
	}
	if _, e, code := run(t, "status", "--server", "http://127.0.0.1:1"); code != ExitError || !strings.Contains(e, "is `socle up` running?") {
		t.Errorf("status without a server: %d %s", code, e)
	}
}
