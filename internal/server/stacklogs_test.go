package server

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
)

// TestStackLogsFollowed: edge @ dev's apply is held by a local-exec that
// reads a FIFO. Its log is listed running, and followed as server-sent
// events: the lines printed so far come at once, the rest as terraform
// prints them once the FIFO is written, then an end event, and the
// stream closes with the run. Every log, listed and read as plain text,
// holds no secret; a log the instance does not have is a 404.
func TestStackLogsFollowed(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "hold")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	release := func() {
		// Non-blocking: with no reader (the apply is over, or never
		// began) there is nothing to release.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.WriteString("go\n")
			f.Close()
		}
	}
	t.Cleanup(release)
	repo := stackRepoBy(t, "Ann Example", "ann@example.com", map[string][2]string{
		"stacks/edge/main.tf": {`input = "${var.env} behind ${var.hub}"`, `input = "${var.env} behind ${var.hub}"
  provisioner "local-exec" {
    command = var.env == "dev" ? "echo holding for the test; cat ` + fifo + `; echo released" : "true"
  }`},
	})
	r := startWith(t, Config{Repo: repo, Data: t.TempDir(), ApplyStacks: true})
	t.Cleanup(r.stop)
	c := client.New(r.url, r.token)
	ctx := t.Context()

	// The apply holds: its log is the newest, and running.
	var running api.StackRunLog
	for deadline := time.Now().Add(waitBudget); ; {
		l, err := c.StackLogs(ctx, "edge", "dev")
		if err == nil && len(l.Items) > 0 && l.Items[0].Kind == "apply" && l.Items[0].Running {
			running = l.Items[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge @ dev's apply never ran: %+v %v", l, err)
		}
		time.Sleep(50 * time.Millisecond) // polling, not a synchronisation
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/api/v1/stacks/edge/dev/logs/latest?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("following: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	// next reads the stream up to a data line holding want.
	next := func(want string) {
		t.Helper()
		for sc.Scan() {
			got = append(got, sc.Text())
			if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), want) {
				return
			}
		}
		t.Fatalf("the stream ended (%v) before %q:\n%s", sc.Err(), want, strings.Join(got, "\n"))
	}
	next("$ terraform apply")
	next("holding for the test")
	// The echo comes before cat opens the FIFO: the write waits for it
	// (a non-blocking open now could find no reader yet, and release
	// nothing).
	opened := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("go\n")
			f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitBudget):
		t.Fatal("the apply never read the FIFO")
	}
	next("released")
	next("Apply complete!")
	next("# applied: 1 to add")
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
	}
	if !slices.Contains(rest, "event: end") || slices.ContainsFunc(rest, func(l string) bool { return strings.HasPrefix(l, "data: ") && l != "data: {}" }) {
		t.Errorf("after the run's last line the stream sent %q, want the end event and the end of the stream", rest)
	}

	// Done: listed, not running (the engine may have begun the next
	// plan), the plan it applied before it; each read whole as plain text.
	l, err := c.StackLogs(ctx, "edge", "dev")
	i := slices.IndexFunc(l.Items, func(it api.StackRunLog) bool { return it.Name == running.Name })
	if err != nil || i < 0 || l.Items[i].Running || i+1 >= len(l.Items) || l.Items[i+1].Kind != "plan" {
		t.Fatalf("edge @ dev's logs after the apply: %+v %v", l, err)
	}
	for _, where := range [][2]string{{"edge", "dev"}, {"hub", "connectivity"}} {
		l, err := c.StackLogs(ctx, where[0], where[1])
		if err != nil || len(l.Items) == 0 {
			t.Fatalf("%s @ %s's logs: %+v %v", where[0], where[1], l, err)
		}
		for _, it := range l.Items {
			rc, err := c.StackLog(ctx, where[0], where[1], it.Name, false)
			if err != nil {
				t.Fatal(err)
			}
			bs, _ := io.ReadAll(rc)
			rc.Close()
			b := string(bs)
			if !strings.Contains(b, "# "+it.Kind+" of "+where[0]+" @ "+where[1]) || strings.Contains(b, hubSecret) {
				t.Errorf("%s of %s @ %s: secret shown: %v\n%s", it.Name, where[0], where[1], strings.Contains(b, hubSecret), b)
			}
		}
	}
	if _, err := c.StackLog(ctx, "edge", "dev", "20991231T000000.000000000Z-plan.log", false); apiStatus(err) != http.StatusNotFound {
		t.Errorf("a log edge @ dev does not have: %v, want 404", err)
	}
	if _, err := c.StackLog(ctx, "edge", "dev", "run.json", false); apiStatus(err) != http.StatusNotFound {
		t.Errorf("a name out of the logs: %v, want 404", err)
	}
}

// TestSSELineBreaks: a line that holds a carriage return or a newline is
// sent as one data line: it cannot start a field of its own (an end
// event of its own making).
func TestSSELineBreaks(t *testing.T) {
	rec := httptest.NewRecorder()
	s := startSSE(rec)
	if err := s.send("", "", "progress 10%\revent: end\r\ndata: {}\nmore"); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Body.String(), "data: progress 10% event: end data: {} more\n\n"; got != want {
		t.Errorf("sent %q, want %q", got, want)
	}
}
