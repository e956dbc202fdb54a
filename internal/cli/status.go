package cli

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the revision in force, a failing one and why, and every unit",
		Long: `Status shows the revision in force, a newer one that does not validate and why,
and every unit (app, environment): its phase, the release it runs, its replicas,
its URL and, when it is not Synced, why and what happens next. A unit whose image
is being built says for how long, with the build log's last line; a failed build
is followed by the last lines of its log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st api.Status
			if err := g.get(cmd, "/api/v1/status", &st); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(st)
			}
			return writeStatus(g.stdout, st, time.Now())
		},
	}
}

// buildLogLines is how many lines of a failed build's log status shows.
const buildLogLines = 10

// writeStatus writes a status for people, as of now.
func writeStatus(w io.Writer, st api.Status, now time.Time) error {
	fmt.Fprintf(w, "Repository  %s\n", st.Repository)
	if st.Head != nil {
		h := source.Revision(*st.Head)
		fmt.Fprintf(w, "Head        %s %s (%s)\n", h.Short(), h.Subject(), h.Author)
	}
	if st.LastGood != nil {
		g := source.Revision(*st.LastGood)
		fmt.Fprintf(w, "In force    %s %s\n", g.Short(), g.Subject())
	}
	if st.FetchError != "" {
		fmt.Fprintf(w, "Fetch       failing: %s\n", st.FetchError)
	}
	if sb := st.Sandbox; sb != nil && sb.Mode != "enforced" {
		// Never silent: apps refused, or running unconfined.
		fmt.Fprintf(w, "Sandbox     %s: %s\n", strings.ToUpper(sb.Mode), sb.Message)
	}
	paused := map[[2]string]bool{}
	for _, p := range st.Pauses {
		paused[[2]string{p.App, p.Env}] = true
		msg := p.Message
		if msg == "" {
			msg = "(the default page)"
		}
		fmt.Fprintf(w, "Paused      %s by %s since %s: %s", pauseSubject(p), p.By, p.At.Format(time.RFC3339), msg)
		if p.RetryAfterSeconds > 0 {
			fmt.Fprintf(w, " (Retry-After %s)", duration(time.Duration(p.RetryAfterSeconds)*time.Second))
		}
		fmt.Fprintln(w)
	}
	if f := st.Failing; f != nil {
		fmt.Fprintf(w, "\nRevision %s does not validate; %s stays in force:\n", source.Revision(f.Revision).Short(), inForce(st))
		for _, p := range f.Problems {
			fmt.Fprintf(w, "  %s\n", spec.Problem(p))
		}
	}
	fmt.Fprintln(w)
	t := newTable(w, "APP", "ENV", "STATUS", "VERSION", "READY", "URL", "REASON")
	rt := map[[2]string]api.UnitStatus{}
	for _, r := range st.Runtime {
		rt[[2]string{r.App, r.Env}] = r
	}
	_, port, _ := net.SplitHostPort(st.ProxyAddr)
	var failedBuilds []api.UnitStatus
	for _, u := range st.Units {
		r, ok := rt[[2]string{u.App, u.Env}]
		phase, version, ready, url, reason := string(api.PhasePending), abbrev(u.Revision, 7), "-", "-", ""
		if ok {
			phase, reason = phaseText(r, now), reasonText(r, now)
			if r.Release != 0 {
				version = fmt.Sprintf("%s %s", abbrev(r.Revision, 7), abbrev(strings.TrimPrefix(r.Artifact, "sha256:"), 12))
				ready = fmt.Sprintf("%d/%d", r.Ready, r.Desired)
			}
			if r.URL != "" {
				url = r.URL + ":" + port
			}
			if r.Reason == api.ReasonBuildFailed && r.LogTail != "" {
				failedBuilds = append(failedBuilds, r)
			}
		}
		if paused[[2]string{u.App, u.Env}] || paused[[2]string{"", u.Env}] {
			phase += " (paused)"
		}
		t.row(u.App, u.Env, phase, version, ready, url, reason)
	}
	known := map[[2]string]bool{}
	for _, u := range st.Units {
		known[[2]string{u.App, u.Env}] = true
	}
	for _, b := range st.Blocked { // new units a policy keeps out
		if !known[[2]string{b.App, b.Env}] {
			t.row(b.App, b.Env, string(api.PhaseBlocked), "-", "-", "-", b.Reason)
		}
	}
	for _, r := range st.Runtime { // units no longer in Git that still run
		if r.Phase == api.PhaseOrphaned {
			t.row(r.App, r.Env, string(r.Phase), abbrev(r.Revision, 7), fmt.Sprintf("%d/%d", r.Ready, r.Desired), "-", r.Message)
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	// A build's log does not fit a cell: its last lines follow the table.
	for _, r := range failedBuilds {
		fmt.Fprintf(w, "\nThe build of %s for %s failed; the last lines of its log:\n", r.App, r.Env)
		for _, line := range lastLines(r.LogTail, buildLogLines) {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	return nil
}

// phaseText is a unit's phase, with how long it has built.
func phaseText(r api.UnitStatus, now time.Time) string {
	if r.Phase == api.PhaseBuilding && !r.Since.IsZero() {
		return fmt.Sprintf("%s (%s)", r.Phase, duration(now.Sub(r.Since)))
	}
	return string(r.Phase)
}

// reasonText is why a unit is in its phase: the build log's last line
// while it builds, the words of the status otherwise, and when a failed
// build is tried again.
func reasonText(r api.UnitStatus, now time.Time) string {
	if r.Reason == api.ReasonBuilding && r.LogTail != "" {
		return r.LogTail
	}
	msg := r.Message
	if r.Reason == api.ReasonBuildFailed && !r.RetryAt.IsZero() {
		if d := r.RetryAt.Sub(now); d > 0 {
			msg += "; retrying in " + duration(d)
		} else {
			msg += "; retrying now"
		}
	}
	return msg
}

// duration says d to the second, without the zero units time.Duration
// writes: 4m rather than 4m0s.
func duration(d time.Duration) string {
	s := max(d, 0).Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

func inForce(st api.Status) string {
	if st.LastGood == nil {
		return "no revision"
	}
	return source.Revision(*st.LastGood).Short()
}

func abbrev(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
