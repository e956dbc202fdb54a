package local

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/sandbox/sandboxtest"
)

// TestSandboxKeepsSecretsFromReplicas is the attack of issue 19 on the
// local runtime: a replica reads socle's admin token, secret key and
// database, and the environment (secrets included) of another app's
// replica. In the sandbox it gets none of them; without it (the same
// attack, the sandbox off) it gets them all, which shows the test can fail.
func TestSandboxKeepsSecretsFromReplicas(t *testing.T) {
	t.Parallel()
	img := imageDir(t)
	if _, err := sandboxtest.BuildAttacker(img); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		sb    *sandbox.Sandbox
		steal bool
	}{
		{"sandboxed", sandbox.Detect(), false},
		{"insecure", sandbox.Off(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !tc.steal && !tc.sb.Enabled() {
				t.Fatalf("no sandbox on this machine: %s", tc.sb.Message())
			}
			// A data directory as socle's: its secrets, the runtime's
			// state in it.
			data := filepath.Join(imageDir(t), "data")
			if err := os.Mkdir(data, 0o755); err != nil {
				t.Fatal(err)
			}
			secrets, err := sandboxtest.Plant(data)
			if err != nil {
				t.Fatal(err)
			}
			d := open(t, filepath.Join(data, "runtime"), Options{Sandbox: tc.sb})

			victim := runtimetest.Spec(server("-ready=true"), 0)
			victim.Ref.App = "victim"
			victim.Variables["DB_PASSWORD"] = "victim-s3cret"
			vst := startReady(t, d, victim)
			args := slices.Clone(secrets)
			for _, pid := range groupMembers(vst.PID) { // bwrap's and the server's
				args = append(args, fmt.Sprintf("environ:%d", pid))
			}
			// The victim's record holds its environment too.
			args = append(args, filepath.Join(data, "runtime", replicasDir, "test_victim_r1_0", recordName))

			spec := runtimetest.Spec(runtime.ReplicaSpec{Root: img, Command: []string{"/attacker"}, Args: args}, 0)
			spec.Ref.App = "attacker"
			st := startReady(t, d, spec)
			body, err := get(st, "/")
			if err != nil {
				t.Fatal(err)
			}
			report, err := sandboxtest.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			stolen := report.Stole(args, "victim-s3cret")
			if tc.steal && len(stolen) != len(args) {
				t.Errorf("without a sandbox the attacker read %q of %q: the test cannot tell a sandbox from none", stolen, args)
			}
			if !tc.steal && len(stolen) > 0 {
				t.Errorf("in the sandbox the attacker read %q: %v", stolen, report)
			}
			if tc.sb.PerAppUsers() {
				// Even outside the namespaces, its processes are not
				// socle's user's, nor the victim's.
				uid, _, _ := tc.sb.Owner(sandboxName(spec.Ref))
				vuid, _, _ := tc.sb.Owner(sandboxName(victim.Ref))
				for _, pid := range groupMembers(st.PID) {
					fi, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
					if err != nil {
						t.Fatal(err)
					}
					if got := int(fi.Sys().(*syscall.Stat_t).Uid); got != uid || got == vuid || got == os.Geteuid() {
						t.Errorf("pid %d of the attacker runs as uid %d, want %d (socle's is %d, the victim's %d)", pid, got, uid, os.Geteuid(), vuid)
					}
				}
			}
		})
	}
}

// TestStateFilesAreSocles: a replica's record (its environment, secrets
// included) and its log are readable by socle's user alone.
func TestStateFilesAreSocles(t *testing.T) {
	t.Parallel()
	dir := stateDir(t)
	d := open(t, dir, Options{})
	st := startReady(t, d, runtimetest.Spec(server("-ready=true"), 0))
	replica := filepath.Join(dir, replicasDir, st.Handle.ID)
	for path, want := range map[string]fs.FileMode{
		dir:                                fs.ModeDir | 0o700,
		filepath.Join(dir, replicasDir):    fs.ModeDir | 0o700,
		replica:                            fs.ModeDir | 0o700,
		filepath.Join(replica, recordName): 0o600,
		filepath.Join(replica, logName):    0o600,
		filepath.Join(dir, "lock"):         0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", path, fi.Mode(), want)
		}
	}
}

// TestStartRefusedWithoutSandbox: where no sandbox can be made, no replica
// starts, and the error says why and what to do.
func TestStartRefusedWithoutSandbox(t *testing.T) {
	t.Parallel()
	d := open(t, stateDir(t), Options{Sandbox: sandbox.With("/nonexistent/bwrap")})
	_, err := d.Start(testContext(t), runtimetest.Spec(server("-ready=true"), 0))
	if err == nil || !strings.Contains(err.Error(), "--insecure-no-sandbox") {
		t.Fatalf("Start = %v, want a refusal that names --insecure-no-sandbox", err)
	}
	if list, _ := d.List(testContext(t)); len(list) != 0 {
		t.Errorf("List = %v, want nothing", list)
	}
}
