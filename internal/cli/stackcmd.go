package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/wiring"
)

func newStackCmd(g *globals) *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "stack",
		Short: "List, plan, approve, read the outputs and run logs of, and unlock a repository's Terraform stacks",
		Long: `list, plan, outputs, logs and unlock work offline on a platform repository (default:
the current directory) and on the data directory (--data, default ./.socle)
where socle keeps each stack instance's plan, state, runs and lock.

With --server (or SOCLE_SERVER) they ask that server instead, through its API:
list, outputs and logs (secrets redacted by the server) and unlock (recorded in its
audit trail) act on the server's stacks, and plan shows the server's last plan
of each instance, running nothing here. --env names the instance as offline:
an environment, or a zone (an environment names its zone's instance of a
stack with one instance per zone).

The server (socle up) applies the plans: at once where an instance applies
automatically, and where it is gated (apply: gated, or an environment that
syncs manually) once its gates open for that plan: socle stack approve, through
the server, approves it. There is no socle stack apply: what is applied is
what the repository says, through the server.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", ".socle", "data directory holding the stacks' plans, states, runs and locks")
	cmd.AddCommand(newStackListCmd(g, &data), newStackPlanCmd(g, &data), newStackOutputsCmd(g, &data), newStackUnlockCmd(g, &data), newStackApproveCmd(g), newStackLogsCmd(g, &data))
	return cmd
}

// stackRow is one instance as socle stack list shows it.
type stackRow struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	// Of is "zone" or "environment": what the instance is named after.
	Of        string          `json:"of"`
	Apply     spec.StackApply `json:"apply"`
	DependsOn []string        `json:"dependsOn,omitempty"`
	// Plan is the last plan recorded in the data directory; absent when
	// it was never planned there, or its plan was applied or discarded
	// since.
	Plan *lastPlan `json:"plan,omitempty"`
	// LastRun is the last apply; absent when there was none.
	LastRun *stack.Run `json:"lastRun,omitempty"`
	// Holder runs the instance now; absent when no one does.
	Holder *lease.Holder `json:"holder,omitempty"`
}

// lastPlan is what list shows of a recorded plan: its outcome, not its
// changes (socle stack plan shows those).
type lastPlan struct {
	Status  stack.Status  `json:"status"`
	Reason  stack.Reason  `json:"reason"`
	Message string        `json:"message,omitempty"`
	Hash    string        `json:"hash"`
	PlanID  string        `json:"planId,omitempty"`
	Summary stack.Summary `json:"summary"`
	At      time.Time     `json:"at"`
}

// applyMode is the stack's apply setting, or for an instance of an
// environment without one, what it defaults to (stack.ApplyOf: as the
// environment syncs); "" for a zone instance without one.
func applyMode(repo *spec.Repo, s *spec.Stack, inst string) spec.StackApply {
	if s.Config.Apply == "" && s.PerZone() {
		return ""
	}
	return stack.ApplyOf(repo, s, inst)
}

// stackRunner reads the stacks of the data directory: it runs no
// terraform. It has no secret: what it reads is not sealed.
func stackRunner(data string) (*stack.Runner, error) {
	dir, err := filepath.Abs(filepath.Join(data, "stacks"))
	if err != nil {
		return nil, err
	}
	return &stack.Runner{Dir: dir}, nil
}

// needData refuses a data directory that does not exist: reading one
// must not make it.
func needData(data string) error {
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		return withCode(ExitUsage, fmt.Errorf("the data directory %s does not exist: socle plan --data %s or socle up --data %s makes it", data, data, data))
	}
	return nil
}

// ago says how long ago t was, to the second.
func ago(t time.Time) string { return duration(time.Since(t)) }

func newStackListCmd(g *globals, data *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list [DIR]",
		Short: "List the stack instances with their last plan, last apply and lock",
		Long: `List every instance of the repository's stacks with what the data directory
knows of it: the last plan (read back, terraform is not run), the last apply
and who holds its lock now. With --server, the server's stacks and what it
knows of them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, err := g.stackRemote(cmd, args)
			if err != nil {
				return err
			}
			var rows []stackRow
			if remote {
				rows, err = g.remoteStackRows(cmd.Context())
			} else {
				rows, err = g.stackRows(dirArg(args), *data)
			}
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(rows)
			}
			if len(rows) == 0 {
				_, err := fmt.Fprintln(g.stdout, "No stacks in this repository.")
				return err
			}
			t := newTable(g.stdout, "STACK", "INSTANCE", "OF", "APPLY", "DEPENDS ON", "LAST PLAN", "LAST APPLY", "LOCK")
			for _, row := range rows {
				apply := string(row.Apply)
				if apply == "" {
					apply = "default"
				}
				t.row(row.Stack, row.Instance, row.Of, apply, strings.Join(row.DependsOn, ","), row.planCell(), row.runCell(), row.lockCell())
			}
			return t.flush()
		},
	}
}

// stackRows are the rows of socle stack list, from the repository in
// dir and the data directory.
func (g *globals) stackRows(dir, data string) ([]stackRow, error) {
	repo, err := g.loadValid(dir, "fix it first (socle validate)")
	if err != nil {
		return nil, err
	}
	r, err := stackRunner(data)
	if err != nil {
		return nil, err
	}
	// Holder makes the locks' directory: not in a data directory that
	// has no stacks yet, where nothing can be held.
	_, statErr := os.Stat(r.Dir)
	rows := []stackRow{}
	for _, t := range stack.Targets(repo, nil) {
		s, inst := t.Stack, t.Instance
		row := stackRow{Stack: s.Name, Instance: inst, Of: "environment", Apply: applyMode(repo, s, inst), DependsOn: s.Config.DependsOn}
		if s.PerZone() {
			row.Of = "zone"
		}
		if res, at, ok := r.LastPlan(s.Name, inst); ok {
			row.Plan = &lastPlan{Status: res.Status, Reason: res.Reason, Message: res.Message, Hash: res.Hash, PlanID: res.PlanID, Summary: res.Summary, At: at}
		}
		run, ok, err := r.LastRun(s.Name, inst)
		if err != nil {
			return nil, fmt.Errorf("last run of %s @ %s: %w", s.Name, inst, err)
		}
		if ok {
			row.LastRun = &run
		}
		if statErr == nil {
			h, held, err := r.Holder(s.Name, inst)
			if err != nil {
				return nil, fmt.Errorf("lock of %s @ %s: %w", s.Name, inst, err)
			}
			if held {
				row.Holder = &h
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (row stackRow) planCell() string {
	p := row.Plan
	if p == nil { // never planned here, or the plan was applied or discarded
		return "none recorded"
	}
	what := string(p.Status)
	switch p.Status {
	case stack.StatusPlanned:
		s := p.Summary
		what = fmt.Sprintf("+%d ~%d ±%d -%d", s.Add, s.Change, s.Replace, s.Destroy)
	case stack.StatusNoChanges:
		what = "no changes"
	case stack.StatusFailed:
		what = fmt.Sprintf("Failed (%s)", p.Reason)
	}
	if !p.At.IsZero() {
		what += ", " + ago(p.At) + " ago"
	}
	return what
}

func (row stackRow) runCell() string {
	r := row.LastRun
	if r == nil {
		return "never applied"
	}
	what := string(r.Status)
	if string(r.Reason) != string(r.Status) {
		what += " (" + string(r.Reason) + ")"
	}
	if at := r.Finished; !at.IsZero() {
		what += ", " + ago(at) + " ago"
	} else if !r.Started.IsZero() {
		what += ", started " + ago(r.Started) + " ago"
	}
	if r.PlanID != "" {
		what += ", plan " + short(r.PlanID)
	}
	return what
}

func (row stackRow) lockCell() string {
	h := row.Holder
	if h == nil {
		return ""
	}
	s := fmt.Sprintf("held by pid %d on %s", h.PID, h.Host)
	if !h.Since.IsZero() {
		s += " since " + ago(h.Since)
	}
	return s
}

// short is the first 12 characters of an ID, as git shows a commit.
func short(id string) string { return id[:min(len(id), 12)] }

// stackArg finds the stack named by the command's first argument.
func stackArg(repo *spec.Repo, name, dir string) (*spec.Stack, error) {
	if s := repo.Stack(name); s != nil {
		return s, nil
	}
	var names []string
	for _, s := range repo.Stacks {
		names = append(names, s.Name)
	}
	return nil, withCode(ExitUsage, fmt.Errorf("no stack %q in %s (stacks: %s)", name, filepath.Join(dir, spec.StacksDir), strings.Join(names, ", ")))
}

// stackInstanceArgs resolves STACK [DIR] and --env to one instance, and
// reads it in the data directory, which must exist.
func (g *globals) stackInstanceArgs(args []string, env, data string) (*spec.Stack, string, *stack.Runner, error) {
	dir := dirArg(args[1:])
	repo, err := g.loadValid(dir, "fix it first (socle validate)")
	if err != nil {
		return nil, "", nil, err
	}
	s, err := stackArg(repo, args[0], dir)
	if err != nil {
		return nil, "", nil, err
	}
	inst, err := instanceArg(repo, s, env)
	if err != nil {
		return nil, "", nil, err
	}
	if err := needData(data); err != nil {
		return nil, "", nil, err
	}
	r, err := stackRunner(data)
	return s, inst, r, err
}

// instanceArg resolves --env, an environment or a zone, to s's instance.
func instanceArg(repo *spec.Repo, s *spec.Stack, env string) (string, error) {
	if env == "" {
		return "", withCode(ExitUsage, fmt.Errorf("--env is required: stack %s has the instances %s", s.Name, strings.Join(s.Instances(), ", ")))
	}
	inst := stackInstance(repo, s, env)
	if inst == "" {
		return "", withCode(ExitUsage, fmt.Errorf("stack %s has no instance for %q: its instances are %s", s.Name, env, strings.Join(s.Instances(), ", ")))
	}
	return inst, nil
}

func newStackPlanCmd(g *globals, data *string) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "plan STACK [DIR] [--env ENV]",
		Short: "Plan one stack's instances with terraform, judged by the policies",
		Long: `Plan the instances of one stack (with --env, the one of that environment or
zone) as socle plan does, in the data directory, and judge each resource
change by the policies whose target is stacks. Nothing is applied. Exit code 1
when an instance does not plan or a policy denies it.

With --server, show the server's last plan of each instance instead (what it
would apply, or waits to have approved), with when it was planned and where
the instance stands: terraform is not run here.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, err := g.stackRemote(cmd, args[1:])
			if err != nil {
				return err
			}
			var plans *stackPlans
			if remote {
				plans, err = g.remoteStackPlans(cmd.Context(), args[0], env)
			} else {
				plans, err = g.planStack(cmd, args, env, *data)
			}
			if err != nil {
				return err
			}
			if g.json() {
				err = g.printJSON(plans)
			} else {
				plans.render(g.stdout)
			}
			if err != nil {
				return err
			}
			if !plans.Planned {
				return withCode(ExitError, errors.New(plans.Message))
			}
			if n := plans.failed(); n > 0 {
				return withCode(ExitProblems, fmt.Errorf("%d stack instance%s did not plan", n, plural(n)))
			}
			if n, _ := plans.denied(); n > 0 {
				return withCode(ExitProblems, fmt.Errorf("%d stack instance%s denied by policy", n, plural(n)))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only the instance of this environment or zone")
	return cmd
}

// planStack plans the instances of STACK [DIR] (env's only, when given)
// in the data directory, judged by the repository's policies.
func (g *globals) planStack(cmd *cobra.Command, args []string, env, data string) (*stackPlans, error) {
	dir := dirArg(args[1:])
	repo, err := g.loadValid(dir, "nothing to plan")
	if err != nil {
		return nil, err
	}
	s, err := stackArg(repo, args[0], dir)
	if err != nil {
		return nil, err
	}
	keep := func(t *spec.Stack, inst string) bool { return t == s }
	if env != "" {
		only, err := instanceArg(repo, s, env)
		if err != nil {
			return nil, err
		}
		keep = func(t *spec.Stack, inst string) bool { return t == s && inst == only }
	}
	plans, err := planStacks(cmd.Context(), repo, dir, data, keep)
	if err != nil {
		return nil, err
	}
	policies, problems := policy.Compile(repo, dirFS(dir))
	for _, p := range problems { // such a policy denies what it matches
		fmt.Fprintln(g.stderr, p)
	}
	plans.judge(repo, policies, policy.Context{Operation: policy.Plan, Now: time.Now()})
	return plans, nil
}

// stackOutputs is socle stack outputs' answer.
type stackOutputs struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	Applied  bool   `json:"applied"`
	// PlanID and At are those of the last apply.
	PlanID string    `json:"planId,omitempty"`
	At     time.Time `json:"at,omitzero"`
	// Outputs as shown to people: sensitive ones, and those that hold a
	// secret input, redacted.
	Outputs map[string]string `json:"outputs,omitempty"`
}

func newStackOutputsCmd(g *globals, data *string) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "outputs STACK --env ENV [DIR]",
		Short: "Show the outputs one stack instance recorded at its last apply",
		Long: `Show the outputs recorded at the last apply of a stack's instance (--env: an
environment, or a zone for a stack with one instance per zone), read from the
data directory (with --server: from the server). Sensitive outputs, and
outputs that carry a secret input, are redacted. Exit code 1 when the instance
was never applied.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, err := g.stackRemote(cmd, args[1:])
			if err != nil {
				return err
			}
			var out stackOutputs
			where := *data
			if remote {
				out, err = g.remoteStackOutputs(cmd.Context(), args[0], env)
				where = "the server at " + g.server
			} else {
				out, err = g.stackOutputs(args, env, *data)
			}
			if err != nil {
				return err
			}
			if g.json() {
				err = g.printJSON(out)
			} else if out.Applied {
				fmt.Fprintf(g.stdout, "Outputs of %s @ %s, applied %s ago (plan %s):\n\n", out.Stack, out.Instance, ago(out.At), short(out.PlanID))
				t := newTable(g.stdout, "OUTPUT", "VALUE")
				for _, k := range slices.Sorted(maps.Keys(out.Outputs)) {
					t.row(k, out.Outputs[k])
				}
				err = t.flush()
			}
			if err == nil && !out.Applied {
				err = withCode(ExitProblems, fmt.Errorf("%s @ %s was never applied: no outputs are recorded in %s", out.Stack, out.Instance, where))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment, or the zone, of the instance")
	return cmd
}

// stackOutputs reads the outputs of the last apply of STACK [DIR]'s
// instance env in the data directory.
func (g *globals) stackOutputs(args []string, env, data string) (stackOutputs, error) {
	s, inst, r, err := g.stackInstanceArgs(args, env, data)
	if err != nil {
		return stackOutputs{}, err
	}
	// Only an existing secret: DataSecret would make one, and a data
	// directory without it has sealed nothing.
	if _, err := os.Stat(filepath.Join(data, "secret.key")); err == nil {
		if r.Secret, err = wiring.DataSecret(data); err != nil {
			return stackOutputs{}, fmt.Errorf("the data directory's secret: %w", err)
		}
	}
	out := stackOutputs{Stack: s.Name, Instance: inst}
	outs, ok, err := r.ShowOutputs(s.Name, inst)
	if err != nil {
		return out, fmt.Errorf("outputs of %s @ %s: %w", s.Name, inst, err)
	}
	if ok {
		out.Applied, out.Outputs = true, outs
		if run, ok, err := r.LastRun(s.Name, inst); err == nil && ok {
			out.PlanID, out.At = run.PlanID, run.Finished
		}
	}
	return out, nil
}

// stackUnlock is socle stack unlock's answer.
type stackUnlock struct {
	Stack    string `json:"stack"`
	Instance string `json:"instance"`
	// Held: someone held the lock, now removed (Holder).
	Held    bool          `json:"held"`
	Holder  *lease.Holder `json:"holder,omitempty"`
	Audited bool          `json:"audited"`
}

func newStackUnlockCmd(g *globals, data *string) *cobra.Command {
	var env string
	var force bool
	cmd := &cobra.Command{
		Use:   "unlock STACK --env ENV [--force] [DIR]",
		Short: "Remove a stack instance's run lock (a live holder only with --force)",
		Long: `Remove the run lock of a stack's instance. A lock that a live socle holds is
refused, naming its holder; with --force it is taken: the holder loses its lease
and stops its terraform within a second, while terraform's own state lock keeps
any other apply off the state until it has. The removal is recorded in the
audit trail of the data directory's store, when it has one. With --server, the
server removes it (an admin's call) and records it in its audit trail.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			remote, err := g.stackRemote(cmd, args[1:])
			if err != nil {
				return err
			}
			var out stackUnlock
			where := *data
			if remote {
				out, err = g.remoteStackUnlock(cmd.Context(), args[0], env, force)
				where = "the server at " + g.server
			} else {
				out, err = g.stackUnlock(cmd, args, env, *data, force)
			}
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(out)
			}
			if !out.Held {
				_, err := fmt.Fprintf(g.stdout, "%s @ %s was not locked: nothing to do.\n", out.Stack, out.Instance)
				return err
			}
			fmt.Fprintf(g.stdout, "Took the lock of %s @ %s from %s: its terraform stops within a second.\n", out.Stack, out.Instance, out.Holder)
			if out.Audited {
				fmt.Fprintf(g.stdout, "Recorded in the audit trail of %s.\n", where)
			} else {
				fmt.Fprintf(g.stderr, "Not recorded in an audit trail: %s has no %s.\n", *data, wiring.DBFile)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment, or the zone, of the instance")
	cmd.Flags().BoolVar(&force, "force", false, "take the lock from a live holder, stopping its run")
	return cmd
}

// stackUnlock removes the run lock of STACK [DIR]'s instance env in the
// data directory, recording it in the data directory's store.
func (g *globals) stackUnlock(cmd *cobra.Command, args []string, env, data string, force bool) (stackUnlock, error) {
	s, inst, r, err := g.stackInstanceArgs(args, env, data)
	if err != nil {
		return stackUnlock{}, err
	}
	h, held, err := r.Unlock(s.Name, inst, force)
	if errors.Is(err, stack.ErrLiveHolder) {
		return stackUnlock{}, liveHolder(s.Name, inst, h)
	}
	if err != nil {
		return stackUnlock{}, fmt.Errorf("unlocking %s @ %s: %w", s.Name, inst, err)
	}
	out := stackUnlock{Stack: s.Name, Instance: inst, Held: held}
	if held {
		out.Holder = &h
		if out.Audited, err = auditUnlock(cmd, data, out, force); err != nil {
			return out, err
		}
	}
	return out, nil
}

// liveHolder is the refusal of an unlock without --force of a lock a live
// socle holds.
func liveHolder(name, inst string, h lease.Holder) error {
	return withCode(ExitProblems, fmt.Errorf("%s @ %s is held by %s: it is running; socle stack unlock --force takes the lock and stops it", name, inst, h))
}

// auditUnlock records a removed lock in the data directory's store, as
// token create --data records a token; false when it has no store.
func auditUnlock(cmd *cobra.Command, data string, u stackUnlock, force bool) (bool, error) {
	if _, err := os.Stat(filepath.Join(data, wiring.DBFile)); err != nil {
		return false, nil
	}
	st, err := openData(cmd.Context(), data)
	if err != nil {
		return false, err
	}
	defer st.Close()
	detail, err := json.Marshal(struct {
		Stack    string        `json:"stack"`
		Instance string        `json:"instance"`
		Force    bool          `json:"force"`
		Holder   *lease.Holder `json:"holder"`
	}{u.Stack, u.Instance, force, u.Holder})
	if err != nil {
		return false, err
	}
	rec := store.AuditRecord{Actor: "local:" + envOr("USER", "unknown"), Action: "stack.unlocked", Detail: detail}
	if _, err := st.Store.AppendAudit(cmd.Context(), rec); err != nil {
		return false, withCode(ExitError, fmt.Errorf("recording the unlock: %w", err))
	}
	return true, nil
}
