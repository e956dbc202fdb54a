package stack

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunLogs: a plan, an apply and a drift check each leave a log of
// what terraform printed, newest first, each command announced and the
// end said; a secret input that terraform prints in clear (nonsensitive)
// is replaced; terraform's JSON (its version, the outputs) is not there.
func TestRunLogs(t *testing.T) {
	const token = "tok-logged-by-local-exec"
	repo := writeRepo(t, "loud", "inputs:\n  token: "+token+"\n", `variable "token" {
  type      = string
  sensitive = true
}
resource "terraform_data" "t" {
  input = "hello"
  provisioner "local-exec" {
    command     = "echo token=$T && echo to stderr >&2"
    environment = { T = nonsensitive(var.token) }
  }
}
output "secret" {
  value     = var.token
  sensitive = true
}
output "plain" { value = terraform_data.t.output }
`)
	p := &planner{t: t, repo: repo, r: newRunner(t)}
	if logs, err := p.r.Logs("loud", "dev"); err != nil || len(logs) != 0 {
		t.Fatalf("logs before any run: %v %v", logs, err)
	}
	p.plan()
	p.apply("loud", "dev")
	repoSpec := load(t, repo)
	if d := p.r.Drift(context.Background(), repoSpec, os.DirFS(repo), repoSpec.Stack("loud"), "dev"); d.Status != DriftInSync {
		t.Fatalf("drift: %s %s", d.Status, d.Message)
	}
	logs, err := p.r.Logs("loud", "dev")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range logs {
		kinds = append(kinds, l.Kind)
		if l.Size == 0 || l.Started.IsZero() {
			t.Errorf("log %+v", l)
		}
	}
	if strings.Join(kinds, ",") != "drift,apply,plan" {
		t.Fatalf("logs, newest first: %v", kinds)
	}
	read := func(name string) string {
		rc, err := p.r.OpenLog("loud", "dev", name)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	want := map[string][]string{
		"plan":  {"# plan of loud @ dev, started ", "$ terraform init\n", "$ terraform plan\n", "Plan: 1 to add, 0 to change, 0 to destroy.", "# planned: 1 to add, 0 to change, 0 to replace, 0 to destroy\n"},
		"apply": {"# apply of loud @ dev", "$ terraform apply\n", "token=" + Redacted, "to stderr", "Apply complete! Resources: 1 added", "# applied: 1 to add"},
		"drift": {"$ terraform init\n", "$ terraform plan -refresh-only\n", "# insync\n"},
	}
	for _, l := range logs {
		text := read(l.Name)
		for _, w := range want[l.Kind] {
			if !strings.Contains(text, w) {
				t.Errorf("the %s log lacks %q:\n%s", l.Kind, w, text)
			}
		}
		for _, never := range []string{token, "terraform_version", `"sensitive"`, "terraform show"} {
			if strings.Contains(text, never) {
				t.Errorf("the %s log holds %q:\n%s", l.Kind, never, text)
			}
		}
		// Ended: read-only, for socle's user alone.
		if fi, err := os.Stat(filepath.Join(instanceDir(p.r.Dir, "loud", "dev"), logsDir, l.Name)); err != nil || fi.Mode().Perm() != 0o400 || !l.Ended || !p.r.LogEnded("loud", "dev", l.Name) {
			t.Errorf("%s: %v %v, ended %v, want 0400 and ended", l.Name, fi.Mode(), err, l.Ended)
		}
	}
	for _, bad := range []string{"", "../plan.json", "run.json", "x/../../run.json"} {
		if _, err := p.r.OpenLog("loud", "dev", bad); err == nil {
			t.Errorf("OpenLog(%q) opened something", bad)
		}
	}
}

// TestRunLogBounded: a run that prints more than MaxLog keeps MaxLog and
// says it was cut; a line split across writes is one line; only the last
// keepLogs logs of an instance are kept.
func TestRunLogBounded(t *testing.T) {
	r := newRunner(t)
	f := &files{dir: filepath.Join(r.Dir, "s", "dev"), stack: "s", instance: "dev"}
	lg := r.openLog(f, LogPlan, []string{"hunter2-secret"})
	lg.Write([]byte("half a li"))
	lg.Write([]byte("ne with hunter2-secret\nnext\n"))
	line := strings.Repeat("x", 1023) + "\n"
	for range MaxLog/1024 + 10 {
		lg.Write([]byte(line))
	}
	lg.end("planned")
	logs, err := r.Logs("s", "dev")
	if err != nil || len(logs) != 1 {
		t.Fatalf("%v %v", logs, err)
	}
	rc, err := r.OpenLog("s", "dev", logs[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	text := string(b)
	if !strings.Contains(text, "\nhalf a line with "+Redacted+"\nnext\n") {
		t.Errorf("the split line reads:\n%.300s", text)
	}
	if len(b) > MaxLog+100 || !strings.HasSuffix(text, "# the log is cut here: it is over 1048576 bytes\n# planned\n") {
		t.Errorf("%d bytes, ending %q", len(b), text[max(0, len(text)-80):])
	}
	// Drift checks, however many, push out drift checks only: the plan's
	// log stays.
	for range keepLogs + 3 {
		r.openLog(f, LogDrift, nil).end("insync")
	}
	logs, _ = r.Logs("s", "dev")
	kinds := map[string]int{}
	for _, l := range logs {
		kinds[l.Kind]++
	}
	if kinds[LogDrift] != keepLogs || kinds[LogPlan] != 1 {
		t.Errorf("logs kept by kind: %v, want %d drift checks and the plan", kinds, keepLogs)
	}
}

// TestRunLogMultiLineSecret: a secret of several lines (a PEM key) is
// replaced line by line, as the log is written a line at a time.
func TestRunLogMultiLineSecret(t *testing.T) {
	r := newRunner(t)
	f := &files{dir: filepath.Join(r.Dir, "s", "dev"), stack: "s", instance: "dev"}
	key := "-----BEGIN KEY-----\nMIIBVwIBADANBgkqhkiG9w0B\nAQEFAASCAUEwggE9AgEAAkE\n-----END KEY-----"
	lg := r.openLog(f, LogApply, []string{key})
	lg.Write([]byte("provider said: " + key + "\nok\n"))
	lg.end("applied")
	logs, _ := r.Logs("s", "dev")
	rc, err := r.OpenLog("s", "dev", logs[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	for _, part := range strings.Split(key, "\n")[1:3] {
		if strings.Contains(string(b), part) {
			t.Errorf("the log holds %q:\n%s", part, b)
		}
	}
}
