package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/wiring"
)

// TestStackCommands: through the real terraform binary, socle stack plan
// plans one stack into the data directory; an instance applied through
// stack.Runner (there is no socle stack apply: the server applies) is
// listed with its run, its outputs shown with the sensitive one and the
// secret input redacted, in text and JSON; an instance never applied says
// so and exits 1; a live lock is refused by unlock and taken with
// --force, recorded in the audit trail.
func TestStackCommands(t *testing.T) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	data := t.TempDir()
	ctx := context.Background()

	// The data directory's store, as socle up makes it: unlock audits there.
	st, err := wiring.OpenDB(ctx, filepath.Join(data, wiring.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, errOut, code := run(t, "stack", "plan", "network", stackRepo, "--data", data, "--env", "connectivity")
	if code != ExitOK || !strings.Contains(out, "~ network @ connectivity: 3 to add") || strings.Contains(out, "app-zone") {
		t.Fatalf("stack plan network (exit %d):\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "Policies on stacks: 0 instances denied") || strings.Contains(out, "s3cr3t") {
		t.Errorf("stack plan shows no verdicts, or the secret:\n%s", out)
	}

	out, _, code = run(t, "stack", "list", stackRepo, "--data", data)
	if code != ExitOK {
		t.Fatalf("stack list: exit %d", code)
	}
	checkRows(t, out, map[string][]string{
		"STACK":    {"INSTANCE", "OF", "APPLY", "DEPENDS ON", "LAST PLAN", "LAST APPLY", "LOCK"},
		"network":  {"connectivity", "zone", "default", "+3 ~0 ±0 -0, ", " ago", "never applied"},
		"app-zone": {"environment", "network", "none recorded", "never applied"},
	})
	if !strings.Contains(out, "app-zone  dev ") || !strings.Contains(out, "app-zone  prod ") || !strings.Contains(out, " auto ") || !strings.Contains(out, " gated ") {
		t.Errorf("stack list does not show app-zone's instances with their apply mode:\n%s", out)
	}
	out, _, _ = run(t, "stack", "list", stackRepo, "--data", data, "-o", "json")
	var rows []stackRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Plan == nil || rows[0].Plan.Status != stack.StatusPlanned || rows[0].Plan.Summary.Add != 3 || rows[0].Plan.PlanID == "" || rows[0].Plan.At.IsZero() || rows[2].Apply != "gated" || rows[2].DependsOn[0] != "network" {
		t.Errorf("stack list -o json:\n%s", out)
	}

	// Never applied: a clear message, exit 1.
	out, errOut, code = run(t, "stack", "outputs", "network", "--env", "connectivity", stackRepo, "--data", data)
	if code != ExitProblems || !strings.Contains(errOut, "network @ connectivity was never applied") || out != "" {
		t.Errorf("outputs of an instance never applied: exit %d, %q, %q", code, out, errOut)
	}

	// The server's apply, through the Runner directly.
	repo, _, err := loadDir(stackRepo)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := wiring.DataSecret(data)
	if err != nil {
		t.Fatal(err)
	}
	r := &stack.Runner{Dir: filepath.Join(data, "stacks"), Terraform: bin, Secret: secret}
	if !filepath.IsAbs(r.Dir) {
		t.Fatal("the data directory is not absolute")
	}
	network := repo.Stack("network")
	res := r.Plan(ctx, repo, os.DirFS(stackRepo), network, "connectivity")
	applied := r.Apply(ctx, network, "connectivity", stack.Approved{PlanID: res.PlanID, Hash: res.Hash})
	if applied.Status != stack.RunApplied {
		t.Fatalf("apply: %s %s: %s", applied.Status, applied.Reason, applied.Message)
	}

	out, _, _ = run(t, "stack", "list", stackRepo, "--data", data)
	if want := "Applied, "; !strings.Contains(out, want) || !strings.Contains(out, "plan "+applied.PlanID[:12]) {
		t.Errorf("stack list does not show the apply (plan %s):\n%s", applied.PlanID[:12], out)
	}
	out, _, _ = run(t, "stack", "list", stackRepo, "--data", data, "-o", "json")
	rows = nil
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the secret is in stack list -o json:\n%s", out)
	}
	// The applied plan is discarded: none is recorded any more.
	if len(rows) != 3 || rows[0].Stack != "network" || rows[0].LastRun == nil || rows[0].LastRun.PlanID != applied.PlanID || rows[0].Plan != nil || rows[1].LastRun != nil {
		t.Errorf("stack list -o json:\n%s", out)
	}

	// The apply's log, read from the data directory; -f needs a server.
	out, errOut, code = run(t, "stack", "logs", "network", "--env", "connectivity", stackRepo, "--data", data)
	if code != ExitOK || !strings.Contains(out, "# apply of network @ connectivity") || !strings.Contains(out, "$ terraform apply") || strings.Contains(out, "s3cr3t") {
		t.Errorf("stack logs (exit %d, %s):\n%s", code, errOut, out)
	}
	out, _, _ = run(t, "stack", "logs", "network", "--env", "connectivity", stackRepo, "--data", data, "-o", "json")
	if first, _, _ := strings.Cut(out, "\n"); !strings.HasPrefix(first, `{"line":"# apply of network @ connectivity, started `) {
		t.Errorf("stack logs -o json begins %q", first)
	}
	if _, errOut, code := run(t, "stack", "logs", "app-zone", "--env", "dev", stackRepo, "--data", data); code != ExitProblems || !strings.Contains(errOut, "app-zone @ dev has run no terraform yet") {
		t.Errorf("stack logs of an instance never run: %d %s", code, errOut)
	}
	if _, errOut, code := run(t, "stack", "logs", "network", "--env", "connectivity", "-f", stackRepo, "--data", data); code != ExitUsage || !strings.Contains(errOut, "-f follows the runs of a server") {
		t.Errorf("stack logs -f offline: %d %s", code, errOut)
	}

	out, errOut, code = run(t, "stack", "outputs", "network", "--env", "connectivity", stackRepo, "--data", data)
	if code != ExitOK {
		t.Fatalf("stack outputs: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Outputs of network @ connectivity, applied ", "(plan " + applied.PlanID[:12] + ")", "OUTPUT  VALUE", "hub_id  \"", `cidr    "10.0.0.0/16"`, "key     (sensitive value)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stack outputs does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the secret is in the outputs:\n%s", out)
	}
	// An instance of an environment, never applied (its upstream was only now).
	if _, errOut, code := run(t, "stack", "outputs", "app-zone", "--env", "dev", stackRepo, "--data", data); code != ExitProblems || !strings.Contains(errOut, "app-zone @ dev was never applied") {
		t.Errorf("outputs of app-zone @ dev: exit %d, %s", code, errOut)
	}
	out, _, _ = run(t, "stack", "outputs", "network", "--env", "connectivity", stackRepo, "--data", data, "-o", "json")
	var outs stackOutputs
	if err := json.Unmarshal([]byte(out), &outs); err != nil {
		t.Fatal(err)
	}
	if !outs.Applied || outs.PlanID != applied.PlanID || outs.Outputs["key"] != "(sensitive value)" || outs.Outputs["cidr"] != `"10.0.0.0/16"` || strings.Contains(out, "s3cr3t") {
		t.Errorf("stack outputs -o json:\n%s", out)
	}
	if _, errOut, code := run(t, "stack", "outputs", "network", stackRepo, "--data", data); code != ExitUsage || !strings.Contains(errOut, "--env is required") {
		t.Errorf("outputs without --env: exit %d, %s", code, errOut)
	}

	// A live holder: this process, as a running socle holds it.
	host, _ := os.Hostname()
	locks := &lease.File{Dir: filepath.Join(data, "stacks", ".locks")}
	le, err := locks.TryAcquire(ctx, "network.connectivity", lease.Holder{PID: os.Getpid(), Host: host, Since: time.Now().Add(-3 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	out, _, _ = run(t, "stack", "list", stackRepo, "--data", data)
	if want := fmt.Sprintf("held by pid %d on %s since 3m", os.Getpid(), host); !strings.Contains(out, want) {
		t.Errorf("stack list does not say %q:\n%s", want, out)
	}
	_, errOut, code = run(t, "stack", "unlock", "network", "--env", "connectivity", stackRepo, "--data", data)
	if want := fmt.Sprintf("network @ connectivity is held by pid %d on %s, since ", os.Getpid(), host); code != ExitProblems || !strings.Contains(errOut, want) {
		t.Errorf("unlock of a live holder: exit %d, %q, want %q", code, errOut, want)
	}
	if _, held, _ := r.Holder("network", "connectivity"); !held {
		t.Fatal("the refused unlock removed the lock")
	}
	out, errOut, code = run(t, "stack", "unlock", "network", "--env", "connectivity", "--force", stackRepo, "--data", data)
	if code != ExitOK || !strings.Contains(out, fmt.Sprintf("Took the lock of network @ connectivity from pid %d on %s", os.Getpid(), host)) || !strings.Contains(out, "Recorded in the audit trail") {
		t.Errorf("forced unlock: exit %d\n%s\n%s", code, out, errOut)
	}
	select {
	case <-le.Lost():
	case <-time.After(time.Minute): // a bound on a failure, not a timing
		t.Fatal("the holder did not lose its lease")
	}
	if _, held, _ := r.Holder("network", "connectivity"); held {
		t.Error("the lock is still held after a forced unlock")
	}
	st, err = wiring.OpenDB(ctx, filepath.Join(data, wiring.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Store.AuditRecords(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Action != "stack.unlocked" || !strings.Contains(string(recs[0].Detail), `"instance":"connectivity"`) || !strings.Contains(string(recs[0].Detail), fmt.Sprintf(`"pid":%d`, os.Getpid())) {
		t.Errorf("audit records: %+v", recs)
	}
	out, _, code = run(t, "stack", "unlock", "network", "--env", "connectivity", stackRepo, "--data", data, "-o", "json")
	var u stackUnlock
	if err := json.Unmarshal([]byte(out), &u); err != nil || code != ExitOK || u.Held || u.Audited {
		t.Errorf("unlock of a free instance: exit %d, %s", code, out)
	}
}

// TestStackCommandsUsage: unknown stacks and instances, and a data
// directory that does not exist, are usage errors that say what exists;
// reading does not make the data directory.
func TestStackCommandsUsage(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stack", "outputs", "nope", "--env", "dev", stackRepo}, `no stack "nope"`},
		{[]string{"stack", "outputs", "network", "--env", "prod-eu", stackRepo}, `stack network has no instance for "prod-eu": its instances are connectivity`},
		{[]string{"stack", "unlock", "app-zone", "--env", "connectivity", stackRepo}, `stack app-zone has no instance for "connectivity"`},
		{[]string{"stack", "outputs", "network", "--env", "connectivity", stackRepo}, "the data directory " + missing + " does not exist"},
		{[]string{"stack", "unlock", "network", "--env", "connectivity", stackRepo}, "the data directory " + missing + " does not exist"},
		{[]string{"stack", "plan", "nope", stackRepo}, `no stack "nope"`},
	} {
		_, errOut, code := run(t, append(tc.args, "--data", missing)...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
	out, _, code := run(t, "stack", "list", stackRepo, "--data", missing)
	if code != ExitOK || !strings.Contains(out, "network   connectivity  zone         default              none recorded  never applied") {
		t.Errorf("stack list on a missing data directory: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("stack list made the data directory")
	}
}

// checkRows checks that the table row starting with each key holds each
// of its cells, and that the columns are aligned: every row's second cell
// starts where the header's second column does.
func checkRows(t *testing.T, out string, rows map[string][]string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	col := strings.Index(lines[0], "INSTANCE")
	for first, cells := range rows {
		found := false
		for _, l := range lines {
			if !strings.HasPrefix(l, first+" ") {
				continue
			}
			found = true
			if c := strings.IndexFunc(l[len(first):], func(r rune) bool { return r != ' ' }) + len(first); c != col {
				t.Errorf("row %q: second column at %d, the header's at %d:\n%s", first, c, col, out)
			}
			for _, c := range cells {
				if !strings.Contains(l, c) {
					t.Errorf("row %q does not hold %q:\n%s", first, c, out)
				}
			}
		}
		if !found {
			t.Errorf("no row %q:\n%s", first, out)
		}
	}
}

// TestStackInstance: --env names an environment's own instance, or for a
// stack with one instance per zone, that of the environment's zone; a
// zone names its instance; anything else none.
func TestStackInstance(t *testing.T) {
	t.Parallel()
	repo, problems, err := loadDir(stackRepo)
	if err != nil || problems.Errors() > 0 {
		t.Fatal(err, problems)
	}
	network := *repo.Stack("network")
	// network also in dev's and prod's zone, in this copy only.
	network.Config.Zones = []string{"connectivity", "apps-nonprod"}
	for _, tc := range []struct {
		stack      string
		where      string
		wantInstOf string
	}{
		{"network", "connectivity", "connectivity"},
		{"network", "apps-nonprod", "apps-nonprod"},
		{"network", "dev", "apps-nonprod"},
		{"network", "prod", "apps-nonprod"},
		{"network", "qa", ""},
		{"network", "", ""},
		{"app-zone", "dev", "dev"},
		{"app-zone", "prod", "prod"},
		{"app-zone", "apps-nonprod", ""},
		{"app-zone", "connectivity", ""},
	} {
		s := repo.Stack(tc.stack)
		if tc.stack == "network" {
			s = &network
		}
		if got := stackInstance(repo, s, tc.where); got != tc.wantInstOf {
			t.Errorf("stackInstance(%s, %q) = %q, want %q", tc.stack, tc.where, got, tc.wantInstOf)
		}
	}
}
